"""block-commit of an intermediate layer side by side with
qemu-storage-daemon 7.2: the same QMP sequence on a chain made with
qemu-img (base <- mid <- top) against both, comparing every reply and the
whole event stream (timestamps aside), then the images each left: what
the top shows and what the base now holds (qemu-img compare against
conversions made before the job), qemu-img check, the backing file the
top records.

Committing the active layer is refused by blockd for now (no mirror
yet): a blockd-only test checks the refusal.
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

    def test_active_commit_refused(self):
        """blockd only: the active layer cannot be committed yet, and
        says so (qsd would start a mirror-like job)."""
        steps = self.blockdev_chain() + [
            ('block-commit', {'device': 'top', 'job-id': 'c1'}),
            ('query-jobs', None),
        ]
        replies, events, d = self.run_session(False, steps, self.setup)
        self.assertEqual(replies[-2], {'error': {
            'class': 'GenericError',
            'desc': "Committing the active layer 'top' is not supported "
                    "yet"}})
        self.assertEqual(replies[-1], {'return': []})
        self.assertEqual(events, [])
        self.check_untouched(d)


if __name__ == '__main__':
    h.main()
