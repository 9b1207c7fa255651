"""block-stream side by side with qemu-storage-daemon 7.2: the same QMP
sequence on a chain made with qemu-img (base <- mid <- top) against both,
comparing every reply and the whole event stream (timestamps aside), then
the image each left: the data with qemu-img compare against what the
chain showed before, qemu-img check, and the backing file recorded.
"""
import os

import blockd_harness as h
import chain_jobs as cj


def done(job_id):
    return ('WAIT', 'JOB_STATUS_CHANGE', {'id': job_id, 'status': 'null'})


def status(job_id, st):
    return ('WAIT', 'JOB_STATUS_CHANGE', {'id': job_id, 'status': st})


class BlockStream(cj.ChainCase):

    def setup(self, d):
        self.make_chain(d)
        self.reference(d, 'top.qcow2', 'ref.raw')

    def check_result(self, d, backing, fmt='qcow2'):
        """top.qcow2 shows the data it showed before, is consistent, and
        records `backing` (a name relative to d, or None)."""
        top = os.path.join(d, 'top.qcow2')
        self.compare(top, os.path.join(d, 'ref.raw'))
        self.check_image(top)
        info = self.info(top)[0]
        if backing is None:
            self.assertNotIn('backing-filename', info)
        else:
            self.assertEqual(info['backing-filename'],
                             os.path.join(d, backing))
            self.assertEqual(self.info(top)[1]['filename'],
                             os.path.join(d, backing))
            self.assertEqual(info['backing-filename-format'], fmt)

    def stream_both(self, stream_args, backing, extra=()):
        steps = self.blockdev_chain() + [
            ('block-stream', dict({'device': 'top', 'job-id': 's1'},
                                  **stream_args)),
            done('s1'),
        ] + list(extra)
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.check_result(d, backing)
        return ours, theirs

    def test_whole_chain(self):
        """Without a base: everything into the top, no backing file left."""
        steps = self.blockdev_chain() + [
            ('block-stream', {'device': 'top', 'job-id': 's1'}),
            done('s1'),
            ('query-named-block-nodes', {'flat': True}),
        ]
        # the graph after: the nodes and what each shows as its backing
        graphs = []
        for qsd in (False, True):
            replies, events, d = self.run_session(qsd, steps, self.setup)
            self.check_result(d, None)
            graphs.append(sorted(
                (n['node-name'].startswith('#'), n['file'],
                 n.get('backing_file'), n['backing_file_depth'])
                for n in replies[-1]['return']))
            del replies[-1]
            graphs.append((replies, events))
        self.assertEqual(graphs[0], graphs[2])
        self.assertEqual(graphs[1], graphs[3])

    def test_base_node(self):
        self.stream_both({'base-node': 'base'}, 'base.qcow2')

    def test_base_by_file_name(self):
        self.stream_both({'base': 'DIR/base.qcow2'}, 'base.qcow2')

    def test_bottom(self):
        self.stream_both({'bottom': 'mid'}, 'base.qcow2')

    def test_backing_file_string(self):
        """backing-file is recorded as given, not validated (and without
        job-id the job would be named after the device's BlockBackend,
        which qemu-storage-daemon does not have: an invalid id)."""
        steps = self.blockdev_chain() + [
            ('block-stream', {'device': 'top', 'base-node': 'base',
                              'backing-file': 'base.qcow2'}),
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'base-node': 'base',
                              'backing-file': 'base.qcow2'}),
            done('s1'),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            top = os.path.join(d, 'top.qcow2')
            self.compare(top, os.path.join(d, 'ref.raw'))
            self.check_image(top)
            info = self.info(top)[0]
            self.assertEqual(info['backing-filename'], 'base.qcow2')

    def test_nothing_to_stream(self):
        """The base is the top's backing already: the job does nothing
        (no progress either) but records the base's name."""
        self.stream_both({'base-node': 'mid'}, 'mid.qcow2')

    def test_errors(self):
        """Each refusal of qmp_block_stream(), in QEMU's order."""
        bad = [
            {'device': 'top', 'base': 'x', 'base-node': 'base'},
            {'device': 'top', 'base': 'x', 'bottom': 'mid'},
            {'device': 'top', 'bottom': 'mid', 'base-node': 'base'},
            {'device': 'nosuch'},
            {'device': 'top', 'base': 'DIR/nosuch.qcow2'},
            {'device': 'top', 'base-node': 'nosuch'},
            {'device': 'top', 'base-node': 'top'},
            {'device': 'mid', 'base-node': 'mid'},
            {'device': 'mid', 'base-node': 'top'},
            {'device': 'top', 'bottom': 'nosuch'},
            {'device': 'mid', 'bottom': 'top'},
            {'device': 'top', 'backing-file': 'x'},
            {'device': 'top', 'job-id': '1bad'},
            {'device': 'top', 'job-id': 's1', 'speed': -1},
            {'device': 'top', 'job-id': 's1', 'on-error': 'nosuch'},
            {'device': 'top', 'job-id': 's1', 'extra': 1},
        ]
        steps = self.blockdev_chain() + [('block-stream', a) for a in bad]
        steps += [('query-jobs', None), ('query-block-jobs', None)]
        self.side_by_side(steps, self.setup)

    def test_filter_as_bottom(self):
        """A filter named as 'bottom' is refused by its kind, whatever
        the filter driver (copy-on-read, preallocate), as in QEMU."""
        chain = self.blockdev_chain()
        # the top image's own file under a preallocate filter
        top = dict(chain[-1][1])
        top['file'] = 'pref'
        steps = chain[:-1] + [
            ('blockdev-add', {'driver': 'file', 'node-name': 'topf',
                              'filename': chain[-1][1]['file']['filename']}),
            ('blockdev-add', {'driver': 'preallocate', 'node-name': 'pref',
                              'file': 'topf'}),
            ('blockdev-add', top),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'corf',
                              'file': 'top'}),
            ('block-stream', {'device': 'top', 'bottom': 'corf'}),
            ('block-stream', {'device': 'top', 'bottom': 'pref'}),
            ('query-jobs', None),
        ]
        self.side_by_side(steps, self.setup)

    def test_manual_finalize_and_dismiss(self):
        """auto-finalize=false waits in PENDING (BLOCK_JOB_PENDING), the
        graph unchanged until block-job-finalize; auto-dismiss=false
        waits in CONCLUDED until block-job-dismiss."""
        steps = self.blockdev_chain() + [
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'base-node': 'base', 'auto-finalize': False,
                              'auto-dismiss': False}),
            status('s1', 'pending'),
            ('query-block-jobs', None),
            ('query-jobs', None),
            ('block-job-dismiss', {'id': 's1'}),
            ('block-job-finalize', {'id': 's1'}),
            status('s1', 'concluded'),
            ('query-block-jobs', None),
            ('query-jobs', None),
            ('block-job-finalize', {'id': 's1'}),
            ('block-job-dismiss', {'id': 's1'}),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.check_result(d, 'base.qcow2')

    def test_cancel_pending(self):
        """A job cancelled in PENDING aborts: the graph and the image's
        backing file stay (the data copied stays too, and is the same)."""
        steps = self.blockdev_chain() + [
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'auto-finalize': False}),
            status('s1', 'pending'),
            ('block-job-cancel', {'device': 's1'}),
            done('s1'),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup)
        for _, _, d in (ours, theirs):
            self.check_result(d, 'mid.qcow2')

    def test_pause_resume_cancel_running(self):
        """A slow job (speed: one chunk, then a long sleep): paused,
        resumed, set-speed, cancelled while running; and a second one
        cancelled while paused.  Offsets depend on timing and are left
        out of the comparison."""
        steps = self.blockdev_chain() + [
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'speed': 1}),
            ('block-job-pause', {'device': 's1'}),
            status('s1', 'paused'),
            ('query-block-jobs', None),
            ('block-job-pause', {'device': 's1'}),
            ('block-job-resume', {'device': 's1'}),
            status('s1', 'running'),
            ('block-job-resume', {'device': 's1'}),
            ('block-job-set-speed', {'device': 's1', 'speed': 2}),
            ('block-job-set-speed', {'device': 's1', 'speed': -1}),
            ('block-job-complete', {'device': 's1'}),
            ('block-job-finalize', {'id': 's1'}),
            ('block-job-dismiss', {'id': 's1'}),
            ('job-cancel', {'id': 's1'}),
            done('s1'),
            ('block-stream', {'device': 'top', 'job-id': 's2',
                              'speed': 1}),
            ('job-pause', {'id': 's2'}),
            status('s2', 'paused'),
            ('job-cancel', {'id': 's2'}),
            done('s2'),
            ('query-jobs', None),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('offset', 'busy',
                                               'current-progress'))
        for _, _, d in (ours, theirs):
            self.check_result(d, 'mid.qcow2')

    def test_node_in_use(self):
        """Nodes under a stream job cannot be deleted; a second stream
        on the same chain is refused."""
        steps = self.blockdev_chain() + [
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'speed': 1}),
            ('blockdev-del', {'node-name': 'mid'}),
            ('blockdev-del', {'node-name': 'top'}),
            ('blockdev-del', {'node-name': 'base'}),
            ('block-stream', {'device': 'top', 'job-id': 's2'}),
            ('block-stream', {'device': 'mid', 'job-id': 's2'}),
            ('query-jobs', None),
            ('block-job-cancel', {'device': 's1'}),
            done('s1'),
            ('blockdev-del', {'node-name': 'top'}),
            ('blockdev-del', {'node-name': 'mid'}),
        ]
        self.side_by_side(steps, self.setup,
                          drop=('offset', 'current-progress'))


    def test_nbd_writes_during_stream(self):
        """An NBD client writes at random into the top while the job
        copies (slowly, with a speed limit) underneath it: the image ends
        equal to the chain's content with the client's writes applied."""
        state = {}

        def writer(d, qmp):
            with open(os.path.join(d, 'ref.raw'), 'rb') as f:
                ref = bytearray(f.read())
            state['during'] = cj.nbd_random_writes(self, d, qmp, ref, 's1',
                                                   seed=1)
            with open(os.path.join(d, 'ref.raw'), 'wb') as f:
                f.write(ref)

        steps = self.blockdev_chain() + [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e',
                                  'node-name': 'top', 'name': 'e',
                                  'writable': True}),
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'base-node': 'base', 'speed': 4 * cj.MiB}),
            writer,
            done('s1'),
            ('block-export-del', {'id': 'e'}),
        ]
        replies, events, d = self.run_session(False, steps, self.setup)
        self.assertTrue(all('return' in r for r in replies), replies)
        self.assertGreater(state['during'], 0)
        self.check_result(d, 'base.qcow2')
        self.assertIn({'event': 'BLOCK_JOB_COMPLETED',
                       'data': {'device': 's1', 'len': cj.SIZE,
                                'offset': cj.SIZE, 'speed': 4 * cj.MiB,
                                'type': 'stream'}}, events)

    def small_top_setup(self, size='1M'):
        def setup(d):
            small = os.path.join(d, 'small')
            os.mkdir(small)
            r = self.run_command(['mount', '-t', 'tmpfs', '-o',
                                  'size=' + size, 'tmpfs', small])
            if r.returncode:
                self.skipTest('cannot mount a tmpfs: ' + r.stderr)
            self.addCleanup(self.run_command, ['umount', '-l', small])
            chain = [c if c[0] != 'top.qcow2' else
                     ('small/top.qcow2',) + c[1:] for c in cj.CHAIN]
            self.make_chain(d, chain)
            self.reference(d, 'small/top.qcow2', 'ref.raw')
        return setup

    def test_on_error_report_and_enospc(self):
        """The top on a full tmpfs: on-error=report fails the job at the
        first error (BLOCK_JOB_ERROR action report, then the job's error);
        on-error=enospc stops it as stop does for ENOSPC, and a forced
        cancel of the stopped job ends it.  The chain stays usable."""
        chain = [c if c[0] != 'top.qcow2' else ('small/top.qcow2',) + c[1:]
                 for c in cj.CHAIN]
        steps = self.blockdev_chain(chain) + [
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'on-error': 'report'}),
            done('s1'),
            ('block-stream', {'device': 'top', 'job-id': 's2',
                              'on-error': 'enospc'}),
            ('WAIT', 'BLOCK_JOB_ERROR', {'device': 's2'}),
            status('s2', 'paused'),
            ('query-block-jobs', None),
            ('job-cancel', {'id': 's2'}),
            done('s2'),
        ]
        ours, theirs = self.side_by_side(steps, self.small_top_setup(),
                                         drop=('offset', 'busy',
                                               'current-progress'))
        for _, _, d in (ours, theirs):
            top = os.path.join(d, 'small', 'top.qcow2')
            self.compare(top, os.path.join(d, 'ref.raw'))
            self.check_image(top)

    def test_on_error_stop_enospc(self):
        """The top on a tmpfs too small for what the job copies: with
        on-error=stop the job reports BLOCK_JOB_ERROR, pauses (io-status
        nospace), and after the tmpfs grows, job-resume finishes it."""
        def setup(d):
            small = os.path.join(d, 'small')
            os.mkdir(small)
            r = self.run_command(['mount', '-t', 'tmpfs', '-o', 'size=1M',
                                  'tmpfs', small])
            if r.returncode:
                self.skipTest('cannot mount a tmpfs: ' + r.stderr)
            self.addCleanup(self.run_command, ['umount', '-l', small])
            chain = [c if c[0] != 'top.qcow2' else
                     ('small/top.qcow2',) + c[1:] for c in cj.CHAIN]
            self.make_chain(d, chain)
            self.reference(d, 'small/top.qcow2', 'ref.raw')

        def grow(d, qmp):
            r = self.run_command(['mount', '-o', 'remount,size=64M',
                                  os.path.join(d, 'small')])
            self.assertEqual(r.returncode, 0, r.stderr)

        chain = [c if c[0] != 'top.qcow2' else ('small/top.qcow2',) + c[1:]
                 for c in cj.CHAIN]
        steps = self.blockdev_chain(chain) + [
            ('block-stream', {'device': 'top', 'job-id': 's1',
                              'on-error': 'stop'}),
            ('WAIT', 'BLOCK_JOB_ERROR', {'device': 's1'}),
            status('s1', 'paused'),
            ('query-block-jobs', None),
            grow,
            ('job-resume', {'id': 's1'}),
            done('s1'),
        ]
        ours, theirs = self.side_by_side(steps, setup,
                                         drop=('offset', 'busy',
                                               'current-progress'))
        for _, _, d in (ours, theirs):
            top = os.path.join(d, 'small', 'top.qcow2')
            self.compare(top, os.path.join(d, 'ref.raw'))
            self.check_image(top)
        self.assertEqual(ours[0][len(chain) + 1]['return'][0]['io-status'],
                         'nospace')


if __name__ == '__main__':
    h.main()
