#!/usr/bin/python3
"""The FUSE export (export-fuse plugin) with the real kernel FUSE, side by
side with qemu-storage-daemon 7.2 where behaviour is compared.

Runs as root (mounting needs it here).  Every mount point is a file in
the test's private directory; a cleanup runs `fusermount3 -u -z` on it
whatever the outcome, before the directory is removed.

- mount point checks: a directory, a missing file, a second export on
  the same file: qsd's messages; a stale mount left by a killed daemon is
  reported with the fusermount3 command that removes it;
- the file shows the node while exported and its own content again
  afterwards (block-export-del, quit, SIGTERM, SIGINT, SIGHUP);
- dd, Python I/O, qemu-img info/convert/compare, qemu-io -f raw; a qcow2
  image created by qemu-img on the mount passes qemu-img check;
- 2000 random writes leave the image identical to a reference;
- read-only, growable, truncate, fallocate (discard, zero range, plain),
  SEEK_DATA/SEEK_HOLE, chmod/chown, fsync, allow-other: the same results
  as qemu-storage-daemon's on the same calls;
- st_blocks and du (the node's allocated size) as with qsd;
- concurrent readers and writers in several processes;
- block-export-del mode=hard while a client is busy, also with the
  export in an iothread (and quit there);
- one mount served by two iothreads ('iothread': ['io0', 'io1']): random
  writers from several processes equal a reference; hard delete while
  busy; clean unmount;
- ENOSPC from the node reaches the file's writer.
"""

import ctypes
import errno
import hashlib
import os
import random
import signal
import subprocess
import time

import blockd_harness as h

MiB = 1 << 20
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                           ctypes.c_long]


def fallocate(fd, mode, offset, length):
    if libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def mount_lines():
    with open('/proc/self/mountinfo') as f:
        return f.read().splitlines()


def mount_entry(path):
    """The mountinfo line of the FUSE mount on `path`, or None."""
    full = os.path.join(os.path.realpath(os.path.dirname(path)),
                        os.path.basename(path))
    for line in mount_lines():
        fields = line.split()
        if fields[4] == full:
            return line
    return None


def qmp_args(sock):
    return ['--chardev', f'socket,id=qmp0,path={sock},server=on,wait=off',
            '--monitor', 'chardev=qmp0']


def outcome(fn):
    """fn()'s value, or the errno name it failed with."""
    try:
        return fn()
    except OSError as e:
        return 'ERR ' + errno.errorcode.get(e.errno, str(e.errno))


def probe(mp):
    """What the mounted file answers to a list of calls (a dict)."""
    r = {}
    st = os.stat(mp)
    r['mode'] = oct(st.st_mode)
    r['size'] = st.st_size
    r['blksize'] = st.st_blksize
    fd = os.open(mp, os.O_RDWR)
    try:
        size = lambda: os.fstat(fd).st_size
        r['pread_eof'] = outcome(lambda: len(os.pread(fd, 10, MiB)))
        r['pread_past'] = outcome(lambda: len(os.pread(fd, 10, MiB + 4096)))
        r['pread_straddle'] = outcome(
            lambda: len(os.pread(fd, 100, MiB - 10)))
        r['pwrite_straddle'] = outcome(
            lambda: os.pwrite(fd, b'x' * 100, MiB - 10))
        r['pwrite_eof'] = outcome(lambda: os.pwrite(fd, b'x' * 100, MiB))
        r['pwrite_past'] = outcome(
            lambda: os.pwrite(fd, b'x' * 100, MiB + 4096))
        r['size1'] = outcome(size)
        r['seek_data0'] = outcome(lambda: os.lseek(fd, 0, os.SEEK_DATA))
        r['seek_hole0'] = outcome(lambda: os.lseek(fd, 0, os.SEEK_HOLE))
        r['seek_data_hole'] = outcome(
            lambda: os.lseek(fd, 8192, os.SEEK_DATA))
        r['seek_data_end'] = outcome(
            lambda: os.lseek(fd, size(), os.SEEK_DATA))
        r['seek_hole_end'] = outcome(
            lambda: os.lseek(fd, size(), os.SEEK_HOLE))
        r['seek_hole_past'] = outcome(
            lambda: os.lseek(fd, size() + 10, os.SEEK_HOLE))
        r['chmod600'] = outcome(lambda: os.chmod(mp, 0o600))
        r['chmod644'] = outcome(lambda: os.chmod(mp, 0o644))
        r['mode2'] = oct(os.stat(mp).st_mode)
        r['chown'] = outcome(lambda: os.chown(mp, 1000, 1000))
        r['owner'] = (os.stat(mp).st_uid, os.stat(mp).st_gid)
        r['chown_back'] = outcome(lambda: os.chown(mp, 0, 0))
        r['utime'] = outcome(lambda: os.utime(mp, (1, 1)))
        r['punch'] = outcome(lambda: fallocate(
            fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 65536))
        r['after_punch'] = outcome(lambda: os.pread(fd, 16, 0).hex())
        r['punch_nokeep'] = outcome(
            lambda: fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 65536))
        r['pwrite_y'] = outcome(lambda: os.pwrite(fd, b'y' * 4096, 65536))
        r['zero_range'] = outcome(
            lambda: fallocate(fd, FALLOC_FL_ZERO_RANGE, 65536, 65536))
        r['after_zero'] = outcome(lambda: os.pread(fd, 16, 65536).hex())
        r['zero_range_grow'] = outcome(
            lambda: fallocate(fd, FALLOC_FL_ZERO_RANGE, size(), 4096))
        r['size2'] = outcome(size)
        r['alloc_inside'] = outcome(lambda: fallocate(fd, 0, 0, 4096))
        r['alloc_end'] = outcome(lambda: fallocate(fd, 0, size(), 4096))
        r['size3'] = outcome(size)
        r['ftruncate'] = outcome(lambda: os.ftruncate(fd, 3 * MiB))
        r['size4'] = outcome(size)
        r['seek_hole_grown'] = outcome(
            lambda: os.lseek(fd, 2 * MiB, os.SEEK_HOLE))
        r['ftruncate_shrink'] = outcome(lambda: os.ftruncate(fd, MiB // 2))
        r['size5'] = outcome(size)
        r['fsync'] = outcome(lambda: os.fsync(fd))
        r['fdatasync'] = outcome(lambda: os.fdatasync(fd))
        r['xattr'] = outcome(lambda: os.listxattr(mp))
        r['unlink'] = outcome(lambda: os.unlink(mp))
    finally:
        os.close(fd)
    return r


class Fuse(h.TestCase):

    def mountpoint(self, name='mp', content=b''):
        """A regular file in the private directory, unmounted (lazily) in
        a cleanup that runs after the daemons are stopped."""
        path = os.path.join(self.tmpdir, name)
        with open(path, 'wb') as f:
            f.write(content)
        self.addCleanup(subprocess.run, ['fusermount3', '-u', '-z', path],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        return path

    def image(self, name='img.raw', size=MiB, content=None):
        path = os.path.join(self.tmpdir, name)
        with open(path, 'wb') as f:
            if content is not None:
                f.write(content)
            f.truncate(size)
        return path

    def start(self, args, qsd=False):
        """A daemon (blockd or qsd) with a QMP socket and `args`."""
        name = 'qsd' if qsd else 'blockd'
        sock = os.path.join(self.tmpdir,
                            f'{name}-{time.monotonic_ns()}.sock')
        argv = qmp_args(sock) + list(args)
        d = self.start_qsd(argv) if qsd else self.start_daemon(argv)
        d.wait_for_socket_file(sock)
        return d, self.qmp(sock)

    def export_args(self, img, mp, extra='', node_extra=''):
        return ['--blockdev',
                f'file,node-name=f,filename={img}{node_extra}',
                '--export',
                f'fuse,id=e,node-name=f,mountpoint={mp}{extra}']

    def wait_mounted(self, mp, mounted=True, timeout=10):
        deadline = time.monotonic() + timeout
        while (mount_entry(mp) is not None) != mounted:
            if time.monotonic() > deadline:
                self.fail(f'{mp}: mounted={not mounted} after {timeout}s')
            time.sleep(0.02)

    # --- mount point checks ------------------------------------------------

    def test_mountpoint_errors(self):
        img = self.image()
        d = os.path.join(self.tmpdir, 'dir')
        os.mkdir(d)
        missing = os.path.join(self.tmpdir, 'missing')
        for mp in (d, missing):
            argv = self.export_args(img, mp)
            ours = self.run_blockd(argv)
            theirs = self.run_command([h.find_qsd()] + argv)
            self.assertEqual(ours.returncode, 1, ours.stderr)
            self.assertEqual(theirs.returncode, 1, theirs.stderr)
            # the last line: a sanitizer build may print a warning first
            msg = theirs.stderr.splitlines(True)[-1].split(': ', 1)[1]
            self.assertEqual(
                ours.stderr.splitlines(True)[-1].split(': ', 1)[1], msg)
            self.assertTrue(msg.endswith((
                f": '{d}' is not a regular file\n",
                f": Failed to stat '{missing}': No such file or "
                "directory\n")), msg)

        # a second export on the same file, also under another spelling
        mp = self.mountpoint()
        for q in (False, True):
            _, qmp = self.start(self.export_args(img, mp), qsd=q)
            err = qmp.execute('block-export-add', {
                'type': 'fuse', 'id': 'e2', 'node-name': 'f',
                'mountpoint': mp})
            self.assertEqual(err['error']['desc'],
                             f"There already is a FUSE export on '{mp}'")
            qmp.command('quit')
            self.wait_mounted(mp, False)

    def test_stale_mount_reported(self):
        img = self.image()
        mp = self.mountpoint()
        d, _ = self.start(self.export_args(img, mp))
        self.wait_mounted(mp)
        d.stop(signal.SIGKILL)
        self.assertIsNotNone(mount_entry(mp))
        r = self.run_blockd(self.export_args(img, mp))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"Failed to stat '{mp}': Transport endpoint is not "
                      "connected", r.stderr)
        self.assertIn(f"fusermount3 -u -z {mp}", r.stderr)
        subprocess.run(['fusermount3', '-u', '-z', mp], check=True)
        self.assertIsNone(mount_entry(mp))

    def test_failed_startup_unmounts(self):
        img = self.image()
        mp = self.mountpoint()
        # the export mounts, then a later option fails: nothing stays
        r = self.run_blockd(self.export_args(img, mp) +
                            ['--blockdev', 'file,node-name=g,filename=/nx'])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIsNone(mount_entry(mp))

    # --- content, lifetime -------------------------------------------------

    def test_content_and_clean_end(self):
        data = os.urandom(MiB)
        own = b'the mount point file itself\n'
        ends = ['del', 'quit', signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
        for end in ends:
            with self.subTest(end=str(end)):
                img = self.image(content=data)
                mp = self.mountpoint(content=own)
                d, qmp = self.start(self.export_args(img, mp,
                                                     ',writable=on'))
                self.wait_mounted(mp)
                self.assertEqual(os.stat(mp).st_size, MiB)
                r = subprocess.run(['dd', f'if={mp}', 'bs=64k',
                                    'status=none'], capture_output=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, data)
                with open(mp, 'r+b') as f:
                    f.seek(4096)
                    f.write(b'hello')
                with open(img, 'rb') as f:
                    f.seek(4096)
                    self.assertEqual(f.read(5), b'hello')
                if end == 'del':
                    qmp.command('block-export-del', {'id': 'e'})
                    qmp.wait_event('BLOCK_EXPORT_DELETED')
                    self.assertEqual(qmp.command('query-block-exports'), [])
                elif end == 'quit':
                    qmp.command('quit')
                    d.wait()
                else:
                    d.stop(end)
                    self.assertEqual(d.returncode, 0)
                self.assertIsNone(mount_entry(mp))
                with open(mp, 'rb') as f:
                    self.assertEqual(f.read(), own)
                if end == 'del':
                    qmp.command('quit')

    # --- real clients ------------------------------------------------------

    def test_qemu_tools(self):
        data = os.urandom(2 * MiB)
        img = self.image(size=2 * MiB, content=data)
        mp = self.mountpoint()
        _, qmp = self.start(self.export_args(img, mp, ',writable=on'))
        self.wait_mounted(mp)
        r = self.run_command(['qemu-img', 'info', '--output=json', '-f',
                              'raw', mp])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"virtual-size": 2097152', r.stdout)
        copy = os.path.join(self.tmpdir, 'copy.qcow2')
        r = self.run_command(['qemu-img', 'convert', '-f', 'raw', '-O',
                              'qcow2', mp, copy])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_command(['qemu-img', 'compare', '-f', 'raw', '-F',
                              'qcow2', mp, copy])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.run_command(['qemu-io', '-f', 'raw', '-c',
                              'write -P 0x5a 64k 128k', '-c',
                              'read -P 0x5a 64k 128k', mp])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('fail', r.stdout + r.stderr)
        with open(img, 'rb') as f:
            f.seek(65536)
            self.assertEqual(f.read(131072), b'\x5a' * 131072)
        # compare now sees the difference
        r = self.run_command(['qemu-img', 'compare', '-f', 'raw', '-F',
                              'qcow2', mp, copy])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_qcow2_on_the_mount(self):
        img = self.image(size=0)
        mp = self.mountpoint()
        _, qmp = self.start(self.export_args(img, mp,
                                             ',writable=on,growable=on'))
        self.wait_mounted(mp)
        r = self.run_command(['qemu-img', 'create', '-f', 'qcow2', mp,
                              '64M'])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_command(['qemu-io', '-f', 'qcow2',
                              '-c', 'write -P 0x11 0 1M',
                              '-c', 'write -P 0x22 10M 3M',
                              '-c', 'discard 10M 1M',
                              '-c', 'write -z 20M 1M',
                              '-c', 'read -P 0x22 11M 2M', mp])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('fail', r.stdout + r.stderr)
        r = self.run_command(['qemu-img', 'check', '-f', 'qcow2', mp])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        qmp.command('block-export-del', {'id': 'e'})
        qmp.wait_event('BLOCK_EXPORT_DELETED')
        qmp.command('blockdev-del', {'node-name': 'f'})
        # the node's file is the qcow2 image itself
        r = self.run_command(['qemu-img', 'check', '-f', 'qcow2', img])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.run_command(['qemu-io', '-f', 'qcow2', '-r', '-c',
                              'read -P 0x11 0 1M', img])
        self.assertNotIn('fail', r.stdout + r.stderr)

    def test_random_writes(self):
        size = 4 * MiB
        ref = bytearray(os.urandom(size))
        img = self.image(size=size, content=bytes(ref))
        mp = self.mountpoint()
        _, qmp = self.start(self.export_args(img, mp, ',writable=on'))
        self.wait_mounted(mp)
        rng = random.Random(1234)
        fd = os.open(mp, os.O_RDWR)
        try:
            for _ in range(2000):
                off = rng.randrange(size)
                n = min(rng.randrange(1, 70000), size - off)
                buf = rng.randbytes(n)
                self.assertEqual(os.pwrite(fd, buf, off), n)
                ref[off:off + n] = buf
            os.fsync(fd)
            self.assertEqual(os.pread(fd, size, 0), bytes(ref))
        finally:
            os.close(fd)
        qmp.command('block-export-del', {'id': 'e'})
        qmp.wait_event('BLOCK_EXPORT_DELETED')
        with open(img, 'rb') as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(),
                             hashlib.sha256(ref).hexdigest())

    def test_fio_verify_deep_queue(self):
        """Many writes of up to 1 MiB in flight at once (large ones keep
        libfuse's receive buffer instead of a copy): fio verifies every
        block it wrote."""
        img = self.image(size=32 * MiB)
        mp = self.mountpoint()
        _, qmp = self.start(self.export_args(img, mp, ',writable=on'))
        self.wait_mounted(mp)
        r = self.run_command([
            'fio', '--name=verify', f'--filename={mp}', '--direct=1',
            '--ioengine=io_uring', '--iodepth=16', '--rw=randwrite',
            '--bsrange=4k-1m', '--size=32m', '--verify=crc32c',
            '--verify_fatal=1', '--do_verify=1', '--randrepeat=0'],
            timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn('verify:', r.stderr)

    # --- semantics against qemu-storage-daemon --------------------------------

    def run_probe(self, qsd, extra, node_extra=''):
        img = self.image(name=f'img-{qsd}.raw')
        with open(img, 'r+b') as f:
            f.write(b'D' * 4096)
        mp = self.mountpoint(name=f'mp-{qsd}')
        d, qmp = self.start(self.export_args(img, mp, extra, node_extra),
                            qsd=qsd)
        self.wait_mounted(mp)
        opts = mount_entry(mp).split(' - ')[1].split()[2]
        r = probe(mp)
        r['mount_options'] = ','.join(
            o for o in opts.split(',') if not o.startswith('user_id')
            and not o.startswith('group_id'))
        qmp.command('quit')
        d.wait()
        self.assertIsNone(mount_entry(mp))
        return r

    def test_semantics_like_qsd(self):
        cases = [',writable=on', ',writable=on,growable=on', '',
                 ',growable=on', ',writable=on,allow-other=off',
                 ',allow-other=on']
        for extra in cases:
            with self.subTest(extra=extra):
                theirs = self.run_probe(True, extra)
                ours = self.run_probe(False, extra)
                self.maxDiff = None
                self.assertEqual(ours, theirs)

    def test_read_only_node(self):
        img = self.image()
        mp = self.mountpoint()
        for q in (True, False):
            argv = self.export_args(img, mp, ',writable=on',
                                    ',read-only=on')
            r = self.run_command([h.find_qsd()] + argv) if q else \
                self.run_blockd(argv)
            self.assertEqual(r.returncode, 1)
            self.assertIn('Cannot export read-only node as writable',
                          r.stderr)

    def test_allow_other_unprivileged(self):
        """As a user (nobody) without user_allow_other in fuse.conf, each
        allow-other mode ends as with qsd: on fails; auto and off mount
        without allow_other where an unprivileged mount is possible at
        all (where /dev/fuse is root's only, as in the CI container,
        libfuse cannot mount and all three fail the same way)."""
        with open('/etc/fuse.conf') as f:
            conf = [line.strip() for line in f]
        self.assertNotIn('user_allow_other', conf)
        os.chown(self.tmpdir, 65534, 65534)
        img = self.image()
        os.chown(img, 65534, 65534)
        drop = h.NOBODY_SETPRIV
        blockd, plugin_dir = self.unprivileged_blockd()
        results = {}
        for q in (True, False):
            binary = h.find_qsd() if q else blockd
            for mode in ('on', 'auto', 'off'):
                mp = self.mountpoint(name=f'mp-{q}-{mode}')
                os.chown(mp, 65534, 65534)
                argv = drop + [binary] + self.export_args(
                    img, mp, f',writable=on,allow-other={mode}',
                    ',locking=off')
                if not q:
                    argv += ['--plugin-dir', plugin_dir]
                p = subprocess.Popen(argv, cwd=self.tmpdir,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                self.addCleanup(p.kill)
                try:
                    _, err = p.communicate(timeout=1.5)
                    line = err.strip().splitlines()[-1]
                    results[(q, mode)] = ('exit', p.returncode,
                                          line.split(': ')[-1])
                except subprocess.TimeoutExpired:
                    entry = mount_entry(mp)
                    self.assertIsNotNone(entry)
                    results[(q, mode)] = ('mounted',
                                          'allow_other' in entry)
                    p.terminate()
                    p.communicate(timeout=10)
                    self.assertIsNone(mount_entry(mp))
        for mode in ('on', 'auto', 'off'):
            self.assertEqual(results[(False, mode)], results[(True, mode)])
        self.assertEqual(results[(False, 'on')][:2], ('exit', 1))
        self.assertIn(results[(False, 'auto')], [
            ('mounted', False), results[(False, 'off')]])

    def stat_and_du(self, mp):
        st = subprocess.run(['stat', '-c', '%b %B %s', mp], check=True,
                            capture_output=True, text=True).stdout.split()
        du = subprocess.run(['du', '-k', mp], check=True,
                            capture_output=True, text=True).stdout.split()[0]
        return st + [du]

    def test_allocated_size_like_qsd(self):
        """st_blocks (and so du) count what the node occupies on the host,
        for a file node and for raw over it, as with qsd."""
        for fmt in ('file', 'raw'):
            with self.subTest(fmt=fmt):
                results = {}
                for q in (True, False):
                    img = self.image(name=f'sparse-{fmt}-{q}.raw',
                                     size=64 * MiB)
                    with open(img, 'r+b') as f:
                        f.seek(8 * MiB)
                        f.write(os.urandom(3 * MiB))
                    mp = self.mountpoint(name=f'mp-{fmt}-{q}')
                    args = ['--blockdev',
                            f'file,node-name=f,filename={img}']
                    node = 'f'
                    if fmt == 'raw':
                        args += ['--blockdev', 'raw,node-name=r,file=f']
                        node = 'r'
                    args += ['--export', f'fuse,id=e,node-name={node},'
                             f'mountpoint={mp},writable=on']
                    d, qmp = self.start(args, qsd=q)
                    self.wait_mounted(mp)
                    before = self.stat_and_du(mp)
                    own = os.stat(img).st_blocks
                    self.assertEqual(int(before[0]), own)
                    self.assertLess(own, 64 * MiB // 512)
                    # written through the mount: the count follows (once
                    # the kernel's attribute cache of one second expires)
                    with open(mp, 'r+b') as f:
                        f.seek(32 * MiB)
                        f.write(b'w' * MiB)
                    own = os.stat(img).st_blocks
                    deadline = time.monotonic() + 10
                    while int(self.stat_and_du(mp)[0]) != own:
                        self.assertLess(time.monotonic(), deadline)
                        time.sleep(0.05)
                    results[q] = (before, self.stat_and_du(mp))
                    qmp.command('quit')
                    d.wait()
                self.assertEqual(results[False], results[True])

    # --- concurrency and deletion while busy ---------------------------------

    def test_concurrent_processes(self):
        size = 8 * MiB
        nproc = 6
        img = self.image(size=size)
        mp = self.mountpoint()
        _, qmp = self.start(self.export_args(img, mp, ',writable=on'))
        self.wait_mounted(mp)
        chunk = size // nproc // 4096 * 4096
        script = (
            'import os, sys\n'
            'mp, i, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n'
            'fd = os.open(mp, os.O_RDWR)\n'
            'pat = bytes([i + 1]) * 4096\n'
            'for rnd in range(5):\n'
            '    for off in range(i * chunk, (i + 1) * chunk, 4096):\n'
            '        assert os.pwrite(fd, pat, off) == 4096\n'
            '    for off in range(i * chunk, (i + 1) * chunk, 4096):\n'
            '        assert os.pread(fd, 4096, off) == pat, off\n'
            '    os.pread(fd, 65536, ((i + 1) % 6) * chunk)\n'
        )
        procs = [subprocess.Popen(['/usr/bin/python3', '-c', script, mp,
                                   str(i), str(chunk)])
                 for i in range(nproc)]
        for p in procs:
            self.addCleanup(p.kill)
        for p in procs:
            self.assertEqual(p.wait(timeout=120), 0)
        with open(img, 'rb') as f:
            for i in range(nproc):
                f.seek(i * chunk)
                self.assertEqual(f.read(chunk), bytes([i + 1]) * chunk)

    BUSY_SCRIPT = (
        'import os, sys\n'
        'fd = os.open(sys.argv[1], os.O_RDWR)\n'
        'print("open", flush=True)\n'
        'try:\n'
        '    while True:\n'
        '        os.pwrite(fd, b"z" * 1048576, 0)\n'
        '        os.pread(fd, 1048576, 8388608)\n'
        'except OSError as e:\n'
        '    print("errno", e.errno, flush=True)\n'
    )

    def busy_client(self, mp):
        """A process writing and reading through `mp` until it fails;
        returns once it has done I/O."""
        busy = subprocess.Popen(['/usr/bin/python3', '-c', self.BUSY_SCRIPT,
                                 mp], stdout=subprocess.PIPE, text=True)
        self.addCleanup(busy.kill)
        self.assertEqual(busy.stdout.readline().strip(), 'open')
        return busy

    def wait_io(self, qmp, img, n=3):
        """Wait until the image file has seen writes (its mtime moves) a
        few times: the client is busy."""
        last = os.stat(img).st_mtime_ns
        deadline = time.monotonic() + 20
        while n > 0:
            self.assertLess(time.monotonic(), deadline)
            now = os.stat(img).st_mtime_ns
            if now != last:
                n -= 1
                last = now
            time.sleep(0.01)

    def test_iothread_export_ends_while_busy(self):
        """An export run in an iothread (the node moved there) drains
        its requests and unmounts cleanly on block-export-del mode=hard
        and on quit while a client does I/O through the mount."""
        for end in ('hard', 'quit'):
            with self.subTest(end=end):
                img = self.image(name=f'io-{end}.raw', size=16 * MiB)
                mp = self.mountpoint(name=f'mp-io-{end}', content=b'own')
                d, qmp = self.start(
                    ['--object', 'iothread,id=io0'] +
                    self.export_args(img, mp, ',writable=on,iothread=io0'))
                self.wait_mounted(mp)
                busy = self.busy_client(mp)
                self.wait_io(qmp, img)
                if end == 'hard':
                    qmp.command('block-export-del', {'id': 'e',
                                                     'mode': 'hard'})
                    qmp.wait_event('BLOCK_EXPORT_DELETED')
                    self.assertEqual(qmp.command('query-block-exports'), [])
                else:
                    qmp.command('quit')
                    self.assertEqual(d.wait(), 0)
                self.assertIsNone(mount_entry(mp))
                out, _ = busy.communicate(timeout=30)
                self.assertTrue(out.startswith('errno'), out)
                with open(mp, 'rb') as f:
                    self.assertEqual(f.read(), b'own')
                with open(img, 'rb') as f:
                    self.assertEqual(f.read(1048576), b'z' * 1048576)
                if end == 'hard':
                    self.assertTrue(d.running())
                    # the node (still in io0) can be exported again
                    qmp.command('block-export-add', {
                        'type': 'fuse', 'id': 'e', 'node-name': 'f',
                        'mountpoint': mp, 'iothread': 'io0'})
                    self.wait_mounted(mp)
                    self.assertEqual(os.stat(mp).st_size, 16 * MiB)
                    qmp.command('quit')
                    self.assertEqual(d.wait(), 0)
                    self.assertIsNone(mount_entry(mp))

    # --- several iothreads serving one mount ----------------------------------

    MT_WRITER = (
        'import os, random, sys\n'
        'mp, k, n, stripe, out = sys.argv[1], int(sys.argv[2]), '
        'int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]\n'
        'rnd = random.Random(1000 + k)\n'
        'fd = os.open(mp, os.O_RDWR)\n'
        'size = os.fstat(fd).st_size\n'
        'mine = range(k, size // stripe, n)\n'
        'ref = {s: bytearray(os.pread(fd, stripe, s * stripe)) '
        'for s in mine}\n'
        'for i in range(400):\n'
        '    s = rnd.choice(mine)\n'
        '    off = rnd.randrange(stripe - 1)\n'
        '    data = rnd.randbytes(rnd.randint(1, stripe - off))\n'
        '    assert os.pwrite(fd, data, s * stripe + off) == len(data)\n'
        '    ref[s][off:off + len(data)] = data\n'
        '    if i % 50 == 0:\n'
        '        assert os.stat(mp).st_size == size\n'
        'for s in mine:\n'
        '    assert os.pread(fd, stripe, s * stripe) == ref[s], s\n'
        'os.fsync(fd)\n'
        'with open(out, "wb") as f:\n'
        '    for s in mine:\n'
        '        f.write(ref[s])\n'
    )

    def start_multithread(self, img, mp):
        return self.start([
            '--object', 'iothread,id=io0', '--object', 'iothread,id=io1',
            '--blockdev', f'file,node-name=f,filename={img}',
            '--export', '{"type": "fuse", "id": "e", "node-name": "f", '
                        f'"mountpoint": "{mp}", "writable": true, '
                        '"iothread": ["io0", "io1"]}'])

    def test_multithread_writers(self):
        """One mount served by two iothreads (a cloned /dev/fuse each)
        while the node stays in the main loop: processes writing random
        data in their own stripes leave the image equal to the reference,
        and both iothreads did work."""
        size, stripe, nproc = 16 * MiB, 256 * 1024, 6
        img = self.image(size=size, content=os.urandom(size))
        mp = self.mountpoint()
        d, qmp = self.start_multithread(img, mp)
        self.wait_mounted(mp)
        threads = qmp.command('query-iothreads')
        tids = [t['thread-id'] for t in threads]

        def cpu(tid):
            with open(f'/proc/{d.pid}/task/{tid}/schedstat') as f:
                return int(f.read().split()[0])

        before = [cpu(t) for t in tids]
        outs = [os.path.join(self.tmpdir, f'ref{k}') for k in range(nproc)]
        procs = [subprocess.Popen(['/usr/bin/python3', '-c', self.MT_WRITER,
                                   mp, str(k), str(nproc), str(stripe),
                                   outs[k]]) for k in range(nproc)]
        for p in procs:
            self.addCleanup(p.kill)
        for p in procs:
            self.assertEqual(p.wait(timeout=120), 0)
        after = [cpu(t) for t in tids]
        for b, a in zip(before, after):
            self.assertGreater(a, b)

        ref = bytearray(size)
        for k in range(nproc):
            with open(outs[k], 'rb') as f:
                for s in range(k, size // stripe, nproc):
                    ref[s * stripe:(s + 1) * stripe] = f.read(stripe)
        with open(mp, 'rb') as f:
            self.assertEqual(f.read(), bytes(ref))
        qmp.command('quit')
        self.assertEqual(d.wait(), 0)
        self.assertIsNone(mount_entry(mp))
        with open(img, 'rb') as f:
            self.assertEqual(f.read(), bytes(ref))

    def test_multithread_hard_del_while_busy(self):
        img = self.image(size=16 * MiB)
        mp = self.mountpoint(content=b'own')
        d, qmp = self.start_multithread(img, mp)
        self.wait_mounted(mp)
        busy = [self.busy_client(mp) for _ in range(3)]
        self.wait_io(qmp, img)
        qmp.command('block-export-del', {'id': 'e', 'mode': 'hard'})
        qmp.wait_event('BLOCK_EXPORT_DELETED')
        self.assertEqual(qmp.command('query-block-exports'), [])
        self.assertIsNone(mount_entry(mp))
        for b in busy:
            out, _ = b.communicate(timeout=30)
            self.assertTrue(out.startswith('errno'), out)
        with open(mp, 'rb') as f:
            self.assertEqual(f.read(), b'own')
        self.assertTrue(d.running())
        # the node (still in the main loop) serves a new export
        qmp.command('block-export-add', {
            'type': 'fuse', 'id': 'e', 'node-name': 'f', 'mountpoint': mp,
            'writable': True, 'iothread': ['io1', 'io0']})
        self.wait_mounted(mp)
        with open(mp, 'rb') as f:
            self.assertEqual(f.read(1048576), b'z' * 1048576)
        # and quit while that one is busy ends cleanly too
        busy = [self.busy_client(mp) for _ in range(3)]
        self.wait_io(qmp, img)
        qmp.command('quit')
        self.assertEqual(d.wait(), 0)
        self.assertIsNone(mount_entry(mp))
        for b in busy:
            out, _ = b.communicate(timeout=30)
            self.assertTrue(out.startswith('errno'), out)

    def test_hard_del_while_busy(self):
        img = self.image(size=16 * MiB)
        mp = self.mountpoint(content=b'own')
        d, qmp = self.start(self.export_args(img, mp, ',writable=on'))
        self.wait_mounted(mp)
        busy = self.busy_client(mp)
        self.wait_io(qmp, img)
        qmp.command('block-export-del', {'id': 'e', 'mode': 'hard'})
        qmp.wait_event('BLOCK_EXPORT_DELETED')
        self.assertEqual(qmp.command('query-block-exports'), [])
        self.assertIsNone(mount_entry(mp))
        out, _ = busy.communicate(timeout=30)
        self.assertTrue(out.startswith('errno'), out)
        self.assertTrue(d.running())
        # the node is free again: a new export on the same file works
        qmp.command('block-export-add', {'type': 'fuse', 'id': 'e',
                                         'node-name': 'f', 'mountpoint': mp})
        self.wait_mounted(mp)
        self.assertEqual(os.stat(mp).st_size, 16 * MiB)

    # --- errors from the node ----------------------------------------------

    def test_enospc_reaches_the_writer(self):
        """A file node on a tiny tmpfs: the writer of the mounted file
        gets ENOSPC, as with qsd."""
        fs = os.path.join(self.tmpdir, 'small')
        os.mkdir(fs)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs',
                        fs], check=True)
        self.addCleanup(subprocess.run, ['umount', '-l', fs])
        for q in (True, False):
            img = os.path.join(fs, 'img.raw')
            with open(img, 'wb') as f:
                f.truncate(8 * MiB)
            mp = self.mountpoint(name=f'mp-{q}')
            d, qmp = self.start(self.export_args(img, mp, ',writable=on'),
                                qsd=q)
            self.wait_mounted(mp)
            fd = os.open(mp, os.O_RDWR)
            try:
                with self.assertRaises(OSError) as cm:
                    for off in range(0, 8 * MiB, MiB):
                        os.pwrite(fd, b'x' * MiB, off)
                self.assertEqual(cm.exception.errno, errno.ENOSPC, q)
            finally:
                os.close(fd)
            qmp.command('quit')
            d.wait()
            os.unlink(img)

    def test_eio_reaches_the_user(self):
        """A file node on a file whose reads and writes fail with EIO
        (nbdfuse over nbdkit's error filter, failing while a trigger
        file exists): readers and writers of the mounted file get EIO,
        as with qsd, and succeed again once the errors stop."""
        d = os.path.join(self.tmpdir, 'nbdfuse')
        os.mkdir(d)
        trigger = os.path.join(self.tmpdir, 'trigger')
        pidfile = os.path.join(self.tmpdir, 'nbdfuse.pid')
        nf = subprocess.Popen(
            ['nbdfuse', '-P', pidfile, os.path.join(d, 'disk'), '--command',
             'nbdkit', '-s', '--filter=error', 'memory', '4M', 'error=EIO',
             'error-rate=100%', f'error-file={trigger}'],
            stderr=subprocess.DEVNULL)
        self.addCleanup(nf.wait, 10)
        self.addCleanup(subprocess.run, ['fusermount3', '-u', '-z', d],
                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (os.path.exists(pidfile) and os.path.getsize(pidfile)):
            self.assertLess(time.monotonic(), deadline)
            self.assertIsNone(nf.poll())
            time.sleep(0.02)
        img = os.path.join(d, 'disk')
        results = {}
        for q in (True, False):
            mp = self.mountpoint(name=f'mp-eio-{q}')
            dm, qmp = self.start(self.export_args(img, mp, ',writable=on',
                                                  ',locking=off'), qsd=q)
            self.wait_mounted(mp)
            fd = os.open(mp, os.O_RDWR)
            r = []
            try:
                r.append(outcome(lambda: len(os.pread(fd, 4096, 0))))
                open(trigger, 'w').close()
                r.append(outcome(lambda: len(os.pread(fd, 4096, 3 * MiB))))
                r.append(outcome(lambda: os.pwrite(fd, b'e' * 4096, 8192)))
                os.unlink(trigger)
                r.append(outcome(lambda: os.pwrite(fd, b'e' * 4096, 8192)))
                r.append(outcome(lambda: os.pread(fd, 4, 8192)))
            finally:
                os.close(fd)
                if os.path.exists(trigger):
                    os.unlink(trigger)
            results[q] = r
            qmp.command('quit')
            dm.wait()
        self.assertEqual(results[False], [4096, 'ERR EIO', 'ERR EIO', 4096,
                                          b'eeee'])
        self.assertEqual(results[False], results[True])

if __name__ == '__main__':
    h.main()
