#!/usr/bin/python3
"""Internal snapshots of qcow2 images (plugins/block-qcow2/
qcow2-snapshot.c) made by qemu-img snapshot, side by side with
qemu-storage-daemon 7.2:

- query-named-block-nodes shows the snapshot table in ImageInfo's
  snapshots as qsd does (none: no member);
- writes through blockd to an image whose clusters the snapshots share
  copy them (refcounts above one): qemu-img check stays clean, qemu-img
  snapshot -l still lists the snapshots, and qemu-img snapshot -a brings
  back each snapshot's data exactly;
- blockdev-snapshot-internal-sync and blockdev-snapshot-delete-internal-
  sync answer as qsd's (errors included; the times differ), the
  snapshots they make are what qemu-img snapshot -l/-a/-d and qemu-img
  check see, with the data of the instant they were taken.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import blockd_harness as h

SIZE = 16 << 20


class Qcow2SnapshotTests(h.TestCase):

    def setUp(self):
        super().setUp()
        if h.find_qsd() is None:
            self.skipTest('qemu-storage-daemon is not installed')

    def tool(self, *argv, ok=(0,)):
        res = self.run_command(list(argv))
        self.assertIn(res.returncode, ok, f'{argv}: {res.stdout}'
                      f'{res.stderr}')
        return res.stdout

    def start(self, binary, img, read_only=False):
        stamp = time.monotonic_ns()
        qmp_sock = os.path.join(self.tmpdir, f'{binary}-{stamp}.qmp')
        nbd_sock = os.path.join(self.tmpdir, f'{binary}-{stamp}.nbd')
        ro = ',read-only=on' if read_only else ''
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f0,filename={img}{ro}',
                '--blockdev', f'driver=qcow2,node-name=q0,file=f0{ro}',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}']
        d = self.start_qsd(args) if binary == 'qsd' else \
            self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        return d, self.qmp(qmp_sock), nbd_sock

    def image_info(self, qmp):
        nodes = qmp.command('query-named-block-nodes')
        return [n['image'] for n in nodes if n['node-name'] == 'q0'][0]

    def test_snapshot_table_and_copy_on_write(self):
        img = os.path.join(self.tmpdir, 'base.qcow2')
        self.tool('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                  'cluster_size=4096', img, str(SIZE))
        for n in (False, True):
            # none: no member, in both
            got = []
            for binary in ('qsd', 'blockd'):
                d, q, _ = self.start(binary, img, read_only=n)
                got.append(self.image_info(q).get('snapshots'))
                q.command('quit')
                d.wait()
            self.assertEqual(got, [None, None])
        datas = []
        for i in range(3):
            self.tool('qemu-io', '-c', f'write -P {i + 1} {i}M 1M', '-c',
                      f'write -P {i + 11} 8M 64k', img)
            raw = os.path.join(self.tmpdir, f'at-{i}.raw')
            self.tool('qemu-img', 'convert', '-O', 'raw', img, raw)
            datas.append(raw)
            self.tool('qemu-img', 'snapshot', '-c', f'snap{i}', img)
        self.tool('qemu-img', 'snapshot', '-d', 'snap1', img)

        imgs = {}
        for binary in ('qsd', 'blockd'):
            imgs[binary] = os.path.join(self.tmpdir, f'{binary}.qcow2')
            shutil.copyfile(img, imgs[binary])
        tables = []
        for binary in ('qsd', 'blockd'):
            d, q, sock = self.start(binary, imgs[binary])
            tables.append(self.image_info(q).get('snapshots'))
            if binary == 'blockd':
                # overwrite clusters that snap0 and snap2 share
                q.command('block-export-add', {'type': 'nbd', 'id': 'w',
                                               'node-name': 'q0',
                                               'writable': True})
                self.tool('qemu-io', '-f', 'raw', '-c',
                          'write -P 0x77 512k 2M', '-c',
                          'write -z 8M 4k', '-c', 'discard 2M 64k',
                          f'nbd+unix:///q0?socket={sock}')
                q.command('block-export-del', {'id': 'w'})
            q.command('quit')
            d.wait()
        self.assertEqual(tables[1], tables[0])
        self.assertEqual([s['name'] for s in tables[1]], ['snap0', 'snap2'])

        ours = imgs['blockd']
        check = self.tool('qemu-img', 'check', ours)
        self.assertIn('No errors were found', check)
        listing = self.tool('qemu-img', 'snapshot', '-l', ours)
        self.assertIn('snap0', listing)
        self.assertIn('snap2', listing)
        for i in (0, 2):
            self.tool('qemu-img', 'snapshot', '-a', f'snap{i}', ours)
            out = self.tool('qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
                            ours, datas[i])
            self.assertIn('Images are identical', out)
            self.assertIn('No errors were found',
                          self.tool('qemu-img', 'check', ours))

    def both(self, sides, cmd, args):
        got = []
        for q in sides:
            r = q.execute(cmd, args)
            got.append(('error', r['error']['class'], r['error']['desc'])
                       if 'error' in r else r['return'])
        return got

    @staticmethod
    def timeless(value):
        """A SnapshotInfo (or list) without its times."""
        if isinstance(value, list):
            return [Qcow2SnapshotTests.timeless(v) for v in value]
        if isinstance(value, dict):
            return {k: v for k, v in value.items()
                    if k not in ('date-sec', 'date-nsec', 'vm-clock-sec',
                                 'vm-clock-nsec')}
        return value

    def test_qmp_create_and_delete(self):
        base = os.path.join(self.tmpdir, 'base.qcow2')
        self.tool('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                  'cluster_size=4096', base, str(SIZE))
        self.tool('qemu-io', '-c', 'write -P 1 0 3M', base)
        ro = os.path.join(self.tmpdir, 'ro.qcow2')
        shutil.copyfile(base, ro)
        raw = os.path.join(self.tmpdir, 'x.raw')
        with open(raw, 'wb') as f:
            f.truncate(1 << 20)
        imgs, sides, socks, daemons = {}, [], [], []
        for binary in ('qsd', 'blockd'):
            imgs[binary] = os.path.join(self.tmpdir, f'{binary}.qcow2')
            shutil.copyfile(base, imgs[binary])
            stamp = time.monotonic_ns()
            qmp_sock = os.path.join(self.tmpdir, f'{binary}-{stamp}.qmp')
            nbd_sock = os.path.join(self.tmpdir, f'{binary}-{stamp}.nbd')
            args = ['--chardev',
                    f'socket,id=m,path={qmp_sock},server=on,wait=off',
                    '--monitor', 'chardev=m',
                    '--blockdev', 'driver=file,node-name=f0,'
                    f'filename={imgs[binary]}',
                    '--blockdev', 'driver=qcow2,node-name=q0,file=f0',
                    '--blockdev', f'driver=file,node-name=f1,filename={ro},'
                    'read-only=on',
                    '--blockdev', 'driver=qcow2,node-name=q1,file=f1,'
                    'read-only=on',
                    '--blockdev', f'driver=file,node-name=f2,filename={raw}',
                    '--blockdev', 'driver=raw,node-name=r2,file=f2',
                    '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}',
                    '--export', 'type=nbd,id=e,node-name=q0,name=q0,'
                    'writable=on']
            d = self.start_qsd(args) if binary == 'qsd' else \
                self.start_daemon(args)
            d.wait_for_socket_file(qmp_sock)
            d.wait_for_socket_file(nbd_sock)
            daemons.append(d)
            sides.append(self.qmp(qmp_sock))
            socks.append(nbd_sock)
        create = 'blockdev-snapshot-internal-sync'
        delete = 'blockdev-snapshot-delete-internal-sync'

        def same(cmd, args):
            got = self.both(sides, cmd, args)
            self.assertEqual(self.timeless(got[1]), self.timeless(got[0]),
                             (cmd, args))
            return got[1]

        def write(cmd):
            for sock in socks:
                self.tool('qemu-io', '-f', 'raw', '-c', cmd,
                          f'nbd+unix:///q0?socket={sock}')

        datas = {}

        def snap(name):
            self.assertEqual(same(create, {'device': 'q0', 'name': name}),
                             {})
            raw_at = os.path.join(self.tmpdir, f'at-{name}.raw')
            self.tool('qemu-img', 'convert', '-U', '-O', 'raw',
                      imgs['blockd'], raw_at)
            datas[name] = raw_at

        snap('a')
        write('write -P 2 1M 2M')
        snap('1')
        write('write -P 3 2M 4M')
        write('write -z 0 512k')
        snap('b')
        write('write -P 4 0 8M')
        for args in ({'device': 'q0', 'name': 'a'},
                     {'device': 'q0', 'name': ''},
                     {'device': 'f0', 'name': 'x'},
                     {'device': 'q1', 'name': 'x'},
                     {'device': 'r2', 'name': 'x'},
                     {'device': 'nope', 'name': 'x'}):
            self.assertEqual(same(create, args)[0], 'error', args)
        for args in ({'device': 'q0'},
                     {'device': 'q0', 'name': 'zz'},
                     {'device': 'q0', 'id': '7'},
                     {'device': 'q0', 'id': '1', 'name': 'b'},
                     {'device': 'r2', 'name': 'b'},
                     {'device': 'q1', 'name': 'b'},
                     {'device': 'f0', 'name': 'b'}):
            self.assertEqual(same(delete, args)[0], 'error', args)
        listed = []
        for q in sides:
            nodes = q.command('query-named-block-nodes')
            listed.append([n['image'].get('snapshots') for n in nodes
                           if n['node-name'] == 'q0'][0])
        self.assertEqual(self.timeless(listed[1]), self.timeless(listed[0]))
        self.assertEqual([(s['id'], s['name']) for s in listed[1]],
                         [('1', 'a'), ('2', '1'), ('3', 'b')])
        # what qemu-img sees of a running blockd's image
        out = self.tool('qemu-img', 'snapshot', '-U', '-l', imgs['blockd'])
        for name in ('a', '1', 'b'):
            self.assertIn(f' {name} ', out)
        # delete "1" by name (id 2), then id 1 ("a")
        got = same(delete, {'device': 'q0', 'name': '1'})
        self.assertEqual((got['id'], got['name']), ('2', '1'))
        got = same(delete, {'device': 'q0', 'id': '1'})
        self.assertEqual((got['id'], got['name']), ('1', 'a'))
        snap('c')
        for q, d in zip(sides, daemons):
            q.command('quit')
            self.assertEqual(d.wait(), 0)
        ours = imgs['blockd']
        check = self.tool('qemu-img', 'check', ours)
        self.assertIn('No errors were found', check)
        self.assertNotIn('leaked', check)
        listing = self.tool('qemu-img', 'snapshot', '-l', ours)
        self.assertIn(' b ', listing)
        self.assertIn(' c ', listing)
        self.assertNotIn(' a ', listing)
        for name in ('b', 'c'):
            self.tool('qemu-img', 'snapshot', '-a', name, ours)
            out = self.tool('qemu-img', 'compare', '-f', 'qcow2', '-F',
                            'raw', ours, datas[name])
            self.assertIn('Images are identical', out)
        self.tool('qemu-img', 'snapshot', '-d', 'b', ours)
        check = self.tool('qemu-img', 'check', ours)
        self.assertIn('No errors were found', check)
        self.assertNotIn('leaked', check)

    def assert_only_harmless(self, img):
        """qemu-img check after a kill finds what a kill of QEMU can
        leave and nothing worse: leaked clusters, and COPIED flags that
        disagree with a refcount only where that cannot lose data (set on
        a cluster whose extra reference is a leak, or clear on a cluster
        of refcount 1: at worst a needless copy).  A refcount below the
        references (a cluster that could be handed out twice) or a
        COPIED flag on a really shared cluster fails."""
        res = self.run_command(['qemu-img', 'check', img])
        cs = 4096
        leaked = {}
        for line in res.stdout.splitlines() + res.stderr.splitlines():
            m = re.match(r'Leaked cluster (\d+) refcount=(\d+) '
                         r'reference=(\d+)', line)
            if m:
                leaked[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        for line in res.stdout.splitlines() + res.stderr.splitlines():
            if not line.startswith('ERROR'):
                continue
            m = re.match(r'ERROR OFLAG_COPIED (?:data cluster: l2_entry|'
                         r'L2 cluster: l1_index=\d+ l1_entry)=([0-9a-f]+) '
                         r'refcount=(\d+)', line)
            self.assertIsNotNone(m, f'{line}\n{res.stdout}{res.stderr}')
            entry, refcount = int(m.group(1), 16), int(m.group(2))
            copied = bool(entry >> 63)
            cluster = (entry & 0x00fffffffffffe00) // cs
            if copied:
                # shared only through a leak: one real reference
                self.assertEqual(leaked.get(cluster, (None, None))[1], 1,
                                 f'{line}\n{res.stdout}')
            else:
                self.assertEqual(refcount, 1, line)
        self.assertIn(res.returncode, (0, 2, 3), res.stdout + res.stderr)

    def test_sigkill_during_snapshots(self):
        """SIGKILL while snapshots are created and deleted under writes:
        qemu-img check finds no corruption (leaks at most, as after
        QEMU), and the snapshots it lists revert to readable images."""
        img = os.path.join(self.tmpdir, 'kill.qcow2')
        self.tool('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                  'cluster_size=4096', img, str(SIZE))
        self.tool('qemu-io', '-c', 'write -P 1 0 4M', img)
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
                '--export', 'type=nbd,id=e,node-name=q0,name=q0,'
                'writable=on'])
            d.wait_for_socket_file(qmp_sock)
            d.wait_for_socket_file(nbd_sock)
            q = self.qmp(qmp_sock)
            writer = subprocess.Popen(
                ['qemu-io', '-f', 'raw'] +
                sum((['-c', f'write -P {k} {k * 37 * 4096} 64k']
                     for k in range(1, 100)), []) +
                [f'nbd+unix:///q0?socket={nbd_sock}'],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stop = threading.Event()

            def churn():
                n = 0
                try:
                    while not stop.is_set():
                        q.execute('blockdev-snapshot-internal-sync',
                                  {'device': 'q0', 'name': f'r{round_}-{n}'})
                        if n % 2:
                            q.execute(
                                'blockdev-snapshot-delete-internal-sync',
                                {'device': 'q0', 'name': f'r{round_}-{n - 1}'})
                        n += 1
                except OSError:
                    pass        # the daemon was killed under it
            t = threading.Thread(target=churn)
            t.start()
            time.sleep(0.05 + 0.04 * round_)
            d.stop(sig=signal.SIGKILL)
            stop.set()
            t.join()
            writer.kill()
            writer.wait()
            self.assert_only_harmless(img)
            # repair, as an administrator would after a crash
            self.tool('qemu-img', 'check', '-r', 'all', img, ok=(0,))
        listing = self.tool('qemu-img', 'snapshot', '-l', img)
        names = [line.split()[1] for line in listing.splitlines()[2:]]
        self.assertTrue(names, listing)
        self.tool('qemu-img', 'snapshot', '-a', names[0], img)
        self.tool('qemu-io', '-c', 'read 0 16M', img)
        self.assertIn('No errors were found',
                      self.tool('qemu-img', 'check', img))


if __name__ == '__main__':
    h.main()
