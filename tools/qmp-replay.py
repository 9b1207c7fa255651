#!/usr/bin/python3
"""Drive one long QMP session against a blockd binary and print every
reply line, byte for byte, with the parts that change between runs
(the private directory, event timestamps) replaced by fixed text.

Used to show that a change which should not alter behaviour (a
refactoring of the core) does not: record the output with the old build,
run again with the new one, and compare the two files.

  tools/qmp-replay.py BLOCKD OUTPUT

BLOCKD is the daemon binary (its build tree's plugins are found
automatically).  Standard library only; run with /usr/bin/python3.
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

# Requests sent in order, each one line.  They cover the control
# commands, every command family the core and the built plugins provide,
# and error paths (unknown command, bad arguments, unknown ids).
SESSION = [
    {'execute': 'query-version'},
    {'execute': 'query-status'},
    {'execute': 'query-commands'},
    {'execute': 'query-qmp-schema'},
    {'execute': 'query-plugins'},
    {'execute': 'qom-list-types'},
    {'execute': 'qom-list-types', 'arguments': {'implements': 'tls-creds'}},
    {'execute': 'qom-list-properties', 'arguments': {'typename': 'iothread'}},
    {'execute': 'qom-list-properties', 'arguments': {'typename': 'nope'}},
    {'execute': 'nope', 'id': 'x'},
    {'execute': 'query-version', 'arguments': {'x': 1}},
    {'execute': 'query-named-block-nodes'},
    {'execute': 'query-block'},
    {'execute': 'query-iothreads'},
    {'execute': 'object-add', 'arguments': {'qom-type': 'iothread', 'id': 'io0'}},
    {'execute': 'object-add', 'arguments': {'qom-type': 'iothread', 'id': 'io0'}},
    {'execute': 'object-add', 'arguments': {'qom-type': 'iothread', 'id': '0bad'}},
    {'execute': 'object-add', 'arguments': {'qom-type': 'secret', 'id': 'sec0', 'data': 'hunter2'}},
    {'execute': 'object-add', 'arguments': {'qom-type': 'nope', 'id': 'n0'}},
    {'execute': 'object-add', 'arguments': {'qom-type': 'authz-simple', 'id': 'az0', 'identity': 'bob'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'file', 'node-name': 'f0', 'filename': '@DIR@/a.raw'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'raw', 'node-name': 'r0', 'file': 'f0'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'raw', 'node-name': 'r0', 'file': 'f0'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'file', 'node-name': 'f1', 'filename': '@DIR@/missing.raw'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'nope', 'node-name': 'x0'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'null-co', 'node-name': 'n0', 'size': 1048576}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'null-aio', 'node-name': '-bad'}},
    {'execute': 'blockdev-add', 'arguments': {'driver': 'null-co'}},
    {'execute': 'query-named-block-nodes'},
    {'execute': 'query-named-block-nodes', 'arguments': {'flat': True}},
    {'execute': 'query-block'},
    {'execute': 'query-blockstats'},
    {'execute': 'query-blockstats', 'arguments': {'query-nodes': True}},
    {'execute': 'x-debug-query-block-graph'},
    {'execute': 'block_resize', 'arguments': {'node-name': 'r0', 'size': 2097152}},
    {'execute': 'block_resize', 'arguments': {'node-name': 'zz', 'size': 2097152}},
    {'execute': 'block_resize', 'arguments': {'node-name': 'r0', 'size': -1}},
    {'execute': 'block-set-write-threshold', 'arguments': {'node-name': 'r0', 'write-threshold': 65536}},
    {'execute': 'block-set-write-threshold', 'arguments': {'node-name': 'qq', 'write-threshold': 65536}},
    {'execute': 'block-dirty-bitmap-add', 'arguments': {'node': 'r0', 'name': 'b0'}},
    {'execute': 'block-dirty-bitmap-add', 'arguments': {'node': 'r0', 'name': 'b0'}},
    {'execute': 'block-dirty-bitmap-add', 'arguments': {'node': 'r0', 'name': 'b1', 'granularity': 3}},
    {'execute': 'block-dirty-bitmap-disable', 'arguments': {'node': 'r0', 'name': 'b0'}},
    {'execute': 'block-dirty-bitmap-enable', 'arguments': {'node': 'r0', 'name': 'b0'}},
    {'execute': 'block-dirty-bitmap-clear', 'arguments': {'node': 'r0', 'name': 'b0'}},
    {'execute': 'x-debug-block-dirty-bitmap-sha256', 'arguments': {'node': 'r0', 'name': 'b0'}},
    {'execute': 'block-dirty-bitmap-add', 'arguments': {'node': 'r0', 'name': 'b2'}},
    {'execute': 'block-dirty-bitmap-merge', 'arguments': {'node': 'r0', 'target': 'b2', 'bitmaps': ['b0']}},
    {'execute': 'block-dirty-bitmap-remove', 'arguments': {'node': 'r0', 'name': 'b2'}},
    {'execute': 'block-dirty-bitmap-remove', 'arguments': {'node': 'r0', 'name': 'nope'}},
    {'execute': 'blockdev-reopen', 'arguments': {'options': [{'driver': 'raw', 'node-name': 'r0', 'file': 'f0', 'read-only': True}]}},
    {'execute': 'blockdev-reopen', 'arguments': {'options': [{'driver': 'raw', 'node-name': 'r0', 'file': 'f0', 'read-only': False}]}},
    {'execute': 'x-blockdev-set-iothread', 'arguments': {'node-name': 'r0', 'iothread': 'io0'}},
    {'execute': 'x-blockdev-set-iothread', 'arguments': {'node-name': 'r0', 'iothread': 'nope'}},
    {'execute': 'x-blockdev-set-iothread', 'arguments': {'node-name': 'r0', 'iothread': None}},
    {'execute': 'nbd-server-start', 'arguments': {'addr': {'type': 'unix', 'path': '@DIR@/nbd.sock'}}},
    {'execute': 'nbd-server-start', 'arguments': {'addr': {'type': 'unix', 'data': {'path': '@DIR@/nbd.sock'}}}},
    {'execute': 'nbd-server-start', 'arguments': {'addr': {'type': 'unix', 'data': {'path': '@DIR@/nbd2.sock'}}}},
    {'execute': 'block-export-add', 'arguments': {'type': 'nbd', 'id': 'e0', 'node-name': 'r0', 'writable': True}},
    {'execute': 'block-export-add', 'arguments': {'type': 'nbd', 'id': 'e0', 'node-name': 'r0'}},
    {'execute': 'block-export-add', 'arguments': {'type': 'nbd', 'id': 'e1', 'node-name': 'zz'}},
    {'execute': 'block-export-add', 'arguments': {'type': 'nope', 'id': 'e2', 'node-name': 'r0'}},
    {'execute': 'nbd-server-add', 'arguments': {'device': 'n0', 'name': 'nn'}},
    {'execute': 'query-block-exports'},
    {'execute': 'blockdev-del', 'arguments': {'node-name': 'r0'}},
    {'execute': 'nbd-server-remove', 'arguments': {'name': 'nn'}},
    {'execute': 'block-export-del', 'arguments': {'id': 'e0'}},
    {'execute': 'block-export-del', 'arguments': {'id': 'e0'}},
    {'execute': 'query-block-exports'},
    {'execute': 'nbd-server-stop'},
    {'execute': 'nbd-server-stop'},
    {'execute': 'chardev-add', 'arguments': {'id': 'c0', 'backend': {'type': 'socket', 'data': {'addr': {'type': 'unix', 'data': {'path': '@DIR@/c0.sock'}}, 'server': True, 'wait': False}}}},
    {'execute': 'chardev-add', 'arguments': {'id': 'c0', 'backend': {'type': 'null', 'data': {}}}},
    {'execute': 'query-chardev'},
    {'execute': 'chardev-remove', 'arguments': {'id': 'c0'}},
    {'execute': 'chardev-remove', 'arguments': {'id': 'c0'}},
    {'execute': 'object-del', 'arguments': {'id': 'io0'}},
    {'execute': 'object-del', 'arguments': {'id': 'nope'}},
    {'execute': 'blockdev-del', 'arguments': {'node-name': 'r0'}},
    {'execute': 'blockdev-del', 'arguments': {'node-name': 'f0'}},
    {'execute': 'blockdev-del', 'arguments': {'node-name': 'f0'}},
    {'execute': 'blockdev-del', 'arguments': {'node-name': 'n0'}},
    {'execute': 'trace-event-get-state', 'arguments': {'name': '*'}},
    {'execute': 'query-named-block-nodes'},
    {'execute': 'quit'},
]


def normalise(line, tmpdir):
    line = line.replace(tmpdir.encode(), b'@DIR@')
    line = re.sub(rb'"seconds": \d+, "microseconds": \d+',
                  b'"seconds": S, "microseconds": U', line)
    return line


def main():
    blockd, output = sys.argv[1], sys.argv[2]
    tmpdir = tempfile.mkdtemp(prefix='qmp-replay-',
                              dir=os.path.dirname(os.path.abspath(output)))
    try:
        with open(os.path.join(tmpdir, 'a.raw'), 'wb') as f:
            f.truncate(1 << 20)
        qmp = os.path.join(tmpdir, 'qmp.sock')
        proc = subprocess.Popen(
            [blockd, '--chardev',
             'socket,id=qmp0,path=%s,server=on,wait=off' % qmp,
             '--monitor', 'chardev=qmp0'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 20
        while True:
            try:
                sock.connect(qmp)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(20)
        buf = b''
        out = []

        def read_until_reply():
            """Read lines up to the next one that is not an event, then
            whatever else arrives within 0.1 s (events a command emits
            after its reply), so that every line lands after the request
            that caused it."""
            nonlocal buf
            replied = False
            while True:
                line, sep, rest = buf.partition(b'\n')
                if sep:
                    buf = rest
                    out.append(normalise(line, tmpdir))
                    if 'event' not in json.loads(line):
                        replied = True
                    continue
                if replied:
                    sock.settimeout(0.1)
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    chunk = None
                finally:
                    sock.settimeout(20)
                if chunk is None:
                    return
                if not chunk:
                    out.append(b'<closed>')
                    return
                buf += chunk

        read_until_reply()          # greeting
        sock.sendall(b'{"execute":"qmp_capabilities"}\n')
        read_until_reply()
        for req in SESSION:
            data = json.dumps(req).replace('@DIR@', tmpdir)
            out.append(b'>>> ' + normalise(data.encode(), tmpdir))
            sock.sendall(data.encode() + b'\n')
            read_until_reply()
        # whatever comes until the daemon closes (events after quit)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            pass
        for line in buf.split(b'\n'):
            if line:
                out.append(normalise(line, tmpdir))
        proc.wait(timeout=20)
        out.append(b'exit %d' % proc.returncode)
        with open(output, 'wb') as f:
            f.write(b'\n'.join(out) + b'\n')
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == '__main__':
    main()
