"""block-commit of an intermediate layer side by side with
qemu-storage-daemon 7.2: the same QMP sequence on a chain made with
qemu-img (base <- mid <- top) against both, comparing every reply and the
whole event stream (timestamps aside), then the images each left: what
the top shows and what the base now holds (qemu-img compare against
conversions made before the job), qemu-img check, the backing file the
top records.

The active layer too: READY, then the pivot on block-job-complete (an
NBD export of the top serves the base after it), soft and forced cancels.
An NBD client writing at random into the exported top while the active
layer is committed: the base ends equal to the top with the writes, in
blockd as in qsd.
"""
import os

import blockd_harness as h
import chain_jobs as cj


def done(job_id):
    return ('WAIT', 'JOB_STATUS_CHANGE', {'id': job_id, 'status': 'null'})


def status(job_id, st):
    return ('WAIT', 'JOB_STATUS_CHANGE', {'id': job_id, 'status': st})


class BlockCommit(cj.ChainCase):

    def setup(self, d, chain=cj.CHAIN):
        self.make_chain(d, chain)
        self.reference(d, chain[2][0], 'ref.raw')
        self.reference(d, chain[1][0], 'mid-ref.raw')
        self.reference(d, chain[0][0], 'base-ref.raw')

    def check_committed(self, d, base='base.qcow2', top='top.qcow2',
                        backing=None):
        """The top shows what it showed, the base holds what mid showed,
        every image is consistent, the top records `backing`."""
        self.compare(os.path.join(d, top), os.path.join(d, 'ref.raw'))
        self.compare(os.path.join(d, base), os.path.join(d, 'mid-ref.raw'))
        for img in (base, top, 'mid.qcow2'):
            self.check_image(os.path.join(d, img))
        info = self.info(os.path.join(d, top))
        self.assertEqual(info[0]['backing-filename'],
                         backing or os.path.join(d, base))
        self.assertEqual(info[1]['filename'], os.path.join(d, base))

    def check_untouched(self, d):
        self.compare(os.path.join(d, 'top.qcow2'), os.path.join(d, 'ref.raw'))
        self.compare(os.path.join(d, 'mid.qcow2'),
                     os.path.join(d, 'mid-ref.raw'))
        info = self.info(os.path.join(d, 'top.qcow2'))
        self.assertEqual(info[0]['backing-filename'],
                         os.path.join(d, 'mid.qcow2'))
        for img in ('base.qcow2', 'top.qcow2', 'mid.qcow2'):
            self.check_image(os.path.join(d, img))

    def commit_both(self, args, backing=None, extra=()):
        steps = self.blockdev_chain() + [
            ('block-commit', dict({'device': 'top', 'job-id': 'c1'},
                                  **args)),
            done('c1'),
            ('query-jobs', None),
        ] + list(extra)
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.check_committed(d, backing=backing)
        return ours, theirs

    def test_top_node_base_node(self):
        self.commit_both({'top-node': 'mid', 'base-node': 'base'})

    def test_default_base(self):
        """Without a base: the bottom of the chain."""
        self.commit_both({'top-node': 'mid'})

    def test_by_file_names(self):
        self.commit_both({'top': 'DIR/mid.qcow2', 'base': 'DIR/base.qcow2'})

    def test_backing_file_string(self):
        self.commit_both({'top-node': 'mid', 'backing-file': 'base.qcow2'},
                         backing='base.qcow2')

    def test_errors(self):
        bad = [
            {'device': 'nosuch'},
            {'device': 'top', 'top-node': 'mid', 'top': 'x'},
            {'device': 'top', 'top-node': 'nosuch'},
            {'device': 'mid', 'top-node': 'top'},
            {'device': 'top', 'top': 'DIR/nosuch.qcow2'},
            {'device': 'top', 'top-node': 'mid', 'base-node': 'base',
             'base': 'x'},
            {'device': 'top', 'top-node': 'mid', 'base-node': 'nosuch'},
            {'device': 'top', 'top-node': 'mid', 'base-node': 'top'},
            {'device': 'top', 'top-node': 'mid', 'base': 'DIR/nosuch'},
            {'device': 'top', 'top-node': 'base'},
            {'device': 'base'},
            {'device': 'top', 'backing-file': 'x'},
            {'device': 'top', 'top-node': 'mid', 'job-id': '1bad'},
            {'device': 'top', 'top-node': 'mid'},
            {'device': 'top', 'top-node': 'mid', 'job-id': 'c1',
             'speed': -1},
        ]
        steps = self.blockdev_chain() + [('block-commit', a) for a in bad]
        steps += [('query-jobs', None), ('query-block-jobs', None)]
        self.side_by_side(steps, self.setup)

    def test_manual_finalize_and_dismiss(self):
        steps = self.blockdev_chain() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1',
                              'top-node': 'mid', 'auto-finalize': False,
                              'auto-dismiss': False}),
            status('c1', 'pending'),
            ('query-block-jobs', None),
            ('block-job-finalize', {'id': 'c1'}),
            status('c1', 'concluded'),
            ('query-jobs', None),
            ('block-job-dismiss', {'id': 'c1'}),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.check_committed(d)

    def test_cancel_pending(self):
        """Cancelled in PENDING: the base holds the data already (as in
        QEMU), but the chain and the top's backing file are unchanged."""
        steps = self.blockdev_chain() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1',
                              'top-node': 'mid', 'auto-finalize': False}),
            status('c1', 'pending'),
            ('job-cancel', {'id': 'c1'}),
            done('c1'),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.check_untouched(d)

    def test_pause_resume_cancel(self):
        steps = self.blockdev_chain() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1',
                              'top-node': 'mid', 'speed': 1}),
            ('block-job-pause', {'device': 'c1'}),
            status('c1', 'paused'),
            ('query-block-jobs', None),
            ('blockdev-del', {'node-name': 'mid'}),
            ('block-commit', {'device': 'top', 'job-id': 'c2',
                              'top-node': 'mid'}),
            ('block-stream', {'device': 'top', 'job-id': 'c2'}),
            ('block-job-resume', {'device': 'c1'}),
            status('c1', 'running'),
            ('block-job-set-speed', {'device': 'c1', 'speed': 2}),
            ('block-job-complete', {'device': 'c1'}),
            ('block-job-cancel', {'device': 'c1'}),
            done('c1'),
            ('block-commit', {'device': 'top', 'job-id': 'c3',
                              'top-node': 'mid', 'speed': 1}),
            ('job-pause', {'id': 'c3'}),
            status('c3', 'paused'),
            ('job-cancel', {'id': 'c3'}),
            done('c3'),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('offset', 'busy',
                                               'current-progress'))
        for _, _, d in (ours, theirs):
            self.check_untouched(d)

    def test_nbd_writes_during_commit(self):
        """An NBD client writes at random into the top (the overlay) while
        mid is committed into the base underneath: the top ends equal to
        the chain's content with the client's writes, the base to mid's."""
        state = {}

        def writer(d, qmp):
            with open(os.path.join(d, 'ref.raw'), 'rb') as f:
                ref = bytearray(f.read())
            state['during'] = cj.nbd_random_writes(self, d, qmp, ref, 'c1',
                                                   seed=2)
            with open(os.path.join(d, 'ref.raw'), 'wb') as f:
                f.write(ref)

        steps = self.blockdev_chain() + [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e', 'name': 'e',
                                  'node-name': 'top', 'writable': True}),
            ('block-commit', {'device': 'top', 'job-id': 'c1',
                              'top-node': 'mid', 'speed': 4 * cj.MiB}),
            writer,
            done('c1'),
            ('block-export-del', {'id': 'e'}),
        ]
        replies, events, d = self.run_session(False, steps, self.setup)
        self.assertTrue(all('return' in r for r in replies), replies)
        self.assertGreater(state['during'], 0)
        self.check_committed(d)

    def test_on_error_stop_enospc(self):
        """The base on a tmpfs too small for what is committed: with
        on-error=stop the job reports a write error, pauses (io-status
        nospace) and finishes after the tmpfs grows and job-resume."""
        chain = [c if c[0] != 'base.qcow2' else ('small/base.qcow2',) + c[1:]
                 for c in cj.CHAIN]
        chain = [c if c[1] != 'base.qcow2' else c[:1] + ('small/base.qcow2',)
                 + c[2:] for c in chain]

        def setup(d):
            small = os.path.join(d, 'small')
            os.mkdir(small)
            r = self.run_command(['mount', '-t', 'tmpfs', '-o', 'size=5M',
                                  'tmpfs', small])
            if r.returncode:
                self.skipTest('cannot mount a tmpfs: ' + r.stderr)
            self.addCleanup(self.run_command, ['umount', '-l', small])
            self.setup(d, chain)

        def grow(d, qmp):
            r = self.run_command(['mount', '-o', 'remount,size=64M',
                                  os.path.join(d, 'small')])
            self.assertEqual(r.returncode, 0, r.stderr)

        steps = self.blockdev_chain(chain) + [
            ('block-commit', {'device': 'top', 'job-id': 'c1',
                              'top-node': 'mid', 'on-error': 'stop'}),
            ('WAIT', 'BLOCK_JOB_ERROR', {'device': 'c1'}),
            status('c1', 'paused'),
            ('query-block-jobs', None),
            grow,
            ('job-resume', {'id': 'c1'}),
            done('c1'),
        ]
        ours, theirs = self.side_by_side(steps, setup,
                                         drop=('offset', 'busy',
                                               'current-progress'))
        for _, _, d in (ours, theirs):
            self.check_committed(d, base='small/base.qcow2')
        self.assertEqual(ours[0][len(chain) + 1]['return'][0]['io-status'],
                         'nospace')

    def export_steps(self, writable=False):
        return [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e', 'name': 'e',
                                  'node-name': 'top',
                                  'writable': writable}),
        ]

    def test_active_commit_pivot(self):
        """The active layer into the base: READY once in sync, then
        block-job-complete puts the base in the top's place (the export
        now serves the base), and the base holds what the top showed."""
        steps = self.blockdev_chain() + self.export_steps() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1'}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'c1'}),
            ('query-block-jobs', None),
            ('block-job-complete', {'device': 'c1'}),
            done('c1'),
            ('query-block-exports', None),
            ('blockdev-del', {'node-name': 'base'}),
            ('block-export-del', {'id': 'e'}),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for replies, _, d in (ours, theirs):
            self.assertEqual(replies[-3]['return'][0]['node-name'], 'base')
            self.compare(os.path.join(d, 'base.qcow2'),
                         os.path.join(d, 'ref.raw'))
            for img in ('base.qcow2', 'mid.qcow2', 'top.qcow2'):
                self.check_image(os.path.join(d, img))

    def test_active_commit_manual_finalize(self):
        steps = self.blockdev_chain() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1',
                              'base-node': 'mid', 'auto-finalize': False,
                              'auto-dismiss': False}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'c1'}),
            ('job-complete', {'id': 'c1'}),
            status('c1', 'pending'),
            ('query-jobs', None),
            ('job-finalize', {'id': 'c1'}),
            status('c1', 'concluded'),
            ('job-dismiss', {'id': 'c1'}),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.compare(os.path.join(d, 'mid.qcow2'),
                         os.path.join(d, 'ref.raw'))
            self.check_image(os.path.join(d, 'mid.qcow2'))

    def test_active_commit_cancel(self):
        """In READY, block-job-cancel ends the job as completed without
        the pivot (the export stays on the top); job-cancel (forced) ends
        it cancelled; before READY every cancel is forced."""
        steps = self.blockdev_chain() + self.export_steps() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1'}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'c1'}),
            ('block-job-cancel', {'device': 'c1'}),
            done('c1'),
            ('query-block-exports', None),
            ('block-commit', {'device': 'top', 'job-id': 'c2'}),
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'c2'}),
            ('job-pause', {'id': 'c2'}),
            status('c2', 'standby'),
            ('query-block-jobs', None),
            ('job-resume', {'id': 'c2'}),
            status('c2', 'ready'),
            ('job-cancel', {'id': 'c2'}),
            done('c2'),
            ('block-commit', {'device': 'top', 'job-id': 'c3',
                              'speed': 1}),
            ('block-job-cancel', {'device': 'c3'}),
            done('c3'),
            ('query-block-exports', None),
            ('block-export-del', {'id': 'e'}),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('offset', 'len',
                                               'current-progress',
                                               'total-progress'))
        for replies, _, d in (ours, theirs):
            self.assertEqual(replies[-2]['return'][0]['node-name'], 'top')
            # the top shows what it did (the base below got its data)
            self.compare(os.path.join(d, 'top.qcow2'),
                         os.path.join(d, 'ref.raw'))
            for img in ('base.qcow2', 'mid.qcow2', 'top.qcow2'):
                self.check_image(os.path.join(d, img))

    def active_commit_with_writer(self, qsd, export_first=False):
        """One daemon: a writable export of the top (added after the job
        started, or before with `export_first`; an export's writes were
        reported to hang blockd's node, and blockd refused the commit of
        a written top), and an NBD client writing at random into it while the
        top is committed into mid (400 writes, while the job runs and
        once READY: bounded by the job, not by time); after job-complete
        mid holds what the top showed with the writes, every image is
        consistent and the export serves mid.  Into mid, not the base:
        qsd refuses the export then, as mid would be an intermediate node
        the job does not share for consistent reads."""
        state = {}

        def writer(d, qmp):
            with open(os.path.join(d, 'ref.raw'), 'rb') as f:
                ref = bytearray(f.read())
            state['during'] = cj.nbd_random_writes(
                self, d, qmp, ref, 'c1', seed=3,
                statuses=('created', 'running', 'ready'), limit=400)
            with open(os.path.join(d, 'ref.raw'), 'wb') as f:
                f.write(ref)

        commit = [('block-commit', {'device': 'top', 'job-id': 'c1',
                                    'base-node': 'mid',
                                    'speed': 4 * cj.MiB})]
        export = self.export_steps(True)
        steps = self.blockdev_chain() + (
            export + commit if export_first else commit + export) + [
            writer,
            ('WAIT', 'BLOCK_JOB_READY', {'device': 'c1'}),
            ('block-job-complete', {'device': 'c1'}),
            done('c1'),
            ('query-block-exports', None),
            ('block-export-del', {'id': 'e'}),
        ]
        replies, events, d = self.run_session(qsd, steps, self.setup)
        self.assertTrue(all('return' in r for r in replies), replies)
        self.assertEqual(state['during'], 400)
        self.assertEqual(replies[-2]['return'][0]['node-name'], 'mid')
        self.assertEqual([e['data']['status'] for e in events
                          if e['event'] == 'JOB_STATUS_CHANGE'],
                         ['created', 'running', 'ready', 'waiting',
                          'pending', 'concluded', 'null'])
        self.compare(os.path.join(d, 'mid.qcow2'),
                     os.path.join(d, 'ref.raw'))
        for img in ('base.qcow2', 'mid.qcow2', 'top.qcow2'):
            self.check_image(os.path.join(d, img))

    def test_active_commit_nbd_writer(self):
        """An exported, written top committed, as qsd 7.2 allows."""
        self.active_commit_with_writer(False)

    def test_active_commit_nbd_writer_qsd(self):
        self.active_commit_with_writer(True)

    def test_active_commit_nbd_writer_export_first(self):
        """The export there before the job (refused by blockd until now)."""
        self.active_commit_with_writer(False, export_first=True)

    def test_active_commit_nbd_writer_export_first_qsd(self):
        self.active_commit_with_writer(True, export_first=True)

if __name__ == '__main__':
    h.main()
