#!/usr/bin/python3
"""Internal snapshots of qcow2 images (plugins/block-qcow2/
qcow2-snapshot.c) made by qemu-img snapshot, side by side with
qemu-storage-daemon 7.2:

- query-named-block-nodes shows the snapshot table in ImageInfo's
  snapshots as qsd does (none: no member);
- writes through blockd to an image whose clusters the snapshots share
  copy them (refcounts above one): qemu-img check stays clean, qemu-img
  snapshot -l still lists the snapshots, and qemu-img snapshot -a brings
  back each snapshot's data exactly.
"""

import os
import shutil
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


if __name__ == '__main__':
    h.main()
