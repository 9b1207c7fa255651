"""Corrupt and unsupported qcow2 images: blockd refuses each one with
qemu-storage-daemon 7.2's error, and garbage in the L1/L2 tables gives
BLOCK_IMAGE_CORRUPTED and an I/O error, never a crash.

The images are built by qcow2_bad_images.py from qemu-img-made ones.
Every image is opened through QMP blockdev-add by qemu-storage-daemon,
then rebuilt at the same path and opened by blockd: the error class and
description must be the same (or both must succeed).
"""

import os
import sys

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import blockd_harness  # noqa: E402
import qcow2_bad_images as bad  # noqa: E402


def monitor_args(sock):
    return ['--chardev', f'socket,id=qmp0,path={sock},server=on,wait=off',
            '--monitor', 'chardev=qmp0']


class BadImagesTest(blockd_harness.TestCase):

    def start(self, binary, extra=()):
        """A daemon (blockd when binary is None) with a QMP monitor."""
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        if os.path.exists(sock):
            os.unlink(sock)
        args = monitor_args(sock) + list(extra)
        if binary == 'qsd':
            daemon = self.start_qsd(args)
        else:
            daemon = self.start_daemon(args)
        daemon.wait_for_socket_file(sock)
        return daemon, self.qmp(sock)

    def open_all(self, binary, cases):
        """{name: ('ok', None) or (class, desc)} for every case."""
        daemon, qmp = self.start(binary)
        imgdir = os.path.join(self.tmpdir, 'images')
        os.makedirs(imgdir, exist_ok=True)
        results = {}
        for name, make, read_only in cases:
            path = os.path.join(imgdir, name + '.qcow2')
            if os.path.exists(path):
                os.unlink(path)
            make(path)
            reply = qmp.execute('blockdev-add', {
                'driver': 'qcow2', 'node-name': 'n0', 'read-only': read_only,
                'file': {'driver': 'file', 'filename': path}})
            if 'error' in reply:
                results[name] = (reply['error']['class'],
                                 reply['error']['desc'])
            else:
                results[name] = ('ok', None)
                qmp.command('blockdev-del', {'node-name': 'n0'})
            self.assertTrue(daemon.running(),
                            f'{name}: the daemon died:\n{daemon.stderr()}')
        daemon.stop()
        return results

    def test_open_errors_match_qsd(self):
        expected = self.open_all('qsd', bad.CASES)
        got = self.open_all(None, bad.CASES)
        # the set must be worth its name: most cases are refused by qsd
        refused = [n for n, r in expected.items() if r[0] != 'ok']
        self.assertGreater(len(refused), len(bad.CASES) * 2 // 3, expected)
        for name, _, _ in bad.CASES:
            with self.subTest(image=name):
                self.assertEqual(got[name], expected[name])

    def test_dirty_lazy_image_is_repaired(self):
        """A read-write open of a dirty lazy-refcounts image repairs it:
        qemu-img check finds it clean afterwards, as after qsd."""
        for binary in ('qsd', None):
            with self.subTest(daemon=binary or 'blockd'):
                path = os.path.join(self.tmpdir, 'dirty.qcow2')
                if os.path.exists(path):
                    os.unlink(path)
                bad.dirty_bit_lazy(path)
                res = self.run_command(['qemu-img', 'check', path])
                self.assertNotEqual(res.returncode, 0,
                                    'the patched image should be unclean')
                daemon, qmp = self.start(binary)
                qmp.command('blockdev-add', {
                    'driver': 'qcow2', 'node-name': 'n0',
                    'file': {'driver': 'file', 'filename': path}})
                qmp.command('blockdev-del', {'node-name': 'n0'})
                daemon.stop()
                res = self.run_command(['qemu-img', 'check', path])
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                img = bad.Image(path)
                try:
                    self.assertEqual(img.get(bad.INCOMPAT) &
                                     bad.INCOMPAT_DIRTY, 0)
                finally:
                    img.close()
                res = self.run_command(['qemu-io', '-f', 'qcow2', '-r', '-c',
                                        'read -P 0x5a 0 192k', path])
                self.assertNotIn('fail', res.stdout + res.stderr)

    def read_garbage(self, binary, name, make):
        """Open the image, export it, read and write through NBD.
        Returns what a client and QMP saw."""
        path = os.path.join(self.tmpdir, name + '.qcow2')
        if os.path.exists(path):
            os.unlink(path)
        make(path)
        nbd_sock = os.path.join(self.tmpdir, 'nbd.sock')
        daemon, qmp = self.start(binary)
        qmp.command('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'n0',
            'file': {'driver': 'file', 'filename': path}})
        qmp.command('nbd-server-start', {
            'addr': {'type': 'unix', 'data': {'path': nbd_sock}}})
        qmp.command('block-export-add', {
            'type': 'nbd', 'id': 'e0', 'node-name': 'n0', 'name': 'e0',
            'writable': True})
        seen = {}
        ops = []
        h = nbd.NBD()
        h.connect_uri(f'nbd+unix:///e0?socket={nbd_sock}')
        # Only whether each request succeeded is compared: after an
        # error qemu may fail later requests with another errno.  When
        # it drops the connection (it does when a structured read fails
        # midway) the requests that follow are not compared.
        for what, op in (('read', lambda: h.pread(65536, 0)),
                         ('read again', lambda: h.pread(4096, 0)),
                         ('write', lambda: h.pwrite(b'\1' * 4096, 0)),
                         ('read far', lambda: h.pread(4096, 32 << 20))):
            try:
                op()
                ops.append((what, 'ok'))
            except nbd.Error:
                ops.append((what, 'error'))
            if h.aio_is_closed() or h.aio_is_dead():
                ops.append(('connection', 'dropped'))
                break
        seen['ops'] = ops
        try:
            h.shutdown()
        except nbd.Error:
            pass            # qemu dropped the connection already
        del h
        qmp.execute('query-version')     # collect the events sent so far
        events = []
        for ev in qmp.take_events('BLOCK_IMAGE_CORRUPTED'):
            events.append(ev['data'])
        seen['events'] = events
        self.assertTrue(daemon.running(), daemon.stderr())
        qmp.command('block-export-del', {'id': 'e0'})
        qmp.command('nbd-server-stop')
        daemon.stop()
        img = bad.Image(path)
        try:
            seen['corrupt bit'] = bool(img.get(bad.INCOMPAT) &
                                       bad.INCOMPAT_CORRUPT)
        finally:
            img.close()
        return seen

    def test_garbage_table_entries(self):
        for name, make, corrupt in bad.GARBAGE_CASES:
            with self.subTest(image=name):
                expected = self.read_garbage('qsd', name, make)
                # the case is what the set says it is
                self.assertEqual(bool(expected['events']), bool(corrupt),
                                 expected)
                self.assertEqual(
                    any(r == 'error' for _, r in expected['ops']),
                    corrupt is not False, expected)
                got = self.read_garbage(None, name, make)
                if expected['ops'][-1] == ('connection', 'dropped'):
                    # the requests qemu answered before it hung up
                    n = len(expected['ops']) - 1
                    got['ops'] = got['ops'][:n]
                    expected['ops'] = expected['ops'][:n]
                self.assertEqual(got, expected)


if __name__ == '__main__':
    blockd_harness.main()
