#!/usr/bin/python3
"""Compare a QMP session with blockd against qemu-storage-daemon 7.2.

Starts the daemon under test (env BLOCKD, default build/core/blockd) with
  --chardev socket,id=qmp0,path=DIR/qmp.sock,server=on,wait=off
  --monitor chardev=qmp0[,pretty=on]
sends the requests of SESSION byte for byte and checks every reply byte
for byte against what qemu-storage-daemon answers (run side by side when
it is installed, else against tests/unit/qmp-observed.json, which was
recorded from it).  Version numbers are normalised: blockd reports QEMU
7.2.0 and "blockd <version>".

  test_qmp_session.py                 run the comparison (exit 0 = same)
  test_qmp_session.py --record FILE   write qsd's replies to FILE

Standard library only; run with /usr/bin/python3.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
OBSERVED = os.path.join(SRC, 'tests', 'unit', 'qmp-observed.json')

CAPS = b'{"execute":"qmp_capabilities"}\n'

# Requests before and after negotiation; raw bytes, sent as they are.
SESSION = [
    b'{"execute":"query-version"}\n',
    b'{"execute":"nope","id":"x"}\n',
    b'{"exec-oob":"qmp_capabilities"}\n',
    b'[1,2]\n',
    b'{"execute":"qmp_capabilities","id":1}\n',
    b'{"execute":"qmp_capabilities"}\n',
    b'{"execute":"query-version"}\n',
    b'{"execute":"query-version","id":{"a":[1,2.5,"x",null,true]}}\n',
    b'{"execute":"nope","id":"x"}\n',
    b'{"execute":nope}\n',
    b'[1,2]\n', b'42\n', b'"str"\n', b'{}\n', b'{"id":5}\n',
    b'{"execute":"query-version","foo":1}\n',
    b'{"execute":"query-version","arguments":[]}\n',
    b'{"execute":"query-version","arguments":{"x":1}}\n',
    b'{"execute":1}\n',
    b'{"exec-oob":"query-version"}\n',
    b'{"exec-oob":"query-version","execute":"query-version"}\n',
    b"{'execute':'query-version'}\n",
    b'}\n', b']\n', b'\xff\n',
    b'{"execute":"query-version"}{"execute":"query-version","id":2}',
    b'{"execute":"query-status"}\n',
    b'{"execute":"query-version","control":{}}\n',
    b'\x01\n',
    b'{"a":\x01}\n',
    b'{"a":"x\x01y"}\n',
    b'{"execute":"quer\\u0079-version"}\n',
    b'{"execute":"query-version","id":"\\u00e9\\ud83d\\ude00\\u007f"}\n',
    b'{"execute":"query-version","id":"\xc3\xa9"}\n',
    b'{"execute":"query-version","id":"\\ud800"}\n',
    b'{"execute":"query-version","id":"\\q"}\n',
    b'{"execute":"query-version","id":123456789012345678901234}\n',
    b'{"execute":"query-version","id":-0.0}\n',
    b'{"execute":"query-version","id":0.1}\n',
    b'{"execute":"query-version","id":01}\n',
    b'{"execute":"query-version","id":1.}\n',
    b'{"execute":"query-version","id":-}\n',
    b'{"execute":"query-version","id":tru}\n',
    b'{"execute":"query-version","id":True}\n',
    b'{"execute":"query-version" "id":1}\n',
    b'{"execute":"query-version",}\n',
    b'{"execute":"query-version","id":[1,]}\n',
    b'{"execute":"query-version","id":[1 2]}\n',
    b'{"execute":"query-version","id":1,"id":2}\n',
    b'{1:2}\n', b'{"a"}\n', b'{"a":}\n',
    b'{"execute":"query-version","id":' + b'[' * 1023 + b']' * 1023
    + b'}\n',
    b'{"execute":"query-version","id":' + b'[' * 1024 + b']' * 1024
    + b'}\n',
    b'{"execute": "query-version"\n}\n',
    b'{"execute":"query-version"}  \xff {"execute":"query-version","id":9}\n',
    b'{"execute":"x", \xfe "id":9,"a":1}\n',
    b'{"a":\x01\t"b"\r2}\n',
    b'"abc\n"\n{"execute":"query-version","id":9}\n',
    b'nul\x00\n',
    b'["\\u12"]\n', b'["\\uzzzz"]\n', b'["\\u"]\n',
    b'["\\ud800\\u0041"]\n', b'["\\\x01"]\n', b"['\\q']\n",
    b'{"execute":"chardev-remove","arguments":{"id":"qmp0"}}\n',
    b'{"execute":"chardev-remove","arguments":{"id":"zz"}}\n',
]

SESSION_OOB = [
    b'{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n',
    b'{"exec-oob":"query-version","id":7}\n',
    b'{"exec-oob":"nope","id":7}\n',
    b'{"exec-oob":"query-version","execute":"query-version"}\n',
    b'{"exec-oob":1}\n',
    b'{"execute":"query-version"}\n',
]

SESSION_PRETTY = [
    CAPS,
    b'{"execute":"query-version"}\n',
    b'{"execute":"nope","id":{"a":[],"b":{}}}\n',
    b'{"execute":"query-version","id":[1,{"k":"v"}]}\n',
]

SYNC = b'{"execute":"query-version","id":"sync-%d"}\n'


def normalise(data):
    """Make version information daemon-independent."""
    data = re.sub(rb'"micro": \d+', b'"micro": 0', data)
    return re.sub(rb'"package": "[^"]*"', b'"package": "@PACKAGE@"', data)


class Daemon:
    def __init__(self, binary, pretty):
        self.dir = tempfile.mkdtemp(prefix='blockd-qmp-')
        os.chmod(self.dir, 0o700)
        self.path = os.path.join(self.dir, 'qmp.sock')
        self.pretty = pretty
        mon = 'chardev=qmp0' + (',pretty=on' if pretty else '')
        self.proc = subprocess.Popen(
            [binary, '--chardev',
             'socket,id=qmp0,path=%s,server=on,wait=off' % self.path,
             '--monitor', mon])
        self.sock = None
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.path)
                self.sock = s
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError('%s did not start' % binary)
                time.sleep(0.05)
        self.n = 0

    def read_until(self, marker, timeout=3.0):
        data = b''
        deadline = time.monotonic() + timeout
        while marker not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data

    def greeting(self):
        return self.read_until(b'\r\n}\r\n' if self.pretty else b'\r\n')

    def exchange(self, request):
        """Send @request, then a sync command; return what came before
        the sync reply."""
        self.n += 1
        self.sock.sendall(request)
        self.sock.sendall(SYNC % self.n)
        marker = b'"sync-%d"' % self.n
        data = self.read_until(marker)
        if marker not in data:
            return data
        if self.pretty:
            # the sync reply runs to the next line that is just "}"
            if not re.search(rb'\r\n}\r\n', data[data.index(marker):]):
                data += self.read_until(b'\x00never', 0.5)
            sep = b'\r\n{\r\n'
        else:
            if not data.endswith(b'\r\n'):
                data += self.read_until(b'\r\n', 1.0)
            sep = b'\r\n'
        idx = data.index(marker)
        start = data.rfind(sep, 0, idx)
        return data[:start + 2] if start >= 0 else b''

    def quit(self):
        self.sock.sendall(b'{"execute":"quit"}\n')
        data = self.read_until(b'\x00never', 5.0)
        rc = self.proc.wait(10)
        return data, rc

    def close(self):
        if self.sock:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        leftovers = os.listdir(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        return leftovers


def run_session(binary):
    """All replies of one daemon, normalised, as a dict of lists."""
    out = {}
    for name, pretty, requests in (('plain', False, SESSION),
                                   ('oob', False, SESSION_OOB),
                                   ('pretty', True, SESSION_PRETTY)):
        d = Daemon(binary, pretty)
        try:
            replies = [normalise(d.greeting())]
            # before negotiation only the plain session sends raw requests
            for req in requests:
                replies.append(normalise(d.exchange(req)))
            quit_reply, rc = d.quit()
            replies.append(normalise(quit_reply))
            replies.append(b'exit status %d' % rc)
        finally:
            leftovers = d.close()
        replies.append(b'leftover files: %r' % (leftovers,))
        out[name] = replies
    return out


def needs_schema(reply):
    """Replies that come from argument validation (the schema engine)."""
    return b"Parameter '" in reply or b'Invalid parameter type' in reply


def to_text(b):
    return b.decode('latin-1')


def record(path):
    qsd = shutil.which('qemu-storage-daemon')
    if not qsd:
        sys.exit('qemu-storage-daemon is not installed')
    version = subprocess.run([qsd, '--version'], capture_output=True,
                             text=True).stdout.splitlines()[0]
    got = run_session(qsd)
    doc = {
        'comment': 'Replies of %s to the requests of '
                   'tests/integration/test_qmp_session.py, recorded by '
                   'its --record option. Bytes are stored as latin-1 '
                   'code points; "@PACKAGE@" stands for the version '
                   'package string and "micro" is normalised to 0.'
                   % version,
        'sessions': {},
    }
    for name, requests in (('plain', SESSION), ('oob', SESSION_OOB),
                           ('pretty', SESSION_PRETTY)):
        replies = got[name]
        doc['sessions'][name] = {
            'pretty': name == 'pretty',
            'greeting': to_text(replies[0]),
            'exchanges': [
                {'request': to_text(req), 'request-hex': req.hex(),
                 'reply': to_text(rep),
                 'needs-schema': needs_schema(rep)}
                for req, rep in zip(requests, replies[1:])],
            'quit': to_text(replies[len(requests) + 1]),
        }
    with open(path, 'w') as f:
        json.dump(doc, f, indent=1, ensure_ascii=True)
        f.write('\n')


def expected_replies():
    qsd = shutil.which('qemu-storage-daemon')
    if qsd:
        return run_session(qsd), 'qemu-storage-daemon'
    with open(OBSERVED) as f:
        doc = json.load(f)
    out = {}
    for name, sess in doc['sessions'].items():
        reps = [sess['greeting'].encode('latin-1')]
        reps += [e['reply'].encode('latin-1') for e in sess['exchanges']]
        reps.append(sess['quit'].encode('latin-1'))
        reps.append(b'exit status 0')
        reps.append(b'leftover files: []')
        out[name] = reps
    return out, OBSERVED


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--record':
        record(sys.argv[2])
        return 0
    blockd = os.environ.get('BLOCKD',
                            os.path.join(SRC, 'build', 'core', 'blockd'))
    want, source = expected_replies()
    got = run_session(blockd)
    # argument validation is the schema engine's; compare it only when
    # that engine is present (query-qmp-schema exists)
    d = Daemon(blockd, False)
    try:
        d.greeting()
        d.exchange(CAPS)
        has_schema = b'query-qmp-schema' in d.exchange(
            b'{"execute":"query-commands"}\n')
    finally:
        d.close()

    failures = 0
    checked = 0
    for name, requests in (('plain', SESSION), ('oob', SESSION_OOB),
                           ('pretty', SESSION_PRETTY)):
        labels = (['greeting'] + [repr(r)[:70] for r in requests]
                  + ['quit', 'exit status', 'socket file removed'])
        for label, w, g in zip(labels, want[name], got[name]):
            if label == 'socket file removed':
                # qsd leaves its socket behind; blockd must not
                if g != b'leftover files: []':
                    print('FAIL %s/%s: %r' % (name, label, g))
                    failures += 1
                continue
            if needs_schema(w) and not has_schema:
                continue
            checked += 1
            if w != g:
                failures += 1
                print('FAIL %s/%s\n  want %r\n  got  %r' % (name, label,
                                                           w[:300], g[:300]))
    print('%d replies compared with %s, %d differ' % (checked, source,
                                                      failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
