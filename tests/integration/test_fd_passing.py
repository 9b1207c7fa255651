#!/usr/bin/python3
"""The manual page's example of starting the daemon with a QMP monitor on
an inherited listening socket (--chardev socket,fd=N,server=on), run as
the manual gives it against blockd and qemu-storage-daemon.

Only the program, the socket's path (a private directory instead of
/var/run) and the "...QMP interaction..." placeholder are filled in.  The
interaction records the daemon's pid from the socket's peer credentials,
so that the test can always stop it.
"""
import json
import os
import sys

import blockd_harness
from blockd_harness import BLOCKD, TestCase, find_qsd, stop_pid

# As in the manual (docs/tools/qemu-storage-daemon.rst of QEMU 7.2).
EXAMPLE = '''\
#!/usr/bin/env python3
import subprocess
import socket

sock_path = '/var/run/qmp.sock'

with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listen_sock:
    listen_sock.bind(sock_path)
    listen_sock.listen()

    fd = listen_sock.fileno()

    subprocess.Popen(
        ['qemu-storage-daemon',
         '--chardev', f'socket,fd={fd},server=on,id=char1',
         '--monitor', 'chardev=char1'],
        pass_fds=[fd],
    )

# listen_sock was automatically closed when leaving the 'with' statement
# body. If the daemon process terminated early then the following connect()
# will fail with "Connection refused" because no process has the listen
# socket open anymore. Launch errors can be detected this way.

qmp_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
qmp_sock.connect(sock_path)
...QMP interaction...
'''

INTERACTION = '''\
import json, struct, sys
creds = qmp_sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                            struct.calcsize('3i'))
print(json.dumps({'pid': struct.unpack('3i', creds)[0]}), flush=True)
qmp = qmp_sock.makefile('rwb')
def request(line):
    if line:
        qmp.write(line.encode() + b'\\n')
        qmp.flush()
    print(qmp.readline().decode().strip(), flush=True)
request('')
request('{"execute":"qmp_capabilities"}')
request('{"execute":"query-version"}')
request('{"execute":"quit"}')
'''


class FdPassingTests(TestCase):

    def run_example(self, program):
        sock_path = os.path.join(self.make_tmpdir(), 'qmp.sock')
        script = (EXAMPLE.replace("'qemu-storage-daemon'", repr(program))
                  .replace("'/var/run/qmp.sock'", repr(sock_path))
                  .replace('...QMP interaction...\n', INTERACTION))
        self.assertNotIn('...', script)
        path = os.path.join(self.tmpdir, 'example.py')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(script)
        res = self.run_command([sys.executable, path], timeout=60)
        lines = res.stdout.splitlines()
        if lines:
            pid = json.loads(lines[0])['pid']
            self.addCleanup(stop_pid, pid)
        self.assertEqual(res.returncode, 0, res.stderr)
        replies = [json.loads(line) for line in lines[1:]]
        self.assertEqual(len(replies), 4, res.stdout)
        self.assertIn('QMP', replies[0])
        self.assertEqual(replies[1], {'return': {}})
        self.assertEqual(replies[2]['return']['qemu']['major'], 7)
        self.assertEqual(replies[3], {'return': {}})
        return replies

    def test_blockd(self):
        replies = self.run_example(BLOCKD)
        self.assertTrue(replies[2]['return']['package'].startswith('blockd'))

    def test_qsd(self):
        qsd = find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        self.run_example(qsd)


if __name__ == '__main__':
    blockd_harness.main()
