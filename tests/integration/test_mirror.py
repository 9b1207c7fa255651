"""blockdev-mirror side by side with qemu-storage-daemon 7.2: the same
QMP sequence against both on a chain made with qemu-img (base <- mid <-
top) and a target image added with blockdev-add, comparing every reply
and the whole event stream (timestamps aside; offsets aside where a
cancel or a client's writes race with the copy), then the images: the
target holds what the source showed at the pivot (qemu-img compare), an
export of the source serves the target after it, a soft cancel in READY
leaves the source in place and the target a consistent copy.
"""
import json
import os

import blockd_harness as h
import chain_jobs as cj

MiB = cj.MiB


def done(job_id):
    return ('WAIT', 'JOB_STATUS_CHANGE', {'id': job_id, 'status': 'null'})


def status(job_id, st):
    return ('WAIT', 'JOB_STATUS_CHANGE', {'id': job_id, 'status': st})


RACY = ('offset', 'len', 'current-progress', 'total-progress')


class BlockdevMirror(cj.ChainCase):

    def setup(self, d, backing=None):
        self.make_chain(d)
        self.reference(d, 'top.qcow2', 'ref.raw')
        self.reference(d, 'mid.qcow2', 'mid-ref.raw')
        cmd = ['qemu-img', 'create', '-q', '-f', 'qcow2']
        if backing:
            cmd += ['-b', os.path.join(d, backing), '-F', 'qcow2']
        self.run_command(cmd + [os.path.join(d, 'tgt.qcow2'),
                                str(cj.SIZE)])

    def setup_on_mid(self, d):
        self.setup(d, 'mid.qcow2')

    def target(self, backing=None, read_only=False):
        return ('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'tgt', 'backing': backing,
            'read-only': read_only,
            'file': {'driver': 'file', 'filename': 'DIR/tgt.qcow2'}})

    def export_steps(self, writable=False):
        return [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e', 'name': 'e',
                                  'node-name': 'top',
                                  'writable': writable}),
        ]

    def check_images(self, d, *imgs):
        for img in ('base.qcow2', 'mid.qcow2', 'top.qcow2') + imgs:
            self.check_image(os.path.join(d, img))

    def test_full_pivot(self):
        """sync full: READY once the target holds everything, then
        block-job-complete pivots (the export serves the target)."""
        steps = self.blockdev_chain() + [self.target()] + \
            self.export_steps() + [
                ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                     'job-id': 'm1', 'sync': 'full'}),
                ('WAIT', 'BLOCK_JOB_READY', {'device': 'm1'}),
                ('query-block-jobs', None),
                ('query-jobs', None),
                ('block-job-complete', {'device': 'm1'}),
                done('m1'),
                ('query-block-exports', None),
                ('block-export-del', {'id': 'e'}),
            ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for replies, _, d in (ours, theirs):
            self.assertEqual(replies[-2]['return'][0]['node-name'], 'tgt')
            self.compare(os.path.join(d, 'tgt.qcow2'),
                         os.path.join(d, 'ref.raw'))
            self.check_images(d, 'tgt.qcow2')
        # what reads as zeroes was not written as data: the target maps
        # data where qsd's does
        self.assertEqual(self.data_ranges(ours[2]),
                         self.data_ranges(theirs[2]))

    def data_ranges(self, d):
        r = self.run_command(['qemu-img', 'map', '--output=json',
                              os.path.join(d, 'tgt.qcow2')])
        self.assertEqual(r.returncode, 0, r.stderr)
        ranges = []
        for e in json.loads(r.stdout):
            if not e['data']:
                continue
            if ranges and ranges[-1][1] == e['start']:
                ranges[-1][1] = e['start'] + e['length']
            else:
                ranges.append([e['start'], e['start'] + e['length']])
        return ranges

    def test_top_granularity_buf_size(self):
        """sync top into a target backed by mid: only what the top
        defines is copied; granularity, buf-size and speed as given."""
        steps = self.blockdev_chain() + [self.target('mid')] + [
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'job-id': 'm1', 'sync': 'top',
                                 'granularity': 4096,
                                 'buf-size': 100000,
                                 'speed': 64 * MiB}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'm1'}),
            ('query-block-jobs', None),
            ('job-complete', {'id': 'm1'}),
            done('m1'),
        ]
        ours, theirs = self.side_by_side(steps, self.setup_on_mid)
        for _, _, d in (ours, theirs):
            self.compare(os.path.join(d, 'tgt.qcow2'),
                         os.path.join(d, 'ref.raw'))
            self.check_images(d, 'tgt.qcow2')
        # only the top's clusters were written into the target
        r = self.run_command(['qemu-img', 'map', '--output=json',
                              os.path.join(ours[2], 'tgt.qcow2')])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('"depth": 0, "present": true, "zero": false, '
                         '"data": true, "offset": 0', r.stdout)

    def test_none_soft_cancel(self):
        """sync none is READY at once; block-job-cancel in READY ends it
        completed without the pivot, the target (backed by mid) showing
        mid's content (nothing was written meanwhile)."""
        steps = self.blockdev_chain() + [self.target('mid')] + \
            self.export_steps() + [
                ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                     'job-id': 'm1', 'sync': 'none'}),
                ('WAIT', 'BLOCK_JOB_READY', {'device': 'm1'}),
                ('block-job-cancel', {'device': 'm1'}),
                done('m1'),
                ('query-block-exports', None),
                ('block-export-del', {'id': 'e'}),
            ]
        ours, theirs = self.side_by_side(steps, self.setup_on_mid)
        for replies, _, d in (ours, theirs):
            self.assertEqual(replies[-2]['return'][0]['node-name'], 'top')
            self.compare(os.path.join(d, 'tgt.qcow2'),
                         os.path.join(d, 'mid-ref.raw'))
            self.compare(os.path.join(d, 'top.qcow2'),
                         os.path.join(d, 'ref.raw'))
            self.check_images(d, 'tgt.qcow2')

    def test_full_soft_cancel_consistent(self):
        """A soft cancel in READY after sync full: the target is a full
        copy; a forced cancel before READY ends the job cancelled."""
        steps = self.blockdev_chain() + [self.target()] + [
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'job-id': 'm1', 'sync': 'full',
                                 'speed': 1}),
            ('block-job-cancel', {'device': 'm1'}),
            done('m1'),
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'job-id': 'm2', 'sync': 'full'}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'm2'}),
            ('job-pause', {'id': 'm2'}),
            status('m2', 'standby'),
            ('job-resume', {'id': 'm2'}),
            status('m2', 'ready'),
            ('block-job-cancel', {'device': 'm2'}),
            done('m2'),
        ]
        ours, theirs = self.side_by_side(steps, self.setup, drop=RACY)
        for _, _, d in (ours, theirs):
            self.compare(os.path.join(d, 'tgt.qcow2'),
                         os.path.join(d, 'ref.raw'))
            self.check_images(d, 'tgt.qcow2')

    def test_manual_finalize_and_dismiss(self):
        steps = self.blockdev_chain() + [self.target()] + [
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'job-id': 'm1', 'sync': 'full',
                                 'auto-finalize': False,
                                 'auto-dismiss': False,
                                 'on-source-error': 'stop',
                                 'on-target-error': 'enospc'}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'm1'}),
            ('job-complete', {'id': 'm1'}),
            status('m1', 'pending'),
            ('query-jobs', None),
            ('blockdev-del', {'node-name': 'tgt'}),
            ('job-finalize', {'id': 'm1'}),
            status('m1', 'concluded'),
            ('query-jobs', None),
            ('job-dismiss', {'id': 'm1'}),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.compare(os.path.join(d, 'tgt.qcow2'),
                         os.path.join(d, 'ref.raw'))

    def test_errors(self):
        """QEMU 7.2's checks, in its order, with its messages."""
        m = {'device': 'top', 'target': 'tgt', 'sync': 'full',
             'job-id': 'm1'}
        steps = self.blockdev_chain() + [self.target()] + [
            ('blockdev-mirror', dict(m, device='nope')),
            ('blockdev-mirror', dict(m, target='nope')),
            ('blockdev-mirror', dict(m, device='mid')),
            ('blockdev-mirror', dict(m, granularity=256)),
            ('blockdev-mirror', dict(m, granularity=128 * MiB)),
            ('blockdev-mirror', dict(m, granularity=3072)),
            ('blockdev-mirror', dict(m, sync='incremental')),
            ('blockdev-mirror', dict(m, sync='bitmap')),
            ('blockdev-mirror', dict(m, sync='bogus')),
            ('blockdev-mirror', dict(m, **{'buf-size': -1})),
            ('blockdev-mirror', dict(m, target='top')),
            ('blockdev-mirror', dict(m, replaces='nope')),
            ('blockdev-mirror', dict(m, replaces='tgt')),
            ('blockdev-mirror', dict(m, **{'job-id': ''})),
            ('blockdev-mirror', dict(m, **{'job-id': '1x'})),
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'sync': 'full'}),
            ('blockdev-mirror', dict(m, speed=-1)),
            ('blockdev-mirror', dict(m, **{'copy-mode': 'bogus'})),
            ('blockdev-mirror', dict(m, speed=1, replaces='top',
                                     **{'job-id': 'live'})),
            ('blockdev-mirror', dict(m, **{'job-id': 'live'})),
            ('blockdev-mirror', dict(m, **{'job-id': 'm2'})),
            ('blockdev-mirror', dict(m, **{'job-id': 'm2',
                                           'target': 'base'})),
            ('blockdev-del', {'node-name': 'tgt'}),
            ('blockdev-del', {'node-name': 'top'}),
            ('job-complete', {'id': 'live'}),
            ('job-cancel', {'id': 'live'}),
            done('live'),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup, drop=RACY)
        replies = ours[0][4:]
        self.assertTrue(all('error' in r for r in replies[:18]), replies)
        self.assertEqual(replies[18], {'return': {}})
        self.assertTrue(all('error' in r for r in replies[19:25]), replies)

    def test_default_granularity(self):
        """Without granularity the job's bitmap takes the target's
        cluster size (4 KiB here), in blockd as in qsd (where it sits on
        the mirror's filter node)."""
        def setup(d):
            self.setup(d)
            self.run_command(['qemu-img', 'create', '-q', '-f', 'qcow2',
                              '-o', 'cluster_size=4096',
                              os.path.join(d, 'tgt.qcow2'), str(cj.SIZE)])

        steps = self.blockdev_chain() + [self.target()] + [
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'job-id': 'm1', 'sync': 'full',
                                 'speed': 1}),
            ('query-named-block-nodes', {'flat': True}),
            ('job-cancel', {'id': 'm1'}),
            done('m1'),
        ]
        for qsd in (False, True):
            replies, _, _ = self.run_session(qsd, steps, setup)
            grans = [b['granularity'] for n in replies[5]['return']
                     for b in n.get('dirty-bitmaps', [])]
            self.assertEqual(grans, [4096], replies[5])

    def test_shorter_target(self):
        """A target shorter than the source: the job fails at once, as in
        qsd (nothing is resized)."""
        def setup(d):
            self.setup(d)
            self.run_command(['qemu-img', 'create', '-q', '-f', 'qcow2',
                              os.path.join(d, 'tgt.qcow2'), str(4 * MiB)])

        steps = self.blockdev_chain() + [self.target()] + [
            ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                 'job-id': 'm1', 'sync': 'full'}),
            done('m1'),
            ('query-jobs', None),
        ]
        ours, _ = self.side_by_side(steps, setup)
        self.assertIn({'event': 'BLOCK_JOB_COMPLETED', 'data': {
            'device': 'm1', 'len': 0, 'offset': 0, 'speed': 0,
            'type': 'mirror',
            'error': 'Source and target image have different sizes'}},
            ours[1])

    def test_refusals(self):
        """blockd only: what it does not do is refused, never ignored."""
        m = {'device': 'top', 'target': 'tgt', 'sync': 'full',
             'job-id': 'm1'}
        steps = self.blockdev_chain() + [self.target()] + [
            ('blockdev-mirror', dict(m, **{'copy-mode': 'write-blocking'})),
            ('blockdev-mirror', dict(m, **{'filter-node-name': 'f'})),
            ('query-jobs', None),
        ]
        replies, _, d = self.run_session(False, steps, self.setup)
        self.assertEqual(replies[-3]['error']['desc'],
                         "Parameter 'copy-mode' value 'write-blocking' is "
                         "not supported: blockd mirrors in the background "
                         "only")
        self.assertEqual(replies[-2]['error']['desc'],
                         "Parameter 'filter-node-name' is not supported: "
                         "blockd mirrors without a filter node")
        self.assertEqual(replies[-1], {'return': []})

    def test_nbd_writes_during_mirror(self):
        """An NBD client writes at random into the source while it is
        mirrored (and while READY); at the pivot the target equals the
        source with every write, in blockd as in qsd."""
        self.nbd_writes('full', None, self.setup)

    def test_nbd_writes_during_sync_top(self):
        """The same with sync top into a target backed by mid: the
        client's writes reach the target whether or not the top had
        defined the range before."""
        self.nbd_writes('top', 'mid', self.setup_on_mid)

    def nbd_writes(self, sync, backing, setup):
        state = {}

        def writer(d, qmp):
            with open(os.path.join(d, 'ref.raw'), 'rb') as f:
                ref = bytearray(f.read())
            state[d] = cj.nbd_random_writes(self, d, qmp, ref, 'm1',
                                            seed=3,
                                            statuses=('running', 'ready'),
                                            limit=400)
            with open(os.path.join(d, 'ref.raw'), 'wb') as f:
                f.write(ref)

        steps = self.blockdev_chain() + [self.target(backing)] + \
            self.export_steps(True) + [
                ('blockdev-mirror', {'device': 'top', 'target': 'tgt',
                                     'job-id': 'm1', 'sync': sync,
                                     'speed': 8 * MiB}),
                writer,
                ('WAIT', 'BLOCK_JOB_READY', {'device': 'm1'}),
                ('block-job-complete', {'device': 'm1'}),
                done('m1'),
                ('query-block-exports', None),
                ('block-export-del', {'id': 'e'}),
            ]
        for qsd in (False, True):
            replies, events, d = self.run_session(qsd, steps, setup)
            self.assertTrue(all('return' in r for r in replies), replies)
            self.assertGreater(state[d], 0)
            self.assertEqual(replies[-2]['return'][0]['node-name'], 'tgt')
            self.compare(os.path.join(d, 'tgt.qcow2'),
                         os.path.join(d, 'ref.raw'))
            self.check_images(d, 'tgt.qcow2')


if __name__ == '__main__':
    h.main()
