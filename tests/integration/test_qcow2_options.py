"""qcow2 images of every creation option read through blockd exactly as
qemu reads them.

For each option (versions 2 and 3, cluster sizes 512 B to 2 MiB,
refcount_bits 1 to 64, lazy_refcounts, extended_l2, compression_type
zlib and zstd, data_file with and without data_file_raw, backing_file
with backing_fmt, every preallocation mode) an image is made by
`qemu-img create` (or `convert`), filled by `qemu-io` with data, zero
writes, discards and compressed clusters, and `qemu-img convert -O raw`
gives what it holds.  blockd opens it with blockdev-add and exports it
over NBD and FUSE at once; both must read exactly those bytes.

Setting BLOCKD to qemu-storage-daemon runs the same checks against the
reference.
"""

import os
import subprocess
import sys
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import blockd_harness  # noqa: E402

MIB = 1024 * 1024
KIB = 1024
SIZE = 8 * MIB


def fill_commands(cluster, compressed=True, size=SIZE):
    """qemu-io commands writing data, zeroes and holes across cluster
    boundaries; compressed clusters when the image can hold them."""
    cmds = []
    if compressed:
        # A compressed write takes whole, unallocated clusters: first,
        # so that the writes below also rewrite parts of it.
        start = 6 * MIB // cluster * cluster
        cmds.append(f'write -c -P 0x44 {start} {cluster}')
    cmds += [
        'write -P 0x11 0 64k',
        'write -P 0x22 100k 12k',
        'write -P 0x33 1020k 1028k',          # across 1 MiB
        'write -z 1032k 8k',                  # zeroes inside data
        'discard 1536k 128k',                 # a hole inside data
        'write -P 0x66 3m 512',               # one sector
        'write -z -u 5m 1m',                  # zeroes that may unmap
        f'write -P 0x55 {size - 64 * KIB} 64k',   # the last clusters
    ]
    return cmds


def qemu_io(path, cmds, fmt='qcow2', extra=()):
    argv = ['qemu-io', '-f', fmt] + list(extra)
    for c in cmds:
        argv += ['-c', c]
    r = subprocess.run(argv + [path], capture_output=True, text=True,
                       check=False)
    out = r.stdout + r.stderr
    if r.returncode != 0 or 'failed' in out or 'error' in out.lower():
        raise AssertionError(f'qemu-io {cmds}: {out}')


def monitor_args(sock):
    return ['--chardev', f'socket,id=qmp0,path={sock},server=on,wait=off',
            '--monitor', 'chardev=qmp0']


class OptionsTest(blockd_harness.TestCase):

    def setUp(self):
        super().setUp()
        self.qmp_sock = os.path.join(self.tmpdir, 'qmp.sock')
        self.nbd_sock = os.path.join(self.tmpdir, 'nbd.sock')
        self.daemon = self.start_daemon(monitor_args(self.qmp_sock))
        self.daemon.wait_for_socket_file(self.qmp_sock)
        self.mon = self.qmp(self.qmp_sock)
        self.mon.command('nbd-server-start', {
            'addr': {'type': 'unix', 'data': {'path': self.nbd_sock}}})
        self.count = 0

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def create(self, name, opts, size=SIZE, extra=()):
        path = self.path(name)
        argv = ['qemu-img', 'create', '-f', 'qcow2'] + list(extra)
        if opts:
            argv += ['-o', opts]
        r = self.run_command(argv + [path, str(size)])
        self.assertEqual(r.returncode, 0, r.stderr)
        return path

    def reference(self, path):
        """What qemu reads from the image, as bytes."""
        ref = path + '.ref.raw'
        r = self.run_command(['qemu-img', 'convert', '-f', 'qcow2', '-O',
                              'raw', path, ref])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(ref, 'rb') as f:
            return f.read()

    def mountpoint(self, name):
        path = self.path(name)
        open(path, 'wb').close()
        self.addCleanup(subprocess.run, ['fusermount3', '-u', '-z', path],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return path

    def check_reads(self, path, node_opts=None):
        """blockd's NBD and FUSE exports of `path` read as qemu-img
        convert does."""
        expected = self.reference(path)
        self.count += 1
        node = f'n{self.count}'
        args = {'driver': 'qcow2', 'node-name': node, 'read-only': True,
                'file': {'driver': 'file', 'filename': path}}
        args.update(node_opts or {})
        self.mon.command('blockdev-add', args)
        self.mon.command('block-export-add', {
            'type': 'nbd', 'id': f'nbd-{node}', 'node-name': node,
            'name': node})
        mp = self.mountpoint(f'mp-{node}')
        self.mon.command('block-export-add', {
            'type': 'fuse', 'id': f'fuse-{node}', 'node-name': node,
            'mountpoint': mp})

        h = nbd.NBD()
        h.connect_uri(f'nbd+unix:///{node}?socket={self.nbd_sock}')
        try:
            self.assertEqual(h.get_size(), len(expected))
            got = bytearray()
            while len(got) < len(expected):
                n = min(MIB, len(expected) - len(got))
                got += h.pread(n, len(got))
            self.assertTrue(got == expected,
                            f'{path}: NBD read differs from qemu-img '
                            f'convert at byte {first_diff(got, expected)}')
        finally:
            h.shutdown()
        with open(mp, 'rb') as f:
            got = f.read()
        self.assertTrue(got == expected,
                        f'{path}: FUSE read differs from qemu-img convert '
                        f'at byte {first_diff(got, expected)}')

        for exp in (f'nbd-{node}', f'fuse-{node}'):
            self.mon.command('block-export-del', {'id': exp})
            self.wait_deleted(exp)
        self.mon.command('blockdev-del', {'node-name': node})
        self.assertTrue(self.daemon.running(), self.daemon.stderr())

    def wait_deleted(self, export_id):
        deadline = time.monotonic() + 10
        while True:
            ev = self.mon.wait_event('BLOCK_EXPORT_DELETED')
            if ev['data']['id'] == export_id:
                return
            self.assertLess(time.monotonic(), deadline)

    def fill_and_check(self, name, opts, cluster=65536, compressed=True,
                       size=SIZE, extra=(), node_opts=None):
        path = self.create(name, opts, size, extra)
        qemu_io(path, fill_commands(cluster, compressed, size))
        self.check_reads(path, node_opts)
        return path

    # --- the options --------------------------------------------------

    def test_versions(self):
        for compat in ('0.10', '1.1'):
            with self.subTest(compat=compat):
                self.fill_and_check(f'compat-{compat}.qcow2',
                                    f'compat={compat}')

    def test_cluster_sizes(self):
        for bits in (9, 10, 12, 16, 17, 20, 21):
            cluster = 1 << bits
            with self.subTest(cluster_size=cluster):
                self.fill_and_check(f'cs-{cluster}.qcow2',
                                    f'cluster_size={cluster}', cluster)

    def test_cluster_sizes_version_2(self):
        for cluster in (512, 2 * MIB):
            with self.subTest(cluster_size=cluster):
                self.fill_and_check(f'cs2-{cluster}.qcow2',
                                    f'compat=0.10,cluster_size={cluster}',
                                    cluster)

    def test_refcount_bits(self):
        for bits in (1, 2, 4, 8, 16, 32, 64):
            with self.subTest(refcount_bits=bits):
                self.fill_and_check(f'rc-{bits}.qcow2',
                                    f'refcount_bits={bits}')

    def test_refcount_bits_small_clusters(self):
        """Many refcount blocks: 512-byte clusters and wide refcounts."""
        self.fill_and_check('rc-64-512.qcow2',
                            'refcount_bits=64,cluster_size=512', 512)

    def test_lazy_refcounts(self):
        self.fill_and_check('lazy.qcow2', 'lazy_refcounts=on')

    def test_extended_l2(self):
        for cluster in (16 * KIB, 64 * KIB, 2 * MIB):
            with self.subTest(cluster_size=cluster):
                self.fill_and_check(f'extl2-{cluster}.qcow2',
                                    f'extended_l2=on,cluster_size={cluster}',
                                    cluster)

    def test_compression_types(self):
        for ctype in ('zlib', 'zstd'):
            with self.subTest(compression_type=ctype):
                self.fill_and_check(f'comp-{ctype}.qcow2',
                                    f'compression_type={ctype}')

    def test_convert_compressed(self):
        """qemu-img convert -c: every cluster compressed."""
        raw = self.path('src.raw')
        with open(raw, 'wb') as f:
            for i in range(SIZE // (64 * KIB)):
                # compressible, and different per cluster; some empty
                block = bytes([i % 251]) * 4096 + os.urandom(512)
                f.write((block * 16)[:64 * KIB] if i % 5 else
                        bytes(64 * KIB))
        for ctype in ('zlib', 'zstd'):
            with self.subTest(compression_type=ctype):
                path = self.path(f'conv-{ctype}.qcow2')
                r = self.run_command(['qemu-img', 'convert', '-c', '-f',
                                      'raw', '-O', 'qcow2', '-o',
                                      f'compression_type={ctype}', raw,
                                      path])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.check_reads(path)

    def test_data_file(self):
        for raw in ('off', 'on'):
            with self.subTest(data_file_raw=raw):
                data = self.path(f'data-{raw}.raw')
                # data clusters are in the data file: no compression
                self.fill_and_check(f'df-{raw}.qcow2',
                                    f'data_file={data},data_file_raw={raw}',
                                    compressed=False)

    def test_backing_file(self):
        for fmt in ('qcow2', 'raw'):
            with self.subTest(backing_fmt=fmt):
                base = self.path(f'base.{fmt}')
                r = self.run_command(['qemu-img', 'create', '-f', fmt,
                                      base, str(SIZE)])
                self.assertEqual(r.returncode, 0, r.stderr)
                qemu_io(base, ['write -P 0x77 0 8m', 'write -z 2m 1m'],
                        fmt=fmt)
                self.fill_and_check(f'over-{fmt}.qcow2', '',
                                    extra=['-b', base, '-F', fmt])

    def test_backing_file_shorter(self):
        """A backing file shorter than the overlay reads as zeroes past
        its end."""
        base = self.path('short.qcow2')
        self.create('short.qcow2', '', size=3 * MIB)
        qemu_io(base, ['write -P 0x78 0 3m'])
        self.fill_and_check('over-short.qcow2', '',
                            extra=['-b', base, '-F', 'qcow2'])

    def test_preallocation(self):
        for mode in ('off', 'metadata', 'falloc', 'full'):
            with self.subTest(preallocation=mode):
                # preallocated clusters cannot take compressed data
                self.fill_and_check(f'prealloc-{mode}.qcow2',
                                    f'preallocation={mode}',
                                    compressed=mode == 'off')
                # and the empty preallocated image itself
                path = self.create(f'prealloc-empty-{mode}.qcow2',
                                   f'preallocation={mode}')
                self.check_reads(path)

    def test_preallocation_extended_l2(self):
        for mode in ('metadata', 'falloc'):
            with self.subTest(preallocation=mode):
                self.fill_and_check(f'prealloc-x-{mode}.qcow2',
                                    f'preallocation={mode},extended_l2=on',
                                    compressed=False)

    def test_odd_size(self):
        """A size that is no multiple of the cluster size."""
        size = 8 * MIB - 3 * 512
        path = self.create('odd.qcow2', '', size=size)
        qemu_io(path, ['write -P 0x31 0 64k',
                       f'write -P 0x32 {size - 4096} 4096'])
        self.check_reads(path)


def first_diff(a, b):
    for i in range(0, min(len(a), len(b)), 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, i + 4096):
                if a[j] != b[j]:
                    return j
    return min(len(a), len(b))


if __name__ == '__main__':
    blockd_harness.main()
