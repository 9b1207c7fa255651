"""A 3-deep qcow2 backing chain (base <- mid <- top) with writes at the
top through blockd reads correctly at every layer, and nbdinfo --map and
--map=qemu:allocation-depth print for blockd what they print for
qemu-storage-daemon 7.2 on the same chain.

base and mid are filled by qemu-io; the top is written through blockd's
NBD export (data, zero writes with and without NO_HOLE, discards that
must hide what the layers below hold).  Each layer is then opened alone
(with what lies below it) and read over NBD, against qemu-img convert -O
raw of the same layer.
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
SIZE = 16 * MIB


def monitor_args(sock):
    return ['--chardev', f'socket,id=qmp0,path={sock},server=on,wait=off',
            '--monitor', 'chardev=qmp0']


class BackingChainTest(blockd_harness.TestCase):

    maxDiff = None

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def run_ok(self, argv):
        r = self.run_command(argv)
        self.assertEqual(r.returncode, 0, f'{argv}: {r.stdout}{r.stderr}')
        out = r.stdout + r.stderr
        self.assertNotIn('failed', out, argv)
        return r.stdout

    def make_chain(self, opts):
        """base <- mid <- top, base and mid with data; returns paths."""
        base, mid, top = (self.path(n) for n in
                          ('base.qcow2', 'mid.qcow2', 'top.qcow2'))
        o = ['-o', opts] if opts else []
        self.run_ok(['qemu-img', 'create', '-f', 'qcow2'] + o +
                    [base, str(SIZE)])
        self.run_ok(['qemu-io', '-f', 'qcow2',
                     '-c', 'write -P 0x01 0 4m',
                     '-c', 'write -P 0x02 6m 2m',
                     '-c', 'write -z 7m 256k',
                     '-c', 'write -P 0x03 12m 68k',
                     '-c', f'write -P 0x04 {SIZE - 4096} 4k', base])
        self.run_ok(['qemu-img', 'create', '-f', 'qcow2', '-b', base,
                     '-F', 'qcow2'] + o + [mid])
        self.run_ok(['qemu-io', '-f', 'qcow2',
                     '-c', 'write -P 0x11 1m 1m',
                     '-c', 'write -P 0x12 3m 4k',
                     '-c', f'write -P 0x13 {3 * MIB + 12 * KIB} 4k',
                     '-c', f'write -z {6 * MIB + 64 * KIB} 64k',
                     '-c', 'discard 2m 1m',
                     '-c', 'write -P 0x14 10m 1m', mid])
        self.run_ok(['qemu-img', 'create', '-f', 'qcow2', '-b', mid,
                     '-F', 'qcow2'] + o + [top])
        return base, mid, top

    def start(self, qsd=False):
        sock = self.path(f'qmp-{"qsd" if qsd else "blockd"}.sock')
        nbd_sock = self.path(f'nbd-{"qsd" if qsd else "blockd"}.sock')
        args = monitor_args(sock)
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(sock)
        mon = self.qmp(sock)
        mon.command('nbd-server-start', {
            'addr': {'type': 'unix', 'data': {'path': nbd_sock}}})
        return d, mon, nbd_sock

    def export(self, mon, image, name, writable=False):
        mon.command('blockdev-add', {
            'driver': 'qcow2', 'node-name': name, 'read-only': not writable,
            'discard': 'unmap',
            'file': {'driver': 'file', 'filename': image}})
        mon.command('block-export-add', {
            'type': 'nbd', 'id': name, 'node-name': name, 'name': name,
            'writable': writable, 'allocation-depth': True})

    def unexport(self, mon, name):
        mon.command('block-export-del', {'id': name})
        mon.wait_event('BLOCK_EXPORT_DELETED')
        mon.command('blockdev-del', {'node-name': name})

    def write_top(self, uri, expected):
        """Writes through NBD at the top; `expected` (a bytearray of what
        mid reads) is updated alongside."""
        rng = random.Random(7)
        h = nbd.NBD()
        h.connect_uri(uri)
        try:
            for offset, length in ((0, 4096), (512 * KIB, 200 * KIB),
                                   (1 * MIB + 4 * KIB, 8 * KIB),
                                   (5 * MIB - 4 * KIB, 8 * KIB),
                                   (12 * MIB + 60 * KIB, 4 * KIB)):
                data = rng.randbytes(length)
                h.pwrite(data, offset)
                expected[offset:offset + length] = data
            # zeroes over data of every layer, punched and allocated
            h.zero(192 * KIB, 64 * KIB)
            h.zero(128 * KIB, 1 * MIB + 64 * KIB, nbd.CMD_FLAG_NO_HOLE)
            expected[64 * KIB:256 * KIB] = bytes(192 * KIB)
            expected[1 * MIB + 64 * KIB:1 * MIB + 192 * KIB] = \
                bytes(128 * KIB)
            # a discard must not uncover what the backing files hold
            h.trim(1 * MIB, 3 * MIB)
            expected[3 * MIB:4 * MIB] = bytes(MIB)
            h.flush()
            got = bytearray()
            while len(got) < SIZE:
                got += h.pread(MIB, len(got))
            self.assertTrue(got == expected,
                            'the top reads wrong right after the writes')
        finally:
            h.shutdown()

    def read_all(self, uri):
        h = nbd.NBD()
        h.connect_uri(uri)
        try:
            got = bytearray()
            while len(got) < SIZE:
                got += h.pread(MIB, len(got))
            return bytes(got)
        finally:
            h.shutdown()

    def qemu_reads(self, image):
        raw = image + '.raw'
        self.run_ok(['qemu-img', 'convert', '-O', 'raw', image, raw])
        with open(raw, 'rb') as f:
            return f.read()

    def maps(self, uri):
        out = {}
        for ctx in ('base:allocation', 'qemu:allocation-depth'):
            r = self.run_command(['nbdinfo', f'--map={ctx}', uri])
            self.assertEqual(r.returncode, 0, r.stderr)
            out[ctx] = r.stdout
        r = self.run_command(['nbdinfo', '--map', '--totals', uri])
        self.assertEqual(r.returncode, 0, r.stderr)
        out['totals'] = r.stdout
        return out

    def check_chain(self, opts):
        base, mid, top = self.make_chain(opts)
        daemon, mon, sock = self.start()
        self.export(mon, top, 'top', writable=True)
        expected = bytearray(self.qemu_reads(mid))
        self.write_top(f'nbd+unix:///top?socket={sock}', expected)
        self.unexport(mon, 'top')

        r = self.run_command(['qemu-img', 'check', top])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for layer, image in (('base', base), ('mid', mid), ('top', top)):
            with self.subTest(layer=layer):
                self.export(mon, image, layer)
                got = self.read_all(f'nbd+unix:///{layer}?socket={sock}')
                want = self.qemu_reads(image)
                if layer == 'top':
                    self.assertTrue(want == expected,
                                    'qemu reads other data at the top')
                self.assertTrue(got == want, f'{layer} reads wrong')
                self.unexport(mon, layer)

        # the maps, side by side with qemu-storage-daemon (read-only
        # nodes of the same files in both at once)
        qdaemon, qmon, qsock = self.start(qsd=True)
        for layer, image in (('mid', mid), ('top', top)):
            with self.subTest(layer=layer, what='maps'):
                self.export(mon, image, layer)
                self.export(qmon, image, layer)
                got = self.maps(f'nbd+unix:///{layer}?socket={sock}')
                want = self.maps(f'nbd+unix:///{layer}?socket={qsock}')
                self.assertEqual(got, want)
                self.unexport(mon, layer)
                self.unexport(qmon, layer)
        self.assertTrue(daemon.running(), daemon.stderr())

    def test_chain(self):
        self.check_chain('')

    def test_chain_extended_l2(self):
        self.check_chain('extended_l2=on')

    def test_chain_small_clusters(self):
        self.check_chain('cluster_size=4096')


if __name__ == '__main__':
    blockd_harness.main()
