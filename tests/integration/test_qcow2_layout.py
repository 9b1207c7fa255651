"""Where allocating writes put clusters, side by side with
qemu-storage-daemon 7.2: the same sequence of writes (one at a time,
through NBD with qemu-io) into the same empty image leaves the same
bytes in the file with blockd as with qsd, refcount blocks and tables
included, so that an image blockd wrote looks like one QEMU wrote.
"""
import os
import subprocess

import blockd_harness as h

MiB = 1024 * 1024

# name -> (qemu-img create options, size, qemu-io commands)
CASES = {
    # refcount blocks every 128 KiB of file, the table grown twice
    'c512': ('cluster_size=512', 64 * MiB,
             ['write -P 0x11 0 3M', 'write -P 0x12 40M 6M',
              'write -P 0x13 9M 512', 'write -P 0x14 20M 2M',
              'write -P 0x15 1M 64k']),
    # the first refcount block covers 2 GiB: the second one past it
    'c64k': ('cluster_size=65536', 4096 * MiB,
             ['write -P 0x21 0 1M', 'write -P 0x22 3000M 64k',
              'write -P 0x23 100M 2M'] +
             ['write -P 0x24 %dM 64k' % (200 + 2 * i) for i in range(40)]),
    'rc1': ('cluster_size=1024,refcount_bits=1', 32 * MiB,
            ['write -P 0x31 0 5M', 'write -P 0x32 16M 4M',
             'write -P 0x33 30M 1M']),
    # freed clusters are found again: QEMU's search goes back to them
    'reuse': ('cluster_size=4096', 64 * MiB,
              ['write -P 0x51 0 4M', 'discard 1M 1M', 'write -P 0x52 8M 2M',
               'write -z 2M 512k', 'write -z -u 3M 256k',
               'write -P 0x53 16M 1M', 'discard 0 64k',
               'write -P 0x54 20M 128k']),
    'extl2': ('cluster_size=65536,extended_l2=on', 256 * MiB,
              ['write -P 0x41 0 512k', 'write -P 0x42 100M 4k',
               'write -P 0x43 100M 64k', 'write -P 0x44 7M 1M']),
}


class Qcow2Layout(h.TestCase):

    def run_writes(self, qsd, name):
        opts, size, cmds = CASES[name]
        d = self.make_tmpdir()
        img = os.path.join(d, 'img.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', opts,
                        img, str(size)], check=True)
        qmp_sock = os.path.join(d, 'qmp.sock')
        nbd_sock = os.path.join(d, 'nbd.sock')
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f,filename={img}',
                '--blockdev', 'driver=qcow2,node-name=n,file=f',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}',
                '--export', 'type=nbd,id=e,node-name=n,writable=on']
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(qmp_sock)
        daemon.wait_for_socket_file(nbd_sock)
        argv = ['qemu-io', '-f', 'raw']
        for c in cmds:
            argv += ['-c', c]
        r = self.run_command(argv + [f'nbd+unix:///n?socket={nbd_sock}'])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        daemon.stop()
        return img

    @staticmethod
    def data_ranges(path):
        ranges = []
        with open(path, 'rb') as f:
            fd, end, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
            while pos < end:
                try:
                    start = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    break
                pos = os.lseek(fd, start, os.SEEK_HOLE)
                ranges.append((start, pos))
        return ranges

    def assert_same_bytes(self, mine, ref):
        self.assertEqual(os.path.getsize(mine), os.path.getsize(ref))
        with open(mine, 'rb') as a, open(ref, 'rb') as b:
            for start, end in self.data_ranges(mine) + self.data_ranges(ref):
                for off in range(start, end, 1 << 20):
                    n = min(1 << 20, end - off)
                    a.seek(off)
                    b.seek(off)
                    x, y = a.read(n), b.read(n)
                    if x != y:
                        i = next(i for i in range(n) if x[i] != y[i])
                        self.fail('the files differ at byte %d' % (off + i))

    def test_layout_as_qsd(self):
        for name in CASES:
            with self.subTest(case=name):
                mine = self.run_writes(False, name)
                ref = self.run_writes(True, name)
                chk = self.run_command(['qemu-img', 'check', mine])
                self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
                self.assert_same_bytes(mine, ref)


if __name__ == '__main__':
    h.main()
