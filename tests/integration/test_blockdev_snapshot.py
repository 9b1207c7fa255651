"""External snapshots and backing file names side by side with
qemu-storage-daemon 7.2: blockdev-snapshot (an overlay added with
blockdev-add and no backing), blockdev-snapshot-sync with mode
'existing', change-backing-file; every reply and event compared, then
the images checked with qemu-img (compare, check, info).

blockdev-snapshot-sync's default mode ('absolute-paths') creates the
overlay image with the format driver's co_create.
"""
import os

import blockd_harness as h
import chain_jobs as cj

# base <- mid, and ov.qcow2 made by qemu-img with mid as its backing file
CHAIN2 = cj.CHAIN[:2]


class Snapshots(cj.ChainCase):

    def setup(self, d):
        self.make_chain(d, CHAIN2)
        self.reference(d, 'mid.qcow2', 'mid-ref.raw')
        for name in ('ov.qcow2', 'ov2.qcow2'):
            r = self.run_command(['qemu-img', 'create', '-q', '-f', 'qcow2',
                                  '-b', os.path.join(d, 'mid.qcow2'), '-F',
                                  'qcow2', os.path.join(d, name)])
            self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_command(['qemu-img', 'create', '-q', '-f', 'raw',
                              os.path.join(d, 'r.raw'), '16M'])
        self.assertEqual(r.returncode, 0, r.stderr)

    def overlay(self, name, driver='qcow2', **extra):
        opts = {'driver': driver, 'node-name': name.split('.')[0],
                'file': {'driver': 'file', 'filename': 'DIR/' + name}}
        if driver == 'qcow2':
            opts['backing'] = None
        opts.update(extra)
        return ('blockdev-add', opts)

    def nodes(self):
        return ('query-named-block-nodes', {'flat': True})

    def test_blockdev_snapshot(self):
        """The overlay takes the node's place (the export serves it), the
        node becomes read-only, writes through the export go to the
        overlay; the node's image is unchanged."""
        steps = self.blockdev_chain(CHAIN2) + [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e', 'name': 'e',
                                  'node-name': 'mid', 'writable': True}),
            self.overlay('ov.qcow2'),
            ('blockdev-snapshot', {'node': 'mid', 'overlay': 'ov'}),
            ('query-block-exports', None),
            self.nodes(),
            ('blockdev-del', {'node-name': 'mid'}),
            ('blockdev-del', {'node-name': 'ov'}),
            self.write_through_export,
            ('block-export-del', {'id': 'e'}),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size',))
        for replies, _, d in (ours, theirs):
            self.assertEqual(replies[-5]['return'][0]['node-name'], 'ov')
            ov = os.path.join(d, 'ov.qcow2')
            self.compare(os.path.join(d, 'mid.qcow2'),
                         os.path.join(d, 'mid-ref.raw'))
            with open(os.path.join(d, 'mid-ref.raw'), 'r+b') as f:
                f.seek(cj.MiB)
                f.write(b'\xee' * 65536)
            self.compare(ov, os.path.join(d, 'mid-ref.raw'))
            for img in ('ov.qcow2', 'mid.qcow2', 'base.qcow2'):
                self.check_image(os.path.join(d, img))

    def write_through_export(self, d, qmp):
        r = self.run_command(['qemu-io', '-f', 'raw', '-c',
                              'write -q -P 0xee 1M 64k',
                              'nbd+unix:///e?socket=' +
                              os.path.join(d, 'nbd.sock')])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_blockdev_snapshot_errors(self):
        steps = self.blockdev_chain(CHAIN2) + [
            self.overlay('ov.qcow2'),
            self.overlay('r.raw', driver='raw'),
            ('blockdev-snapshot', {'node': 'nosuch', 'overlay': 'ov'}),
            ('blockdev-snapshot', {'node': 'mid', 'overlay': 'nosuch'}),
            ('blockdev-snapshot', {'node': 'base', 'overlay': 'mid'}),
            ('blockdev-snapshot', {'node': 'mid', 'overlay': 'r'}),
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e', 'name': 'e',
                                  'node-name': 'ov'}),
            ('blockdev-snapshot', {'node': 'mid', 'overlay': 'ov'}),
            ('block-export-del', {'id': 'e'}),
            ('WAIT', 'BLOCK_EXPORT_DELETED', {'id': 'e'}),
            ('blockdev-snapshot', {'node': 'mid', 'overlay': 'ov'}),
            ('blockdev-snapshot', {'node': 'mid', 'overlay': 'ov'}),
            self.nodes(),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size',))

    def test_snapshot_sync_existing(self):
        steps = self.blockdev_chain(CHAIN2) + [
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/ov.qcow2',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/ov.qcow2',
                                        'snapshot-node-name': 'base',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'device': 'nosuch',
                                        'snapshot-file': 'DIR/ov.qcow2',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'snapshot-file': 'DIR/ov.qcow2',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/nosuch.qcow2',
                                        'snapshot-node-name': 'ov',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/ov.qcow2',
                                        'snapshot-node-name': 'ov',
                                        'format': 'nosuch',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/ov.qcow2',
                                        'snapshot-node-name': 'ov',
                                        'mode': 'existing'}),
            ('blockdev-snapshot-sync', {'device': 'ov',
                                        'snapshot-file': 'DIR/ov2.qcow2',
                                        'snapshot-node-name': 'ov2',
                                        'format': 'qcow2',
                                        'mode': 'existing'}),
            self.nodes(),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size',))
        for _, _, d in (ours, theirs):
            self.compare(os.path.join(d, 'ov2.qcow2'),
                         os.path.join(d, 'mid-ref.raw'))

    def test_snapshot_sync_absolute_paths(self):
        """The default mode creates the overlay image (the node's file
        name and format as its backing file, its size), then as
        'existing'; with an unknown format nothing is created."""
        steps = self.blockdev_chain(CHAIN2) + [
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/bad.qcow2',
                                        'snapshot-node-name': 'bad',
                                        'format': 'nosuch'}),
            ('blockdev-snapshot-sync', {'node-name': 'mid',
                                        'snapshot-file': 'DIR/new.qcow2',
                                        'snapshot-node-name': 'new'}),
            self.nodes(),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size',))
        for _, _, d in (ours, theirs):
            self.assertFalse(os.path.exists(os.path.join(d, 'bad.qcow2')))
            new = os.path.join(d, 'new.qcow2')
            info = self.info(new)
            self.assertEqual(info[0]['backing-filename'],
                             os.path.join(d, 'mid.qcow2'))
            self.assertEqual(info[0]['backing-filename-format'], 'qcow2')
            self.assertEqual(info[0]['virtual-size'], cj.SIZE)
            self.compare(new, os.path.join(d, 'mid-ref.raw'))
            self.check_image(new)

    def test_change_backing_file(self):
        steps = self.blockdev_chain(CHAIN2) + [
            ('change-backing-file', {'device': 'nosuch',
                                     'image-node-name': 'mid',
                                     'backing-file': 'x'}),
            ('change-backing-file', {'device': 'base',
                                     'image-node-name': 'mid',
                                     'backing-file': 'x'}),
            ('change-backing-file', {'device': 'mid',
                                     'image-node-name': 'nosuch',
                                     'backing-file': 'x'}),
            ('change-backing-file', {'device': 'mid',
                                     'image-node-name': 'base',
                                     'backing-file': 'x'}),
            # absolute: with a relative name QEMU takes the backing as
            # overridden and names the node "json:{...}"
            ('change-backing-file', {'device': 'mid',
                                     'image-node-name': 'mid',
                                     'backing-file': 'DIR/base.qcow2'}),
            self.nodes(),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size',))
        for _, _, d in (ours, theirs):
            info = self.info(os.path.join(d, 'mid.qcow2'))
            self.assertEqual(info[0]['backing-filename'],
                             os.path.join(d, 'base.qcow2'))
            self.assertEqual(info[0]['backing-filename-format'], 'qcow2')
            self.compare(os.path.join(d, 'mid.qcow2'),
                         os.path.join(d, 'mid-ref.raw'))
            self.check_image(os.path.join(d, 'mid.qcow2'))


if __name__ == '__main__':
    h.main()
