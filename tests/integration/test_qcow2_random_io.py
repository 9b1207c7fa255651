"""Thousands of random writes, zero writes and discards through blockd
leave a qcow2 image that qemu-img check finds clean (no corruption, no
leaks) and qemu-img compare finds equal to a reference.

The requests go over NBD, up to 16 at a time (never two overlapping, so
the outcome is defined), to a qcow2 node opened with discard=unmap; the
same requests applied in order to a raw file give the reference.
Discards cover whole clusters, so that qemu's qcow2 reads them back as
zeroes.  Several image layouts are driven the same way.

The number of requests per layout is BLOCKD_QCOW2_RANDOM_OPS (default
1000, a third of it for 512-byte and 2 MiB clusters: about 10000 in
all); the random seed is BLOCKD_QCOW2_RANDOM_SEED (default 1) and is
printed on failure.  Setting BLOCKD to qemu-storage-daemon runs the same
checks against the reference daemon.
"""

import os
import random
import subprocess
import sys

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import blockd_harness  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
SIZE = 64 * MIB
OPS = int(os.environ.get('BLOCKD_QCOW2_RANDOM_OPS', '1000'))
SEED = int(os.environ.get('BLOCKD_QCOW2_RANDOM_SEED', '1'))
DEPTH = 16
# An image file may hold each guest cluster a few times over while
# refcounts and leaks settle, never more: past this the driver is
# allocating without bound, and the test stops before the disk fills.
MAX_FILE_SIZE = 4 * SIZE + 64 * MIB


def monitor_args(sock):
    return ['--chardev', f'socket,id=qmp0,path={sock},server=on,wait=off',
            '--monitor', 'chardev=qmp0']


class RandomIoTest(blockd_harness.TestCase):

    def setUp(self):
        super().setUp()
        self.qmp_sock = os.path.join(self.tmpdir, 'qmp.sock')
        self.nbd_sock = os.path.join(self.tmpdir, 'nbd.sock')
        self.daemon = self.start_daemon(monitor_args(self.qmp_sock))
        self.daemon.wait_for_socket_file(self.qmp_sock)
        self.mon = self.qmp(self.qmp_sock)
        self.mon.command('nbd-server-start', {
            'addr': {'type': 'unix', 'data': {'path': self.nbd_sock}}})

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def img(self, *args):
        r = self.run_command(['qemu-img'] + list(args))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def random_ops(self, rng, cluster, count):
        """`count` (kind, offset, length) tuples; kind is write, zero
        (may unmap), zero-alloc (NBD_CMD_FLAG_NO_HOLE), trim, flush."""
        ops = []
        for _ in range(count):
            r = rng.random()
            if r < 0.02:
                ops.append(('flush', 0, 0))
                continue
            if r < 0.62:
                kind = 'write'
                # mostly small, sometimes across many clusters
                length = 512 * rng.choice([1, 2, 7, 8, 16, 64, 128, 257, 512])
                offset = 512 * rng.randrange((SIZE - length) // 512 + 1)
            elif r < 0.84:
                kind = rng.choice(['zero', 'zero-alloc'])
                length = 512 * rng.choice([1, 8, 128, 256, 1024])
                offset = 512 * rng.randrange((SIZE - length) // 512 + 1)
            else:
                kind = 'trim'
                n = rng.choice([1, 1, 2, 5, 16])
                length = n * cluster
                offset = cluster * rng.randrange((SIZE - length) // cluster
                                                 + 1)
            ops.append((kind, offset, length))
        return ops

    def drive(self, image, ref_path, cluster, count, node_opts=None,
              seed=SEED):
        """Apply the random requests to `image` through blockd and to
        the raw `ref_path`."""
        node = 'n0'
        args = {'driver': 'qcow2', 'node-name': node, 'discard': 'unmap',
                'file': {'driver': 'file', 'filename': image}}
        args.update(node_opts or {})
        self.mon.command('blockdev-add', args)
        self.mon.command('block-export-add', {
            'type': 'nbd', 'id': 'e0', 'node-name': node, 'name': 'e0',
            'writable': True})
        rng = random.Random(seed)
        ops = self.random_ops(rng, cluster, count)
        h = nbd.NBD()
        h.connect_uri(f'nbd+unix:///e0?socket={self.nbd_sock}')
        ref = open(ref_path, 'r+b')
        try:
            batch, busy = [], []
            for kind, offset, length in ops:
                end = offset + length
                if kind == 'flush' or len(batch) == DEPTH or any(
                        o < end and offset < e for o, e in busy):
                    self.complete(h, batch, image)
                    batch, busy = [], []
                if kind == 'flush':
                    self.complete(h, [h.aio_flush()], image)
                    continue
                busy.append((offset, end))
                ref.seek(offset)
                if kind == 'write':
                    data = rng.randbytes(length)
                    ref.write(data)
                    batch.append(h.aio_pwrite(data, offset))
                elif kind in ('zero', 'zero-alloc'):
                    ref.write(bytes(length))
                    flags = (nbd.CMD_FLAG_NO_HOLE if kind == 'zero-alloc'
                             else 0)
                    batch.append(h.aio_zero(length, offset, flags=flags))
                else:
                    ref.write(bytes(length))
                    batch.append(h.aio_trim(length, offset))
            self.complete(h, batch, image)
            self.complete(h, [h.aio_flush()], image)
            # reads of 1 MiB, spanning clusters mapped all over the file
            # (the driver reads those side by side), return what was
            # written
            ref.flush()
            size = h.get_size()
            ref.seek(0)
            for off in range(0, size, MIB):
                n = min(MIB, size - off)
                self.assertEqual(h.pread(n, off), ref.read(n),
                                 f'seed {SEED}: the read of {n} bytes at '
                                 f'{off}')
            h.shutdown()
        finally:
            # after a failure, no orderly shutdown: it would wait for
            # the requests still in flight
            ref.close()
        self.mon.command('block-export-del', {'id': 'e0'})
        self.mon.wait_event('BLOCK_EXPORT_DELETED')
        self.mon.command('blockdev-del', {'node-name': node})
        self.assertTrue(self.daemon.running(), self.daemon.stderr())

    def complete(self, h, cookies, image):
        while h.aio_in_flight() > 0:
            h.poll(1000)
            self.assertLess(os.path.getsize(image), MAX_FILE_SIZE,
                            f'seed {SEED}: the image file grows without '
                            'bound')
        for c in cookies:
            h.aio_command_completed(c)    # raises on an error reply

    def check_image(self, image, ref_path, fmt='raw'):
        r = self.run_command(['qemu-img', 'check', '--output=json', image])
        self.assertEqual(r.returncode, 0,
                         f'seed {SEED}: qemu-img check: {r.stdout}{r.stderr}')
        self.assertNotIn('leaks', r.stdout,
                         f'seed {SEED}: qemu-img check: {r.stdout}')
        r = self.run_command(['qemu-img', 'compare', '-f', 'qcow2', '-F',
                              fmt, image, ref_path])
        self.assertEqual(r.returncode, 0,
                         f'seed {SEED}: {r.stdout}{r.stderr}')

    def run_layout(self, name, opts, cluster=64 * KIB, backing=None,
                   prefill=None, count=OPS):
        image = self.path(f'{name}.qcow2')
        ref = self.path(f'{name}.raw')
        argv = ['create', '-f', 'qcow2']
        if backing:
            argv += ['-b', backing, '-F', 'raw']
        if opts:
            argv += ['-o', opts]
        self.img(*argv, image, str(SIZE))
        if backing:
            self.img('convert', '-f', 'raw', '-O', 'raw', backing, ref)
        elif prefill:
            self.img('convert', '-f', 'raw', '-O', 'raw', prefill, ref)
        else:
            with open(ref, 'wb') as f:
                f.truncate(SIZE)
        if prefill:
            # every cluster compressed, made by qemu-img convert -c
            os.unlink(image)
            self.img('convert', '-c', '-f', 'raw', '-O', 'qcow2',
                     *(['-o', opts] if opts else []), prefill, image)
        self.drive(image, ref, cluster, count)
        self.check_image(image, ref)

    def data_file(self, name):
        """A raw file of SIZE bytes with compressible data in most
        clusters and zeroes in some."""
        path = self.path(name)
        rng = random.Random(SEED + 1)
        with open(path, 'wb') as f:
            for i in range(SIZE // (64 * KIB)):
                if i % 3 == 0:
                    f.write(bytes(64 * KIB))
                else:
                    f.write(rng.randbytes(256) * 256)
        return path

    def test_default(self):
        self.run_layout('default', '')

    def test_small_clusters_1bit_refcounts(self):
        self.run_layout('small', 'cluster_size=4096,refcount_bits=1',
                        cluster=4096)

    def test_wide_refcounts_512b_clusters(self):
        # a third of the requests: each spans many 512-byte clusters
        self.run_layout('tiny', 'cluster_size=512,refcount_bits=64',
                        cluster=512, count=OPS // 3)

    def test_extended_l2(self):
        self.run_layout('extl2', 'extended_l2=on')

    def test_lazy_refcounts(self):
        self.run_layout('lazy', 'lazy_refcounts=on')

    def test_version_2(self):
        self.run_layout('v2', 'compat=0.10')

    def test_big_clusters(self):
        # a third of the requests: a small write copies up to 2 MiB
        self.run_layout('big', 'cluster_size=2M', cluster=2 * MIB,
                        count=OPS // 3)

    def test_over_backing_file(self):
        base = self.data_file('base.raw')
        self.run_layout('over', '', backing=base)

    def test_over_backing_file_extended_l2(self):
        base = self.data_file('base.raw')
        self.run_layout('overx', 'extended_l2=on', backing=base)

    def test_compressed_image(self):
        for ctype in ('zlib', 'zstd'):
            with self.subTest(compression_type=ctype):
                src = self.data_file('src.raw')
                self.run_layout(f'comp-{ctype}', f'compression_type={ctype}',
                                prefill=src)

    def test_data_file(self):
        data = self.path('data.raw')
        self.run_layout('df', f'data_file={data},data_file_raw=on')


if __name__ == '__main__':
    blockd_harness.main()
