#!/usr/bin/python3
"""The file and host_device drivers over QMP, side by side with
qemu-storage-daemon 7.2.

- blockdev-add of file nodes with each aio mode (threads, native with
  cache.direct=on, io_uring) and each locking mode succeeds, and
  blockdev-del takes them away;
- bad options fail with qemu-storage-daemon's error class and text (a
  missing file, a directory, aio=native without cache.direct, a bad
  locking value, host_device on a regular file, file on a device);
  pr-manager is refused with QEMU's words plus why;
- image locking interoperates with QEMU's tools both ways: while
  qemu-io holds a qcow2 image for writing, blockd cannot take the
  image's "resize" lock (block_resize fails as with qsd, once blockd has
  block_resize).  The other direction (qemu-img reading blockd's lock
  bytes) needs a writer on a node (an export), so for now it is tested in
  tests/unit/test-block-file.c on the lock bytes themselves;
- blockdev-reopen of a file node: read-only <-> read-write and
  cache.direct toggle, options that cannot change, drop-cache's
  "mutable option" rule, a writer refusing read-only: replies identical
  to qsd's; a FUSE export added after each reopen writes to the image
  only when the node was reopened read-write;
- lengths in whole 512-byte sectors, as qsd reports them: an image of
  an unaligned size and block_resize to one show rounded up in
  query-named-block-nodes and as the FUSE export's size;
- dynamic auto-read-only: a file node with auto-read-only=on holds its
  file read-only until a writer (a writable FUSE export) attaches, then
  read-write, and read-only again when the writer goes; on an immutable
  file (chattr +i) the writer fails with qsd's message while the node
  stays usable.  The daemons' descriptors are read from /proc.
"""

import json
import os
import subprocess
import time

import blockd_harness as h


def daemon_args(sock):
    return ['--chardev', f'socket,id=qmp0,path={sock},server=on,wait=off',
            '--monitor', 'chardev=qmp0']


class BlockFile(h.TestCase):

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(1 << 20)

    def start(self, qsd=False):
        """A QmpClient on a fresh blockd (or qemu-storage-daemon)."""
        name = 'qsd' if qsd else 'blockd'
        sock = os.path.join(self.tmpdir, f'{name}-{time.monotonic_ns()}.sock')
        if qsd:
            d = self.start_qsd(daemon_args(sock))
        else:
            d = self.start_daemon(daemon_args(sock))
        d.wait_for_socket_file(sock)
        return self.qmp(sock)

    def both(self):
        """[(name, client)] for blockd and, when installed, qsd."""
        pairs = [('blockd', self.start())]
        if h.find_qsd():
            pairs.append(('qsd', self.start(qsd=True)))
        return pairs

    def test_aio_and_locking_modes(self):
        cases = [
            {'aio': 'threads'},
            {'aio': 'native', 'cache': {'direct': True}},
            {'aio': 'io_uring'},
            {'aio': 'io_uring', 'cache': {'direct': True}},
            {'aio': 'threads', 'aio-max-batch': 16},
            {'locking': 'on'}, {'locking': 'off'}, {'locking': 'auto'},
            {'drop-cache': False, 'x-check-cache-dropped': True},
        ]
        for name, qmp in self.both():
            for i, extra in enumerate(cases):
                args = {'driver': 'file', 'node-name': f'n{i}',
                        'filename': self.img}
                args.update(extra)
                with self.subTest(daemon=name, options=extra):
                    self.assertEqual(qmp.execute('blockdev-add', args),
                                     {'return': {}})
                    self.assertEqual(
                        qmp.execute('blockdev-del', {'node-name': f'n{i}'}),
                        {'return': {}})

    def test_errors_as_qsd(self):
        missing = os.path.join(self.tmpdir, 'nope')
        cases = [
            {'driver': 'file', 'filename': missing},
            {'driver': 'file', 'filename': self.tmpdir, 'read-only': True},
            {'driver': 'file', 'filename': self.tmpdir},
            {'driver': 'file', 'filename': self.img, 'aio': 'native'},
            {'driver': 'file', 'filename': self.img, 'locking': 'maybe'},
            {'driver': 'file', 'filename': self.img, 'aio': 'posix'},
            {'driver': 'host_device', 'filename': self.img},
            {'driver': 'file', 'filename': '/dev/null'},
            {'driver': 'file'},
        ]
        clients = dict(self.both())
        for i, args in enumerate(cases):
            args = dict(args, **{'node-name': f'e{i}'})
            with self.subTest(args=args):
                got = clients['blockd'].execute('blockdev-add', args)
                self.assertIn('error', got)
                if 'qsd' in clients:
                    want = clients['qsd'].execute('blockdev-add', args)
                    self.assertEqual(got, want)
        expected = f"Could not open '{missing}': No such file or directory"
        got = clients['blockd'].execute(
            'blockdev-add', {'driver': 'file', 'node-name': 'm',
                             'filename': missing})
        self.assertEqual(got['error'],
                         {'class': 'GenericError', 'desc': expected})

    def test_reopen_like_qsd(self):
        mp = os.path.join(self.tmpdir, 'mnt')
        with open(mp, 'w'):
            pass
        base = {'driver': 'file', 'node-name': 'f', 'filename': self.img}

        def reopen(**extra):
            return ('blockdev-reopen', {'options': [dict(base, **extra)]})

        def export(writable):
            return ('block-export-add',
                    {'type': 'fuse', 'id': 'e', 'node-name': 'f',
                     'mountpoint': mp, 'writable': writable})

        unexport = ('block-export-del', {'id': 'e'})
        nodrop = {'drop-cache': False}
        steps = [
            ('blockdev-add', dict(base, **{'read-only': True})),
            export(True),
            reopen(),
            export(True), 'write', unexport,
            reopen(**{'read-only': True}),
            export(True),
            reopen(cache={'direct': True}),
            'query',
            reopen(cache={'direct': False}, **{'read-only': True}),
            'query',
            reopen(locking='off'),
            reopen(filename=self.img + '.other'),
            reopen(aio='io_uring'),
            reopen(**nodrop),
            reopen(),
            reopen(**nodrop, **{'x-check-cache-dropped': True}),
            reopen(**nodrop),
            export(False),
            reopen(**nodrop, **{'read-only': True}),
            unexport,
            reopen(**nodrop),
            export(True),
            reopen(**nodrop, **{'read-only': True}),
            unexport,
            ('blockdev-del', {'node-name': 'f'}),
        ]
        replies = {}
        for name, qmp in self.both():
            with open(self.img, 'wb') as f:
                f.truncate(1 << 20)
            got = replies[name] = []
            for i, step in enumerate(steps):
                if step == 'write':
                    data = f'{name}-{i}'.encode()
                    with open(mp, 'r+b') as f:
                        f.write(data)
                    with open(self.img, 'rb') as f:
                        got.append(f.read(len(data)) == data)
                elif step == 'query':
                    node = qmp.command('query-named-block-nodes',
                                       {'flat': True})[0]
                    got.append((node['ro'], node['cache']))
                else:
                    got.append(qmp.execute(*step))
        self.assertIn(True, replies['blockd'])
        self.assertIn({'return': {}}, replies['blockd'])
        if 'qsd' in replies:
            for i, (a, b) in enumerate(zip(replies['blockd'],
                                           replies['qsd'])):
                with self.subTest(step=steps[i]):
                    self.assertEqual(a, b)

    def test_unaligned_lengths_like_qsd(self):
        mp = os.path.join(self.tmpdir, 'mnt')
        with open(mp, 'w'):
            pass
        replies = {}
        for name, qmp in self.both():
            with open(self.img, 'wb') as f:
                f.truncate(1000)
            got = replies[name] = []

            def sizes():
                # a fresh export: the kernel caches a mount's attributes
                qmp.command('block-export-add',
                            {'type': 'fuse', 'id': 'e', 'node-name': 'f',
                             'mountpoint': mp, 'writable': True})
                node = qmp.command('query-named-block-nodes',
                                   {'flat': True})[0]
                got.append((node['image']['virtual-size'],
                            os.stat(mp).st_size))
                qmp.command('block-export-del', {'id': 'e'})

            qmp.command('blockdev-add', {'driver': 'file', 'node-name': 'f',
                                         'filename': self.img})
            sizes()
            for size in (2097153, 4096, 513):
                got.append(qmp.execute('block_resize',
                                       {'node-name': 'f', 'size': size}))
                sizes()
                got.append(os.stat(self.img).st_size)
            qmp.command('blockdev-del', {'node-name': 'f'})
        self.assertIn((2097664, 2097664), replies['blockd'])
        self.assertIn((1024, 1024), replies['blockd'])
        if 'qsd' in replies:
            self.assertEqual(replies['blockd'], replies['qsd'])

    def image_fd_modes(self, pid):
        """'r'/'rw' for each descriptor of process `pid` on self.img."""
        modes = []
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                if os.readlink(f'/proc/{pid}/fd/{fd}') != self.img:
                    continue
                with open(f'/proc/{pid}/fdinfo/{fd}') as f:
                    info = f.read()
            except OSError:
                continue
            flags = int(info.split('flags:')[1].split()[0], 8)
            modes.append('rw' if flags & os.O_ACCMODE == os.O_RDWR else 'r')
        return sorted(modes)

    def test_dynamic_auto_read_only_like_qsd(self):
        mp = os.path.join(self.tmpdir, 'mnt')
        with open(mp, 'w'):
            pass
        node = {'driver': 'file', 'node-name': 'f', 'filename': self.img,
                'auto-read-only': True}
        export = {'type': 'fuse', 'id': 'e', 'node-name': 'f',
                  'mountpoint': mp, 'writable': True}
        replies = {}
        for name in ('blockd', 'qsd'):
            sock = os.path.join(self.tmpdir, f'{name}-aro.sock')
            if name == 'qsd':
                if not h.find_qsd():
                    continue
                d = self.start_qsd(daemon_args(sock))
            else:
                d = self.start_daemon(daemon_args(sock))
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            got = replies[name] = []

            def step(cmd, args):
                got.append(qmp.execute(cmd, args))
                got.append(self.image_fd_modes(d.pid))

            step('blockdev-add', node)
            got.append(qmp.command('query-named-block-nodes',
                                   {'flat': True})[0]['ro'])
            step('block-export-add', export)
            step('block-export-del', {'id': 'e'})
            qmp.wait_event('BLOCK_EXPORT_DELETED')
            got.append(self.image_fd_modes(d.pid))
            step('block-export-add', dict(export, writable=False))
            step('block-export-del', {'id': 'e'})
            qmp.wait_event('BLOCK_EXPORT_DELETED')
            step('blockdev-del', {'node-name': 'f'})
            subprocess.run(['chattr', '+i', self.img], check=True)
            try:
                step('blockdev-add', node)
                step('block-export-add', export)
                step('block-export-add', dict(export, writable=False))
                step('block-export-del', {'id': 'e'})
                qmp.wait_event('BLOCK_EXPORT_DELETED')
                step('blockdev-del', {'node-name': 'f'})
            finally:
                subprocess.run(['chattr', '-i', self.img], check=True)
        self.assertIn(['rw'], replies['blockd'])
        self.assertIn(['r'], replies['blockd'])
        if 'qsd' in replies:
            self.assertEqual(replies['blockd'], replies['qsd'])

    def test_pr_manager_refused(self):
        qmp = self.start()
        got = qmp.execute('blockdev-add', {'driver': 'file', 'node-name': 'p',
                                           'filename': self.img,
                                           'pr-manager': 'pr0'})
        self.assertEqual(got['error']['class'], 'GenericError')
        self.assertTrue(got['error']['desc'].startswith(
            "No persistent reservation manager with id 'pr0'"))
        self.assertIn('not support', got['error']['desc'])

    def qemu_io_holding(self, image):
        """Start qemu-io holding `image` (qcow2) for writing; stopped at
        cleanup.  Returns once its lock bytes are visible."""
        proc = subprocess.Popen(['qemu-io', '-f', 'qcow2', image],
                                stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def stop():
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)
        ino = os.stat(image).st_ino
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open('/proc/locks') as f:
                if any(f':{ino} ' in line for line in f):
                    return proc
            time.sleep(0.02)
        self.fail('qemu-io took no locks')

    def test_qemu_io_holds_image(self):
        for tool in ('qemu-img', 'qemu-io'):
            if not h.shutil.which(tool):
                self.skipTest(f'{tool} is not installed')
        image = os.path.join(self.tmpdir, 'held.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image,
                        '1M'], check=True)
        self.qemu_io_holding(image)
        for name, qmp in self.both():
            with self.subTest(daemon=name):
                # Opening takes no permission, so it works as in QEMU...
                self.assertEqual(
                    qmp.execute('blockdev-add', {'driver': 'file',
                                                 'node-name': 'f',
                                                 'filename': image}),
                    {'return': {}})
                # ...but resizing needs "resize", which qemu-io does not
                # share.
                got = qmp.execute('block_resize', {'node-name': 'f',
                                                   'size': 2 << 20})
                if got.get('error', {}).get('class') == 'CommandNotFound':
                    continue    # blockd has no block_resize yet
                self.assertEqual(got, {'error': {
                    'class': 'GenericError',
                    'desc': 'Failed to get "resize" lock'}})


if __name__ == '__main__':
    h.main()
