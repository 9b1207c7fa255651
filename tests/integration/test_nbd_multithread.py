#!/usr/bin/python3
"""One NBD export served from two IOThreads ('iothread': ['io0', 'io1'],
QEMU 10.1's multi-threaded exports) while the node stays in the main
loop, driven by real clients:

- four python3-libnbd connections write random data in parallel (each
  its own stripes of the image, unaligned lengths included) and nbdcopy
  copies a random file in with four connections of its own: the image
  equals the reference byte for byte, and both IOThreads (listed by
  query-iothreads) spent CPU time serving them; neither can be deleted
  while the export exists;
- block-export-del mode=hard while clients keep writing: the export goes
  (BLOCK_EXPORT_DELETED), the clients lose their connections, the daemon
  and its node carry on.
"""

import os
import random
import threading
import time

import nbd

import blockd_harness as h

SIZE = 16 << 20
CONNS = 4
STRIPE = 64 << 10


def thread_cpu_ns(pid, tid):
    """Time the thread ran on a CPU, in nanoseconds (schedstat)."""
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        return int(f.read().split()[0])


class NbdMultithread(h.TestCase):

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(SIZE)

    def start(self):
        stamp = time.monotonic_ns()
        self.sock = os.path.join(self.tmpdir, f'nbd-{stamp}.sock')
        qmp_sock = os.path.join(self.tmpdir, f'qmp-{stamp}.sock')
        d = self.start_daemon([
            '--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
            '--monitor', 'chardev=m',
            '--object', 'iothread,id=io0', '--object', 'iothread,id=io1',
            '--blockdev', f'driver=file,node-name=f,filename={self.img}',
            '--nbd-server', f'addr.type=unix,addr.path={self.sock}',
            '--export', '{"type": "nbd", "id": "e", "node-name": "f", '
                        '"name": "disk", "writable": true, '
                        '"iothread": ["io0", "io1"]}'])
        d.wait_for_socket_file(qmp_sock)
        d.wait_for_socket_file(self.sock)
        return d, self.qmp(qmp_sock)

    def uri(self):
        return f'nbd+unix:///disk?socket={self.sock}'

    def connect(self):
        c = nbd.NBD()
        c.connect_uri(self.uri())
        return c

    def test_parallel_writers(self):
        d, qmp = self.start()
        threads = qmp.command('query-iothreads')
        self.assertEqual(sorted(t['id'] for t in threads), ['io0', 'io1'])
        tids = [t['thread-id'] for t in threads]
        cpu_before = [thread_cpu_ns(d.pid, t) for t in tids]

        # nbdcopy fills the image through four connections of its own
        src = os.path.join(self.tmpdir, 'src.raw')
        ref = bytearray(os.urandom(SIZE))
        with open(src, 'wb') as f:
            f.write(ref)
        res = self.run_command(['nbdcopy', '--connections=4', '--requests=16',
                                src, self.uri()], timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)

        # then random writes in parallel, connection k in its own stripes
        errors = []
        lock = threading.Lock()

        def writer(k, seed):
            rnd = random.Random(seed)
            try:
                c = self.connect()
                self.assertTrue(c.can_multi_conn())
                for _ in range(300):
                    stripe = rnd.randrange(SIZE // STRIPE // CONNS)
                    base = (stripe * CONNS + k) * STRIPE
                    off = base + rnd.randrange(STRIPE - 1)
                    length = rnd.randint(1, base + STRIPE - off)
                    data = rnd.randbytes(length)
                    c.pwrite(data, off)
                    with lock:
                        ref[off:off + length] = data
                c.flush()
                c.shutdown()
            except Exception as e:  # reported by the main thread
                errors.append(f'writer {k}: {e!r}')

        workers = [threading.Thread(target=writer, args=(k, 1000 + k))
                   for k in range(CONNS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        self.assertEqual(errors, [])

        # what a fresh connection reads, and the file itself
        c = self.connect()
        self.assertEqual(c.pread(SIZE, 0), bytes(ref))
        c.shutdown()
        with open(self.img, 'rb') as f:
            self.assertEqual(f.read(), bytes(ref))

        cpu_after = [thread_cpu_ns(d.pid, t) for t in tids]
        for tid, before, after in zip(tids, cpu_before, cpu_after):
            # an idle IOThread sleeps in epoll: any real work shows here
            self.assertGreater(after - before, 1000000,
                               f'IOThread {tid} served nothing')
        # the export's threads cannot go while it uses them
        for t in ('io0', 'io1'):
            self.assertIn('error', qmp.execute('object-del', {'id': t}))
        qmp.command('block-export-del', id='e')
        qmp.wait_event('BLOCK_EXPORT_DELETED')
        qmp.command('blockdev-del', **{'node-name': 'f'})
        self.assertEqual(qmp.command('object-del', id='io0'), {})
        self.assertEqual(qmp.command('object-del', id='io1'), {})
        self.assertEqual(d.stop(), 0)

    def test_hard_delete_while_busy(self):
        d, qmp = self.start()
        stop = threading.Event()
        started = threading.Barrier(CONNS + 1, timeout=60)
        outcomes = []

        def writer(k):
            rnd = random.Random(k)
            c = self.connect()
            started.wait()
            try:
                while not stop.is_set():
                    c.pwrite(rnd.randbytes(256 << 10),
                             rnd.randrange(SIZE // 4096 - 64) * 4096)
                outcomes.append('stopped')
            except nbd.Error as e:
                outcomes.append(f'error: {e}')

        workers = [threading.Thread(target=writer, args=(k,))
                   for k in range(CONNS)]
        for w in workers:
            w.start()
        started.wait()
        # the clients are busy: wait until writes arrive at the file
        d.wait_until(lambda: os.stat(self.img).st_blocks > 0,
                     'writes reaching the image', h.START_TIMEOUT)
        qmp.command('block-export-del', id='e', mode='hard')
        qmp.wait_event('BLOCK_EXPORT_DELETED')
        self.assertEqual(qmp.command('query-block-exports'), [])
        for w in workers:
            w.join(60)
        stop.set()
        self.assertEqual(len(outcomes), CONNS)
        for o in outcomes:
            self.assertTrue(o.startswith('error'), o)
        # the daemon and its node carry on
        self.assertTrue(d.running())
        qmp.command('blockdev-del', **{'node-name': 'f'})
        self.assertEqual(d.stop(), 0)


if __name__ == '__main__':
    h.main()
