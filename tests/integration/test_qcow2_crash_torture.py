"""Crash torture: blockd is killed with SIGKILL at random instants while
a client makes random allocating writes to a qcow2 image; after each
kill the image must be consistent and hold what was made durable.

Each round starts blockd on the image (left as the previous round's kill
left it), connects over NBD and sends random writes, zero writes and
whole-cluster discards, up to 8 at a time, with a flush now and then,
until a timer kills the daemon.  Then, with qemu's own tools:

- `qemu-img check` finds no corruption: leaks only (they are repaired
  before the next round), or, for a lazy_refcounts image (whose
  refcounts are allowed to be stale after a crash), nothing at all once
  `qemu-img check -r all` has repaired it, as qemu does when it opens
  such an image;
- every byte written by a request that was acknowledged before a flush
  that completed reads back (through `qemu-img convert`) as written.
  What requests sent after the last completed flush wrote may or may
  not be there; those ranges are not compared.

Rounds go over several layouts (default, lazy_refcounts, extended_l2,
4 KiB clusters, 512-byte clusters), a fresh image every few rounds so
that writes keep allocating.  BLOCKD_QCOW2_TORTURE_ROUNDS sets the number
of rounds (default 15, for CI; run hundreds by hand), BLOCKD_QCOW2_TORTURE_SEED
the seed (default 1).  Setting BLOCKD to qemu-storage-daemon runs the
same torture against the reference.
"""

import os
import random
import signal
import sys
import threading

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import blockd_harness  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
SIZE = 32 * MIB
SECTOR = 512
ROUNDS = int(os.environ.get('BLOCKD_QCOW2_TORTURE_ROUNDS', '15'))
SEED = int(os.environ.get('BLOCKD_QCOW2_TORTURE_SEED', '1'))
ROUNDS_PER_IMAGE = 3
DEPTH = 8

LAYOUTS = [
    ('default', '', 64 * KIB),
    ('lazy', 'lazy_refcounts=on', 64 * KIB),
    ('extl2', 'extended_l2=on', 64 * KIB),
    ('small', 'cluster_size=4096', 4 * KIB),
    # a refcount block every 128 KiB and a table that grows past 8 MiB:
    # new refcount blocks and tables are placed under the kills too
    ('tiny', 'cluster_size=512', 512),
]


class CrashTortureTest(blockd_harness.TestCase):

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def new_image(self, opts):
        image = self.path('img.qcow2')
        if os.path.exists(image):
            os.unlink(image)
        argv = ['qemu-img', 'create', '-f', 'qcow2']
        if opts:
            argv += ['-o', opts]
        r = self.run_command(argv + [image, str(SIZE)])
        self.assertEqual(r.returncode, 0, r.stderr)
        return image

    def start(self, image, sock):
        if os.path.exists(sock):
            os.unlink(sock)
        daemon = self.start_daemon([
            '--blockdev', f'driver=file,node-name=f,filename={image}',
            '--blockdev', 'driver=qcow2,node-name=q,file=f,discard=unmap',
            '--nbd-server', f'addr.type=unix,addr.path={sock}',
            '--export', 'type=nbd,id=e,node-name=q,name=e,writable=on'])
        daemon.wait_for_socket(sock)
        return daemon

    def one_op(self, rng, cluster):
        r = rng.random()
        if r < 0.7:
            length = SECTOR * rng.choice([1, 8, 8, 16, 64, 128, 300])
            offset = SECTOR * rng.randrange((SIZE - length) // SECTOR + 1)
            return 'write', offset, length
        if r < 0.85:
            length = SECTOR * rng.choice([8, 128, 512])
            offset = SECTOR * rng.randrange((SIZE - length) // SECTOR + 1)
            return 'zero', offset, length
        length = cluster * rng.choice([1, 2, 4])
        offset = cluster * rng.randrange((SIZE - length) // cluster + 1)
        return 'trim', offset, length

    def hammer(self, uri, rng, cluster, model, unsure):
        """Send requests until the connection dies.  `model` gets every
        acknowledged write; `unsure` (one byte per sector) marks what was
        sent since the last completed flush."""
        h = nbd.NBD()
        try:
            h.connect_uri(uri)
            while True:
                batch, busy = [], []
                for _ in range(rng.randint(1, DEPTH)):
                    kind, offset, length = self.one_op(rng, cluster)
                    end = offset + length
                    if any(o < end and offset < e for o, e, *_ in busy):
                        continue
                    unsure[offset // SECTOR:end // SECTOR] = \
                        b'\1' * (length // SECTOR)
                    if kind == 'write':
                        data = rng.randbytes(length)
                        cookie = h.aio_pwrite(data, offset)
                    elif kind == 'zero':
                        data = bytes(length)
                        cookie = h.aio_zero(length, offset)
                    else:
                        data = bytes(length)
                        cookie = h.aio_trim(length, offset)
                    batch.append(cookie)
                    busy.append((offset, end, data))
                while h.aio_in_flight() > 0:
                    h.poll(-1)
                for cookie, (offset, end, data) in zip(batch, busy):
                    h.aio_command_completed(cookie)   # raises on error
                    model[offset:end] = data
                    self.stats['acknowledged'] += 1
                if rng.random() < 0.3:
                    h.flush()
                    unsure[:] = bytes(len(unsure))
                    self.stats['flushes'] += 1
        except nbd.Error:
            return      # the daemon was killed
        finally:
            del h

    def verify(self, image, lazy, model, unsure, what):
        if lazy:
            r = self.run_command(['qemu-img', 'check', '-r', 'all', image])
            self.assertIn(r.returncode, (0, 3), f'{what}: repair: '
                          f'{r.stdout}{r.stderr}')
            r = self.run_command(['qemu-img', 'check', image])
            self.assertEqual(r.returncode, 0, f'{what}: after repair: '
                             f'{r.stdout}{r.stderr}')
        else:
            r = self.run_command(['qemu-img', 'check', image])
            # 0: clean; 3: leaked clusters only; 2: corruption
            self.assertIn(r.returncode, (0, 3),
                          f'{what}: {r.stdout}{r.stderr}')
            if r.returncode == 3:
                self.stats['rounds with leaks'] += 1
                r = self.run_command(['qemu-img', 'check', '-r', 'leaks',
                                      image])
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        raw = self.path('read.raw')
        r = self.run_command(['qemu-img', 'convert', '-O', 'raw', image,
                              raw])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(raw, 'rb') as f:
            got = f.read()
        os.unlink(raw)
        self.assertEqual(len(got), SIZE)
        step = 64 * KIB
        for start in range(0, SIZE, step):
            if got[start:start + step] == model[start:start + step]:
                continue
            for s in range(start // SECTOR, (start + step) // SECTOR):
                if unsure[s]:
                    continue
                a, b = s * SECTOR, (s + 1) * SECTOR
                self.assertTrue(got[a:b] == model[a:b],
                                f'{what}: sector {s} (offset {a}) lost '
                                'data written and flushed before the kill')
        # what reads back now is the truth for the next round
        model[:] = got
        unsure[:] = bytes(len(unsure))

    def test_torture(self):
        rng = random.Random(SEED)
        self.stats = {'acknowledged': 0, 'flushes': 0,
                      'rounds with leaks': 0}
        sock = self.path('nbd.sock')
        uri = f'nbd+unix:///e?socket={sock}'
        kills = 0
        model = bytearray(SIZE)
        unsure = bytearray(SIZE // SECTOR)
        for rnd in range(ROUNDS):
            name, opts, cluster = LAYOUTS[(rnd // ROUNDS_PER_IMAGE) %
                                          len(LAYOUTS)]
            if rnd % ROUNDS_PER_IMAGE == 0:
                image = self.new_image(opts)
                model[:] = bytes(SIZE)
            what = f'seed {SEED} round {rnd} ({name})'
            daemon = self.start(image, sock)
            timer = threading.Timer(rng.uniform(0.02, 0.5),
                                    os.kill, (daemon.pid, signal.SIGKILL))
            timer.start()
            try:
                self.hammer(uri, rng, cluster, model, unsure)
            finally:
                timer.join()
            status = daemon.wait()
            self.assertEqual(status, -signal.SIGKILL,
                             f'{what}: the daemon did not die of the kill:'
                             f'\n{daemon.stderr()}')
            kills += 1
            self.verify(image, name == 'lazy', model, unsure, what)
        self.assertEqual(kills, ROUNDS)
        print(f'{kills} kills; ' +
              ', '.join(f'{v} {k}' for k, v in self.stats.items()),
              file=sys.stderr)
        # the kills came while requests were going on
        self.assertGreater(self.stats['acknowledged'], ROUNDS)


if __name__ == '__main__':
    blockd_harness.main()
