#!/usr/bin/python3
"""A daemon out of file descriptors (issue #21).

When accept() fails with EMFILE the connection stays queued and the
listening socket stays readable: a server that kept watching it would
spin.  Here blockd's descriptor limit is lowered (prlimit on its pid) and
NBD connections that stall in their handshake (no deadline:
handshake-max-seconds=0) use up the rest, with a QMP client queued
behind them.  Then:

- the daemon does not spin: over 3 s its CPU time and the time its main
  loop was runnable (ran or waited for a CPU, which a spinning loop is
  all the time whatever the machine's load) are each under half the wall
  time;
- it said so on stderr, once, though it tried again many times;
- once the stalled connections go, the queued QMP client gets its
  greeting and answers, and a fresh NBD client is served.

qemu-storage-daemon 7.2 spins in the same situation: nothing to compare
with here.
"""

import json
import os
import resource
import socket
import struct
import time

import blockd_harness as h

CLK_TCK = os.sysconf('SC_CLK_TCK')
# descriptors left to the daemon above what it has open when started
SPARE_FDS = 16
STALLED = 40
LIVENESS = 30.0
WARNING = 'cannot accept a connection: Too many open files'


def cpu_seconds(pid):
    """User plus system time of every thread of @pid."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runnable_seconds(pid):
    """Time the main thread ran or waited on a run queue."""
    with open(f'/proc/{pid}/schedstat') as f:
        run, wait, _ = f.read().split()
    return (int(run) + int(wait)) / 1e9


class FdExhaustion(h.TestCase):

    def test_no_spinning_and_qmp_comes_back(self):
        img = os.path.join(self.tmpdir, 'img.raw')
        with open(img, 'wb') as f:
            f.truncate(1 << 20)
        qmp_sock = os.path.join(self.tmpdir, 'qmp.sock')
        nbd_sock = os.path.join(self.tmpdir, 'nbd.sock')
        d = self.start_daemon([
            '--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
            '--monitor', 'chardev=m',
            '--blockdev', f'driver=file,node-name=f,filename={img}',
            '--nbd-server', f'addr.type=unix,addr.path={nbd_sock},'
            'max-connections=0,handshake-max-seconds=0',
            '--export', 'type=nbd,id=e,node-name=f,name=disk'])
        d.wait_for_socket(nbd_sock)
        d.wait_for_socket_file(qmp_sock)
        limit = len(os.listdir(f'/proc/{d.pid}/fd')) + SPARE_FDS
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (limit, limit))

        stalled = []
        self.addCleanup(lambda: [s.close() for s in stalled])
        for _ in range(STALLED):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(nbd_sock)
            s.sendall(struct.pack('>H', 0))     # half the client flags
            stalled.append(s)
        # the daemon takes what it can, then stops accepting
        greeted = 0
        for s in stalled:
            s.settimeout(1.0 if greeted < SPARE_FDS // 2 else 0.2)
            try:
                if s.recv(18):
                    greeted += 1
            except socket.timeout:
                pass
        self.assertGreater(greeted, 0)
        self.assertLess(greeted, STALLED, 'descriptors did not run out')

        qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(qmp.close)
        qmp.connect(qmp_sock)
        t0, cpu0, run0 = (time.monotonic(), cpu_seconds(d.pid),
                          runnable_seconds(d.pid))
        time.sleep(3)
        wall = time.monotonic() - t0
        cpu = (cpu_seconds(d.pid) - cpu0) / wall
        runnable = (runnable_seconds(d.pid) - run0) / wall
        print(f'\n  out of descriptors: CPU {cpu:.0%} of wall time, main '
              f'loop runnable {runnable:.0%}', end=' ')
        self.assertLess(cpu, 0.5, 'the daemon spins')
        self.assertLess(runnable, 0.5, 'the main loop spins')
        qmp.settimeout(0.1)
        with self.assertRaises(socket.timeout,
                               msg='QMP was accepted: no exhaustion'):
            qmp.recv(1)
        self.assertEqual(d.stderr().count(WARNING), 1, d.stderr())

        for s in stalled:
            s.close()
        qmp.settimeout(LIVENESS)
        buf = b''
        while b'\n' not in buf:
            chunk = qmp.recv(4096)
            self.assertTrue(chunk, 'QMP connection closed')
            buf += chunk
        self.assertIn(b'"QMP"', buf)
        qmp.sendall(b'{"execute": "qmp_capabilities"}\n'
                    b'{"execute": "query-block-exports"}\n')
        buf = buf.split(b'\n', 1)[1]
        while buf.count(b'\n') < 2:
            chunk = qmp.recv(4096)
            self.assertTrue(chunk, 'QMP connection closed')
            buf += chunk
        replies = [json.loads(line) for line in buf.split(b'\n')[:2]]
        self.assertEqual(replies[0], {'return': {}})
        self.assertEqual([e['id'] for e in replies[1]['return']], ['e'])

        res = self.run_command(['qemu-io', '-r', '-f', 'raw', '-c',
                                'read 0 4k',
                                f'nbd+unix:///disk?socket={nbd_sock}'],
                               timeout=LIVENESS)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


if __name__ == '__main__':
    h.main()
