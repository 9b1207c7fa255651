#!/usr/bin/python3
"""Persistent dirty bitmaps in qcow2 images (plugins/block-qcow2/
qcow2-bitmap.c), side by side with qemu-storage-daemon 7.2 on copies of
the same image, checked with qemu-img, qemu-io and nbdinfo:

- block-dirty-bitmap-add persistent: true, writes, merge/clear/enable/
  disable, then quit or SIGTERM: qemu-img info lists the bitmaps as qsd
  leaves them, qemu-img check is clean, qemu-img bitmap --merge works on
  them; a new daemon loads them: the sha256 and query answers equal qsd's,
  and --export ...,bitmaps.0=NAME at start-up serves them to nbdinfo
  --map=qemu:dirty-bitmap:NAME as qsd does;
- blockd reads what qemu-img bitmap --add/--merge/--disable wrote;
- QEMU's checks and errors (v2 images, name length, space, formats that
  cannot store bitmaps, in-use bitmaps found at open, remove);
- a SIGKILL during writes leaves the bitmaps in use: the next open marks
  them inconsistent as qsd does, and qemu-img check finds no corruption.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import blockd_harness as h

SIZE = 64 << 20


def reply(qmp, cmd, args=None):
    """A command's return value, or ('error', class, desc)."""
    r = qmp.execute(cmd, args)
    if 'error' in r:
        return ('error', r['error']['class'], r['error']['desc'])
    return r['return']


class Side:
    def __init__(self, name, daemon, qmp, nbd_sock, img):
        self.name = name
        self.daemon = daemon
        self.qmp = qmp
        self.nbd_sock = nbd_sock
        self.img = img

    def uri(self, export):
        return f'nbd+unix:///{export}?socket={self.nbd_sock}'


class Qcow2BitmapTests(h.TestCase):

    def setUp(self):
        super().setUp()
        if h.find_qsd() is None:
            self.skipTest('qemu-storage-daemon is not installed')

    # ---- helpers ----

    def qemu_img(self, *args, ok=(0,)):
        res = self.run_command(['qemu-img'] + list(args))
        self.assertIn(res.returncode, ok, f'qemu-img {args}: {res.stdout}'
                      f'{res.stderr}')
        return res

    def create(self, name, opts='', size=SIZE):
        path = os.path.join(self.tmpdir, name)
        args = ['create', '-q', '-f', 'qcow2']
        if opts:
            args += ['-o', opts]
        self.qemu_img(*args, path, str(size))
        return path

    def copies(self, base):
        """One copy of `base` per side."""
        out = []
        for name in ('qsd', 'blockd'):
            img = os.path.join(self.tmpdir, f'{name}.qcow2')
            shutil.copyfile(base, img)
            out.append(img)
        return out

    def start(self, name, img, extra=(), read_only=False):
        stamp = time.monotonic_ns()
        qmp_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.qmp')
        nbd_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.nbd')
        ro = ',read-only=on' if read_only else ''
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f0,filename={img}{ro}',
                '--blockdev', f'driver=qcow2,node-name=q0,file=f0{ro}',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}']
        args += list(extra)
        d = self.start_qsd(args) if name == 'qsd' else self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        d.wait_for_socket_file(nbd_sock)
        return Side(name, d, self.qmp(qmp_sock), nbd_sock, img)

    def start_both(self, imgs, extra=(), read_only=False):
        self.sides = [self.start('qsd', imgs[0], extra, read_only),
                      self.start('blockd', imgs[1], extra, read_only)]

    def both(self, cmd, args=None):
        got = [reply(s.qmp, cmd, args) for s in self.sides]
        self.assertEqual(got[1], got[0], f'{cmd} {args}')
        return got[1]

    def both_ok(self, cmd, args=None):
        r = self.both(cmd, args)
        self.assertNotIsInstance(r, tuple, f'{cmd} {args}: {r}')
        return r

    def both_error(self, cmd, args, desc):
        self.assertEqual(self.both(cmd, args), ('error', 'GenericError', desc))

    def bitmaps(self):
        """dirty-bitmaps of q0, equal on both sides."""
        got = []
        for s in self.sides:
            nodes = s.qmp.command('query-named-block-nodes')
            got.append([n.get('dirty-bitmaps') for n in nodes
                        if n['node-name'] == 'q0'][0])
        self.assertEqual(got[1], got[0])
        return got[1]

    def image_bitmaps(self):
        """format-specific bitmaps of q0's image info, equal on both."""
        got = []
        for s in self.sides:
            nodes = s.qmp.command('query-named-block-nodes')
            n = [n for n in nodes if n['node-name'] == 'q0'][0]
            got.append(n['image']['format-specific']['data'].get('bitmaps'))
        self.assertEqual(got[1], got[0])
        return got[1]

    def sha(self, name):
        return self.both_ok('x-debug-block-dirty-bitmap-sha256',
                            {'node': 'q0', 'name': name})['sha256']

    def write_both(self, cmds, export='w'):
        """qemu-io commands through a writable export of q0 on each side."""
        self.both_ok('block-export-add', {'type': 'nbd', 'id': export,
                                          'node-name': 'q0',
                                          'writable': True})
        for s in self.sides:
            argv = ['qemu-io', '-f', 'raw']
            for c in cmds:
                argv += ['-c', c]
            res = self.run_command(argv + [s.uri('q0')])
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertNotIn('failed', res.stdout + res.stderr)
        self.both_ok('block-export-del', {'id': export})

    def stop_both(self, how='quit'):
        for s in self.sides:
            if how == 'quit':
                s.qmp.execute('quit')
                s.daemon.wait()
            else:
                s.daemon.stop(sig=signal.SIGTERM)
        for s in self.sides:
            self.assertEqual(s.daemon.wait(), 0, s.daemon.stderr())

    def info_bitmaps(self, img):
        res = self.qemu_img('info', '--output=json', '-U', img)
        data = json.loads(res.stdout)['format-specific']['data']
        return data.get('bitmaps')

    def check_clean(self, img):
        res = self.qemu_img('check', '--output=json', img)
        out = json.loads(res.stdout)
        self.assertEqual(out.get('corruptions', 0), 0, res.stdout)
        self.assertEqual(out.get('leaks', 0), 0, res.stdout)
        return out

    def map_of(self, side, export, bitmap):
        res = self.run_command(['nbdinfo', f'--map=qemu:dirty-bitmap:{bitmap}',
                                side.uri(export)])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        return res.stdout

    # ---- tests ----

    def test_add_write_quit_reopen_export(self):
        """The issue's sequence: persistent bitmaps added, written, merged,
        stored on quit; qemu-img sees them and merges into one; a new
        daemon exports one at start-up as qsd does."""
        imgs = self.copies(self.create('base.qcow2'))
        self.start_both(imgs)
        add = 'block-dirty-bitmap-add'
        self.both_ok(add, {'node': 'q0', 'name': 'b0', 'persistent': True})
        self.both_ok(add, {'node': 'q0', 'name': 'b1', 'persistent': True,
                           'granularity': 4096})
        self.both_ok(add, {'node': 'q0', 'name': 'off', 'persistent': True,
                           'disabled': True, 'granularity': 1 << 20})
        self.both_ok(add, {'node': 'q0', 'name': 'temp'})
        self.write_both(['write -P 0x11 0 100k', 'write -P 0x22 5M 1M',
                         'write -z 20M 64k', 'discard 30M 128k'])
        self.both_ok('block-dirty-bitmap-disable', {'node': 'q0',
                                                    'name': 'b1'})
        self.write_both(['write -P 0x33 40M 4k', 'write 63M 1M'])
        self.both_ok('block-dirty-bitmap-merge',
                     {'node': 'q0', 'target': 'off', 'bitmaps': ['b1']})
        self.both_ok('block-dirty-bitmap-enable', {'node': 'q0',
                                                   'name': 'b1'})
        self.both_ok(add, {'node': 'q0', 'name': 'gone', 'persistent': True})
        self.both_ok('block-dirty-bitmap-remove', {'node': 'q0',
                                                   'name': 'gone'})
        self.both_ok(add, {'node': 'q0', 'name': 'empty', 'persistent': True})
        self.both_ok('block-dirty-bitmap-clear', {'node': 'q0',
                                                  'name': 'empty'})
        before = {n: self.sha(n) for n in ('b0', 'b1', 'off', 'empty')}
        listed = self.bitmaps()
        self.assertTrue(all(b['persistent'] == (b['name'] != 'temp')
                            for b in listed), listed)
        self.stop_both('quit')

        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        self.assertEqual(sorted(b['name'] for b in infos[1]),
                         ['b0', 'b1', 'empty', 'off'])
        for img in imgs:
            self.check_clean(img)

        # qemu-img merges a stored bitmap into a new one
        for img in imgs:
            self.qemu_img('bitmap', '--add', '-g', '65536', img, 'm')
            self.qemu_img('bitmap', '--merge', 'b0', img, 'm')
            self.qemu_img('bitmap', '--merge', 'off', img, 'm')
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])

        # a new daemon of each kind exports them from the start
        self.start_both(imgs, ['--export', 'type=nbd,id=e,node-name=q0,'
                               'name=exp,writable=on,bitmaps.0=b0,'
                               'bitmaps.1=m'])
        self.assertEqual({n: self.sha(n) for n in before}, before)
        self.sha('m')
        self.bitmaps()
        self.image_bitmaps()
        for name in ('b0', 'm'):
            maps = [self.map_of(s, 'exp', name) for s in self.sides]
            self.assertEqual(maps[1], maps[0])
            self.assertIn('dirty', maps[1])
        # still recorded after the restart, and stored again on SIGTERM
        for s in self.sides:
            res = self.run_command(['qemu-io', '-f', 'raw', '-c',
                                    'write -P 7 50M 64k', s.uri('exp')])
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        after = {n: self.sha(n) for n in ('b0', 'b1', 'off', 'm')}
        self.assertNotEqual(after['b0'], before['b0'])
        self.assertEqual(after['off'], before['off'])
        self.both_ok('block-export-del', {'id': 'e'})
        self.stop_both('sigterm')
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        for img in imgs:
            self.check_clean(img)
        self.start_both(imgs)
        self.assertEqual({n: self.sha(n) for n in after}, after)
        self.assertEqual(self.image_bitmaps(), infos[1] and [
            dict(b, flags=sorted(set(b['flags']) | {'in-use'},
                                 key=['in-use', 'auto'].index))
            for b in infos[1]])
        self.stop_both('quit')

    def test_reads_what_qemu_img_wrote(self):
        """qemu-img bitmap --add/--merge/--disable and qemu-io writes:
        blockd loads the same bits, flags and granularities as qsd."""
        base = self.create('base.qcow2')
        self.qemu_img('bitmap', '--add', base, 'a')
        self.qemu_img('bitmap', '--add', '-g', '512', base, 'fine')
        res = self.run_command(['qemu-io', '-c', 'write -P 1 1M 3M', '-c',
                                'write -P 2 33M 512', base])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.qemu_img('bitmap', '--add', base, 'c')
        self.qemu_img('bitmap', '--disable', base, 'c')
        self.qemu_img('bitmap', '--merge', 'fine', base, 'c')
        self.qemu_img('bitmap', '--disable', base, 'a')
        imgs = self.copies(base)
        self.start_both(imgs)
        listed = self.bitmaps()
        self.assertEqual(sorted((b['name'], b['recording'], b['persistent'])
                                for b in listed),
                         [('a', False, True), ('c', False, True),
                          ('fine', True, True)])
        # c is fine merged at a's granularity: a's bits exactly
        shas = {n: self.sha(n) for n in ('a', 'fine', 'c')}
        self.assertEqual(shas['c'], shas['a'])
        self.assertNotEqual(shas['fine'], shas['a'])
        self.image_bitmaps()
        self.stop_both('quit')
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])

        # read-only: loaded, not writable, the image untouched
        self.start_both(imgs, read_only=True)
        self.bitmaps()
        self.both_error('block-dirty-bitmap-clear', {'node': 'q0',
                                                     'name': 'a'},
                        "Bitmap 'a' is readonly and cannot be modified")
        self.both_error('block-dirty-bitmap-remove', {'node': 'q0',
                                                      'name': 'a'},
                        "Bitmap 'a' is readonly and cannot be modified")
        self.both_ok('block-dirty-bitmap-enable', {'node': 'q0', 'name': 'a'})
        self.both('block-dirty-bitmap-add', {'node': 'q0', 'name': 'new',
                                             'persistent': True})
        self.bitmaps()
        self.image_bitmaps()
        self.stop_both('quit')
        self.assertEqual([self.info_bitmaps(img) for img in imgs],
                         infos)
        # both say the new bitmap is lost
        for s in self.sides:
            self.assertIn("Lost persistent bitmaps during inactivation of "
                          "node 'q0': No write access", s.daemon.stderr())

    def test_stored_on_blockdev_del(self):
        """blockdev-del closes the node, which stores its bitmaps while
        the daemon runs on; blockdev-add loads them again."""
        imgs = self.copies(self.create('base.qcow2'))
        self.start_both(imgs)
        self.both_ok('block-dirty-bitmap-add', {'node': 'q0', 'name': 'd',
                                                'persistent': True})
        self.write_both(['write -P 4 3M 200k'])
        sha = self.sha('d')
        self.both_ok('blockdev-del', {'node-name': 'q0'})
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        self.assertEqual(infos[1], [{'name': 'd', 'granularity': 65536,
                                     'flags': ['auto']}])
        self.both_ok('blockdev-add', {'driver': 'qcow2', 'node-name': 'q0',
                                      'file': 'f0'})
        self.assertEqual(self.sha('d'), sha)
        self.bitmaps()
        self.stop_both('quit')

    def test_node_in_iothread(self):
        """The node served from an IOThread: the bitmaps record the
        writes made there, and are stored from the main loop at quit.
        blockd alone: qsd 7.2 aborts when the client of an NBD export in
        an IOThread disconnects (blockdev-nbd.c:62 assertion)."""
        img = self.create('io.qcow2')
        side = self.start('blockd', img, ['--object', 'iothread,id=io0'])
        q = side.qmp
        q.command('block-dirty-bitmap-add', {'node': 'q0', 'name': 't',
                                             'persistent': True,
                                             'granularity': 512})
        q.command('block-export-add', {'type': 'nbd', 'id': 'w',
                                       'node-name': 'q0', 'writable': True,
                                       'iothread': 'io0'})
        res = self.run_command(['qemu-io', '-f', 'raw', '-c',
                                'write -P 3 1M 100k', '-c', 'write -z 9M 1M',
                                side.uri('q0')])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        q.command('block-export-del', {'id': 'w'})
        info = q.command('query-named-block-nodes', flat=True)
        count = [b for n in info if n['node-name'] == 'q0'
                 for b in n['dirty-bitmaps']][0]['count']
        # 100 KiB and 1 MiB of 512-byte granules
        self.assertEqual(count, 100 * 1024 + 1024 * 1024)
        sha = q.command('x-debug-block-dirty-bitmap-sha256',
                        {'node': 'q0', 'name': 't'})['sha256']
        q.execute('quit')
        self.assertEqual(side.daemon.wait(), 0)
        self.check_clean(img)
        self.assertEqual(self.info_bitmaps(img),
                         [{'name': 't', 'granularity': 512,
                           'flags': ['auto']}])
        side = self.start('blockd', img)
        self.assertEqual(side.qmp.command(
            'x-debug-block-dirty-bitmap-sha256',
            {'node': 'q0', 'name': 't'})['sha256'], sha)

    def test_reopen_read_only_and_back(self):
        """blockdev-reopen read-only stores the bitmaps (the image
        consistent, in-use flags gone) and makes them read-only; back to
        read-write marks them in use again, as qsd does."""
        imgs = self.copies(self.create('base.qcow2'))
        self.start_both(imgs)
        self.both_ok('block-dirty-bitmap-add', {'node': 'q0', 'name': 'r',
                                                'persistent': True})
        self.write_both(['write -P 9 2M 256k'])
        sha = self.sha('r')

        def reopen(ro):
            self.both_ok('blockdev-reopen', {'options': [{
                'driver': 'qcow2', 'node-name': 'q0', 'file': 'f0',
                'read-only': ro}]})
        reopen(True)
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        self.assertEqual(infos[1], [{'name': 'r', 'granularity': 65536,
                                     'flags': ['auto']}])
        self.both_error('block-dirty-bitmap-clear', {'node': 'q0',
                                                     'name': 'r'},
                        "Bitmap 'r' is readonly and cannot be modified")
        self.bitmaps()
        reopen(False)
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        self.assertEqual(infos[1][0]['flags'], ['in-use', 'auto'])
        self.assertEqual(self.sha('r'), sha)
        self.write_both(['write -P 9 9M 64k'])
        self.assertNotEqual(self.sha('r'), sha)
        self.both_ok('block-dirty-bitmap-clear', {'node': 'q0', 'name': 'r'})
        self.bitmaps()
        self.stop_both('quit')
        for img in imgs:
            self.check_clean(img)

    def test_resize_with_bitmaps(self):
        """block_resize follows the persistent bitmaps; an inconsistent
        one refuses it with QEMU's message."""
        base = self.create('base.qcow2')
        imgs = self.copies(base)
        self.start_both(imgs)
        self.both_ok('block-dirty-bitmap-add', {'node': 'q0', 'name': 'g',
                                                'persistent': True})
        self.write_both(['write 60M 1M'])
        self.both_ok('block_resize', {'node-name': 'q0',
                                      'size': SIZE * 2})
        self.write_both(['write 100M 64k'])
        sha = self.sha('g')
        self.bitmaps()
        self.stop_both('quit')
        for img in imgs:
            self.check_clean(img)
        self.start_both(imgs)
        self.assertEqual(self.sha('g'), sha)
        for s in self.sides:
            s.daemon.stop(sig=signal.SIGKILL)
        self.start_both(imgs)
        self.both_error('block_resize', {'node-name': 'q0', 'size': SIZE},
                        "Bitmap 'g' is inconsistent and cannot be used")
        self.stop_both('quit')

    def test_errors_as_qsd(self):
        imgs = self.copies(self.create('base.qcow2'))
        self.start_both(imgs)
        add = 'block-dirty-bitmap-add'
        self.both_ok(add, {'node': 'q0', 'name': 'x', 'persistent': True})
        self.both_error(add, {'node': 'q0', 'name': 'x', 'persistent': True},
                        'Bitmap already exists: x')
        long = 'n' * 1024
        self.both_error(add, {'node': 'q0', 'name': long,
                              'persistent': True},
                        f"Can't make bitmap '{long}' persistent in 'q0': "
                        'Name length exceeds maximum (1023 characters)')
        self.both(add, {'node': 'f0', 'name': 'y', 'persistent': True})
        self.both_ok(add, {'node': 'q0', 'name': 'big', 'persistent': True,
                           'granularity': 1 << 31})
        self.stop_both('quit')

        # a v2 image cannot keep bitmaps; a 4 TiB one not at 512 bytes
        v2 = self.copies(self.create('v2.qcow2', 'compat=0.10'))
        self.start_both(v2)
        self.both(add, {'node': 'q0', 'name': 'v', 'persistent': True})
        self.stop_both('quit')
        huge = self.copies(self.create('huge.qcow2', size=4 << 40))
        self.start_both(huge)
        self.both(add, {'node': 'q0', 'name': 'h', 'persistent': True,
                        'granularity': 512})
        self.both_ok(add, {'node': 'q0', 'name': 'h', 'persistent': True,
                           'granularity': 1 << 16})
        self.stop_both('quit')
        infos = [self.info_bitmaps(img) for img in huge]
        self.assertEqual(infos[1], infos[0])

    def test_in_use_bitmap_is_inconsistent(self):
        """A bitmap left in use (the writer killed) loads inconsistent:
        refused with QEMU's message, removable, and qemu-img check finds
        no corruption in the image the kill left."""
        base = self.create('base.qcow2')
        self.qemu_img('bitmap', '--add', base, 'kept')
        imgs = self.copies(base)
        self.start_both(imgs)
        self.both_ok('block-dirty-bitmap-add', {'node': 'q0', 'name': 'new',
                                                'persistent': True})
        self.image_bitmaps()
        self.write_both(['write -P 5 0 1M'])
        for s in self.sides:
            s.daemon.stop(sig=signal.SIGKILL)
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        self.assertEqual(infos[1][0]['flags'], ['in-use', 'auto'])
        for img in imgs:
            res = self.qemu_img('check', '--output=json', img, ok=(0, 3))
            self.assertEqual(json.loads(res.stdout).get('corruptions', 0), 0)

        self.start_both(imgs, ['--export', 'type=nbd,id=e,node-name=q0,'
                               'name=exp,writable=on'])
        listed = self.bitmaps()
        self.assertEqual(listed[0].get('inconsistent'), True)
        msg = "Bitmap 'kept' is inconsistent and cannot be used"
        self.both_error('block-dirty-bitmap-clear',
                        {'node': 'q0', 'name': 'kept'}, msg)
        self.both_error('block-dirty-bitmap-enable',
                        {'node': 'q0', 'name': 'kept'}, msg)
        self.both_ok('block-dirty-bitmap-add', {'node': 'q0', 'name': 't'})
        self.both_error('block-dirty-bitmap-merge',
                        {'node': 'q0', 'target': 't', 'bitmaps': ['kept']},
                        msg)
        self.both_error('block-export-add',
                        {'type': 'nbd', 'id': 'x', 'node-name': 'q0',
                         'name': 'x', 'bitmaps': ['kept']}, msg)
        self.sha('kept')
        self.stop_both('quit')
        infos = [self.info_bitmaps(img) for img in imgs]
        self.assertEqual(infos[1], infos[0])
        self.assertEqual(infos[1], [{'name': 'kept', 'granularity': 65536,
                                     'flags': ['in-use', 'auto']}])
        self.start_both(imgs)
        self.both_ok('block-dirty-bitmap-remove', {'node': 'q0',
                                                   'name': 'kept'})
        self.assertIsNone(self.image_bitmaps())
        self.stop_both('quit')
        for img in imgs:
            self.assertIsNone(self.info_bitmaps(img))

    def test_sigkill_while_storing(self):
        """SIGKILL at instants spread over the store that SIGTERM starts
        (bitmaps of 512-byte granules dirty over 2 GiB: megabytes to
        write): each time, the next open finds every bitmap either stored
        whole (the same sha256 as before the kill) or in use
        (inconsistent), and qemu-img check no corruption."""
        template = self.create('template.qcow2', size=2 << 30)
        for i in range(3):
            self.qemu_img('bitmap', '--add', '-g', '512', template, f'd{i}')
        img = os.path.join(self.tmpdir, 'store.qcow2')
        outcomes = set()
        for round_ in range(8):
            shutil.copyfile(template, img)
            stamp = time.monotonic_ns()
            qmp_sock = os.path.join(self.tmpdir, f's-{stamp}.qmp')
            nbd_sock = os.path.join(self.tmpdir, f's-{stamp}.nbd')
            d = self.start_daemon([
                '--chardev', f'socket,id=m,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f0,filename={img}',
                '--blockdev', 'driver=qcow2,node-name=q0,file=f0',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}',
                '--export', 'type=nbd,id=e,node-name=q0,name=exp,'
                'writable=on'])
            d.wait_for_socket_file(qmp_sock)
            d.wait_for_socket_file(nbd_sock)
            q = self.qmp(qmp_sock)
            uri = f'nbd+unix:///exp?socket={nbd_sock}'
            res = self.run_command(['qemu-io', '-f', 'raw', '-c',
                                    f'write -z {round_}M 2000M', '-c',
                                    f'write -P {round_} 2040M 1M', uri])
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            q.command('block-export-del', {'id': 'e'})
            shas = {f'd{i}': q.command('x-debug-block-dirty-bitmap-sha256',
                                       {'node': 'q0', 'name': f'd{i}'})[
                                           'sha256'] for i in range(3)}
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.008 * round_)
            d.stop(sig=signal.SIGKILL)
            res = self.qemu_img('check', '--output=json', img, ok=(0, 3))
            self.assertEqual(json.loads(res.stdout).get('corruptions', 0), 0,
                             res.stdout)
            flags = {b['name']: b['flags'] for b in self.info_bitmaps(img)}
            self.assertEqual(sorted(flags), ['d0', 'd1', 'd2'])
            # the header names one directory: all stored or none
            self.assertEqual(len({tuple(f) for f in flags.values()}), 1,
                             flags)
            stored = flags['d0'] == ['auto']
            outcomes.add(stored)
            print(f'kill {round_}: {"stored" if stored else "in use"}',
                  file=sys.stderr)
            if stored:
                # stored whole: the same bits come back
                qmp_sock2 = os.path.join(self.tmpdir, f'r-{stamp}.qmp')
                d2 = self.start_daemon([
                    '--chardev', f'socket,id=m,path={qmp_sock2},server=on,'
                    'wait=off', '--monitor', 'chardev=m',
                    '--blockdev', f'driver=file,node-name=f0,filename={img},'
                    'read-only=on',
                    '--blockdev', 'driver=qcow2,node-name=q0,file=f0,'
                    'read-only=on'])
                d2.wait_for_socket_file(qmp_sock2)
                q2 = self.qmp(qmp_sock2)
                for name, sha in shas.items():
                    self.assertEqual(q2.command(
                        'x-debug-block-dirty-bitmap-sha256',
                        {'node': 'q0', 'name': name})['sha256'], sha)
                q2.command('quit')
                d2.wait()
        # the instants covered both sides of the header update
        self.assertIn(False, outcomes)

    def test_sigkill_during_bitmap_writes(self):
        """SIGKILL at random instants while several bitmaps record writes
        and are stored and removed: every open after finds the image
        without corruption (qemu-img check: leaks at most) and each bitmap
        either stored or inconsistent, never with wrong bits read as
        good."""
        img = self.create('kill.qcow2')
        for i in range(4):
            self.qemu_img('bitmap', '--add', img, f'old{i}')
        for round_ in range(6):
            stamp = time.monotonic_ns()
            qmp_sock = os.path.join(self.tmpdir, f'k-{stamp}.qmp')
            nbd_sock = os.path.join(self.tmpdir, f'k-{stamp}.nbd')
            d = self.start_daemon([
                '--chardev', f'socket,id=m,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f0,filename={img}',
                '--blockdev', 'driver=qcow2,node-name=q0,file=f0',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}',
                '--export', 'type=nbd,id=e,node-name=q0,name=exp,'
                'writable=on'])
            d.wait_for_socket_file(qmp_sock)
            q = self.qmp(qmp_sock)
            names = [b['name'] for b in q.command(
                'query-named-block-nodes', flat=True)[0].get(
                    'dirty-bitmaps') or []]
            for name in names:
                if name.startswith('new'):
                    q.command('block-dirty-bitmap-remove',
                              {'node': 'q0', 'name': name})
            q.command('block-dirty-bitmap-add',
                      {'node': 'q0', 'name': f'new{round_}',
                       'persistent': True, 'granularity': 512})
            writer = subprocess.Popen(
                ['qemu-io', '-f', 'raw'] +
                sum((['-c', f'write -P {k} {k * 997 * 512} 64k']
                     for k in range(1, 120)), []) +
                [f'nbd+unix:///exp?socket={nbd_sock}'],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.05 + 0.07 * round_)
            if round_ % 2:
                # killed while storing the bitmaps on SIGTERM
                d.proc.send_signal(signal.SIGTERM)
                time.sleep(0.002 * round_)
            d.stop(sig=signal.SIGKILL)
            writer.kill()
            writer.wait()
            res = self.qemu_img('check', '--output=json', img, ok=(0, 3))
            out = json.loads(res.stdout)
            self.assertEqual(out.get('corruptions', 0), 0, res.stdout)
            for b in self.info_bitmaps(img) or []:
                self.assertIn(b['flags'], (['in-use', 'auto'], ['auto']), b)
        # qsd opens what is left and sees the same bitmaps as blockd
        self.start_both(self.copies(img))
        self.bitmaps()
        self.image_bitmaps()
        self.stop_both('quit')


if __name__ == '__main__':
    h.main()
