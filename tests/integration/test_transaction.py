"""transaction side by side with qemu-storage-daemon 7.2: actions that
all succeed, an action that fails (every action before it undone: the
bitmaps and the graph as they were), abort, completion-mode grouped;
replies, events and the state after (query-named-block-nodes, bitmap
hashes) compared.  blockd refuses the backup actions with a message (no
backup job yet): a blockd-only test checks that.
"""
import os

import blockd_harness as h
import chain_jobs as cj
import test_blockdev_snapshot as tbs

CHAIN2 = tbs.CHAIN2


def bm(node, name):
    return {'node': node, 'name': name}


def act(t, **data):
    return {'type': t, 'data': data}


class Transaction(cj.ChainCase):

    setup = tbs.Snapshots.setup
    overlay = tbs.Snapshots.overlay

    def state(self):
        return [('query-named-block-nodes', {'flat': True}),
                ('x-debug-block-dirty-bitmap-sha256', bm('mid', 'b0')),
                ('x-debug-block-dirty-bitmap-sha256', bm('mid', 'b1')),
                ('x-debug-block-dirty-bitmap-sha256', bm('mid', 'b2'))]

    def write(self, d, qmp):
        r = self.run_command(['qemu-io', '-f', 'raw', '-c',
                              'write -q -P 0x55 2M 192k',
                              'nbd+unix:///e?socket=' +
                              os.path.join(d, 'nbd.sock')])
        self.assertEqual(r.returncode, 0, r.stderr)

    def prologue(self):
        return self.blockdev_chain(CHAIN2) + [
            ('block-dirty-bitmap-add', bm('mid', 'b0')),
            ('block-dirty-bitmap-add', {'node': 'mid', 'name': 'b2',
                                        'disabled': True}),
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'DIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'e', 'name': 'e',
                                  'node-name': 'mid', 'writable': True}),
            self.write,
        ]

    def test_failing_action_undoes_all(self):
        """Every kind of action, then one that fails: nothing changed."""
        actions = [
            act('block-dirty-bitmap-add', node='mid', name='b1'),
            act('blockdev-snapshot-internal-sync', device='mid', name='s1'),
            act('block-dirty-bitmap-disable', node='mid', name='b0'),
            act('block-dirty-bitmap-enable', node='mid', name='b2'),
            act('block-dirty-bitmap-merge', node='mid', target='b2',
                bitmaps=['b0']),
            act('block-dirty-bitmap-clear', node='mid', name='b0'),
            act('blockdev-snapshot', node='mid', overlay='ov'),
            act('block-dirty-bitmap-remove', node='mid', name='b2'),
        ]
        # (ov is deleted before the state is compared again: QEMU names
        # a node added with backing null "json:{...}", blockd not yet)
        steps = self.prologue() + self.state() + [
            self.overlay('ov.qcow2'),
            ('transaction', {'actions': actions + [
                act('block-dirty-bitmap-add', node='mid', name='b0')]}),
            ('transaction', {'actions': actions + [act('abort')]}),
            ('transaction', {'actions': actions[:1],
                             'properties': {'completion-mode':
                                            'grouped'}}),
            ('transaction', {'actions': [act('abort')],
                             'properties': {'completion-mode':
                                            'grouped'}}),
            ('transaction', {'actions': []}),
            ('query-block-exports', None),
            ('blockdev-del', {'node-name': 'ov'}),
        ] + self.state() + [self.write] + self.state() + [
            ('block-export-del', {'id': 'e'}),
        ]
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size',))
        for _, _, d in (ours, theirs):
            self.check_image(os.path.join(d, 'mid.qcow2'))

    def test_all_succeed(self):
        actions = [
            act('block-dirty-bitmap-add', node='mid', name='b1'),
            act('block-dirty-bitmap-merge', node='mid', target='b1',
                bitmaps=['b0']),
            act('block-dirty-bitmap-disable', node='mid', name='b0'),
            act('block-dirty-bitmap-clear', node='mid', name='b0'),
            act('block-dirty-bitmap-remove', node='mid', name='b2'),
            act('blockdev-snapshot-internal-sync', device='mid', name='s1'),
            act('blockdev-snapshot-sync', **{
                'node-name': 'mid', 'snapshot-file': 'DIR/ov2.qcow2',
                'snapshot-node-name': 'ov2', 'mode': 'existing'}),
        ]
        steps = self.prologue() + [
            ('transaction', {'actions': actions}),
            ('query-block-exports', None),
        ] + self.state() + [self.write] + self.state() + [
            ('block-export-del', {'id': 'e'}),
        ]
        # (an internal snapshot's times are the instant it was taken)
        ours, theirs = self.side_by_side(steps, self.setup,
                                         drop=('actual-size', 'date-sec',
                                               'date-nsec', 'vm-clock-sec',
                                               'vm-clock-nsec'))
        for _, _, d in (ours, theirs):
            for img in ('mid.qcow2', 'ov2.qcow2'):
                self.check_image(os.path.join(d, img))
            # the same pattern written before and after the snapshot
            self.compare(os.path.join(d, 'ov2.qcow2'),
                         os.path.join(d, 'mid.qcow2'), fb='qcow2')

    def test_refused_actions(self):
        """blockd only: the backup actions fail the transaction with a
        message; the actions before are undone."""
        steps = self.prologue() + [
            ('transaction', {'actions': [
                act('block-dirty-bitmap-add', node='mid', name='b1'),
                act('blockdev-backup', device='mid', target='base',
                    sync='full')]}),
            ('transaction', {'actions': [
                act('drive-backup', device='mid', target='DIR/x.qcow2',
                    sync='full')]}),
        ] + self.state()
        replies, events, d = self.run_session(False, steps, self.setup)
        msgs = [r.get('error', {}).get('desc') for r in replies[-6:-4]]
        self.assertEqual(msgs, [
            "Transaction action 'blockdev-backup' is not supported by "
            "blockd yet (no backup job)",
            "Transaction action 'drive-backup' is not supported by "
            "blockd yet (no backup job)"])
        self.assertEqual(replies[-2]['error']['desc'],
                         "Dirty bitmap 'b1' not found")


if __name__ == '__main__':
    h.main()
