#!/usr/bin/python3
"""The copy-on-read filter: the same blockdev-add sequences as
qemu-storage-daemon 7.2 give the same replies and errors; reads through
the filter, by a real NBD client, copy what the backing chain supplies
into the top image (qemu-img map of the image afterwards is the same as
after qsd ran the same sequence), and with 'bottom' only what the layers
down to the bottom node define."""
import json
import os
import re
import subprocess

import nbd

import blockd_harness as h

KIB = 1024
MIB = 1024 * KIB


class CopyOnReadTest(h.TestCase):

    def daemons(self):
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        return [('blockd', lambda args: self.start_daemon(plugins + args)),
                ('qsd', self.start_qsd)]

    def qemu_img(self, *args):
        res = subprocess.run(['qemu-img'] + list(args), capture_output=True,
                             text=True, check=True)
        return res.stdout

    def make_chain(self, workdir):
        """base <- mid <- top (qcow2, 1 MiB): base defines 0..64k
        (0x11), mid 64k..128k (0x22), top nothing."""
        base = os.path.join(workdir, 'base.qcow2')
        mid = os.path.join(workdir, 'mid.qcow2')
        top = os.path.join(workdir, 'top.qcow2')
        self.qemu_img('create', '-q', '-f', 'qcow2', base, str(MIB))
        self.qemu_img('create', '-q', '-f', 'qcow2', '-b', base, '-F',
                      'qcow2', mid)
        self.qemu_img('create', '-q', '-f', 'qcow2', '-b', mid, '-F',
                      'qcow2', top)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x11 0 64k', base], check=True,
                       capture_output=True)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x22 64k 64k', mid], check=True,
                       capture_output=True)
        return top

    def run_both(self, steps, reads=()):
        """On each daemon: make the chain in a private directory, run the
        QMP @steps, then (when @reads) read each (offset, length) through
        the NBD export 'exp' and stop the daemon.  Returns, per daemon,
        (replies, data read, qemu-img map of top.qcow2)."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            self.make_chain(workdir)
            sock = os.path.join(workdir, 'qmp.sock')
            d = start(['--chardev', f'socket,id=mon,path={sock},server=on,'
                       'wait=off', '--monitor', 'chardev=mon'])
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            replies = []
            for cmd, arguments in steps:
                arguments = json.loads(json.dumps(arguments).replace(
                    'WORKDIR', workdir))
                replies.append(qmp.execute(cmd, arguments))
            data = []
            if reads:
                h = nbd.NBD()
                h.set_export_name('cor')
                h.connect_unix(os.path.join(workdir, 'nbd.sock'))
                for off, length in reads:
                    data.append(h.pread(length, off))
                h.shutdown()
            qmp.execute('quit')
            d.stop()
            mapping = json.loads(self.qemu_img(
                'map', '--output=json', '-f', 'qcow2',
                os.path.join(workdir, 'top.qcow2')))
            for m in mapping:
                m.pop('offset', None)       # host offsets may differ
            # implicit node names are numbered differently
            replies = re.sub(r'#block[0-9]+', '#blockN',
                             json.dumps(replies).replace(workdir, 'WORKDIR'))
            results[name] = (json.loads(replies), data, mapping)
        return results['blockd'], results['qsd']

    def chain_steps(self, cor_options):
        return [
            ('blockdev-add', {'driver': 'qcow2', 'node-name': 'base',
                              'file': {'driver': 'file',
                                       'filename': 'WORKDIR/base.qcow2'}}),
            ('blockdev-add', {'driver': 'qcow2', 'node-name': 'mid',
                              'backing': 'base',
                              'file': {'driver': 'file',
                                       'filename': 'WORKDIR/mid.qcow2'}}),
            ('blockdev-add', {'driver': 'qcow2', 'node-name': 'top',
                              'backing': 'mid',
                              'file': {'driver': 'file',
                                       'filename': 'WORKDIR/top.qcow2'}}),
            ('blockdev-add', dict({'driver': 'copy-on-read',
                                   'node-name': 'cor', 'file': 'top'},
                                  **cor_options)),
        ]

    def export_steps(self):
        return [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'WORKDIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'exp',
                                  'node-name': 'cor', 'writable': True}),
        ]

    def assert_same(self, steps, reads=()):
        ours, theirs = self.run_both(steps, reads)
        for step, a, b in zip(steps, ours[0], theirs[0]):
            self.assertEqual(a, b, f'{step}')
        self.assertEqual(ours[1], theirs[1])
        self.assertEqual(ours[2], theirs[2])
        return ours

    def test_errors(self):
        """A missing bottom node, a filter as bottom, an unknown option,
        a missing file: QEMU's errors."""
        steps = self.chain_steps({'bottom': 'nosuch'}) + [
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor1',
                              'file': 'top'}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor2',
                              'file': 'top', 'bottom': 'cor1'}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor3',
                              'file': 'top', 'bottom': 7}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor4',
                              'file': 'top', 'nosuch': 1}),
            ('blockdev-add', {'driver': 'copy-on-read',
                              'node-name': 'cor5'}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor6',
                              'file': 'nosuch'}),
            ('blockdev-del', {'node-name': 'cor1'}),
            ('blockdev-del', {'node-name': 'top'}),
        ]
        ours = self.assert_same(steps)
        self.assertIn('error', ours[0][3])
        self.assertIn('error', ours[0][5])

    def test_reads_populate_top(self):
        """Reads through the filter copy the backing chain's data into
        the top image; the data read is the chain's."""
        steps = self.chain_steps({}) + self.export_steps()
        ours = self.assert_same(steps, reads=[(0, 32 * KIB),
                                              (48 * KIB, 64 * KIB),
                                              (512 * KIB, 4 * KIB)])
        self.assertEqual(ours[1][0], b'\x11' * 32 * KIB)
        self.assertEqual(ours[1][1], b'\x11' * 16 * KIB + b'\x22' * 48 * KIB)
        # the top image now defines what was read
        top_data = [m for m in ours[2] if m['depth'] == 0 and m['data']]
        self.assertEqual(top_data[0]['start'], 0)
        self.assertGreaterEqual(top_data[0]['length'], 112 * KIB)

    def test_bottom_limits_copy(self):
        """With bottom=mid only what mid defines is copied into top;
        base's data is read but stays in base."""
        steps = self.chain_steps({'bottom': 'mid'}) + self.export_steps()
        ours = self.assert_same(steps, reads=[(0, 128 * KIB)])
        self.assertEqual(ours[1][0], b'\x11' * 64 * KIB + b'\x22' * 64 * KIB)
        in_top = [(m['start'], m['length']) for m in ours[2]
                  if m['depth'] == 0 and m['data']]
        self.assertEqual(in_top, [(64 * KIB, 64 * KIB)])

    def test_bottom_is_top_itself(self):
        """bottom=top: QEMU's walk starts below the file node and never
        meets the bottom, so (as in qsd) the whole chain is copied."""
        steps = self.chain_steps({'bottom': 'top'}) + self.export_steps()
        ours = self.assert_same(steps, reads=[(0, 128 * KIB)])
        self.assertEqual([(m['start'], m['length']) for m in ours[2]
                          if m['depth'] == 0 and m['data']],
                         [(0, 128 * KIB)])

    def test_read_only(self):
        """A copy-on-read node over a read-only top image is refused, as
        by qsd: its child permission asks for write-unchanged, even when
        the filter itself is read-only."""
        steps = self.chain_steps({})[:2] + [
            ('blockdev-add', {'driver': 'qcow2', 'node-name': 'top',
                              'backing': 'mid', 'read-only': True,
                              'file': {'driver': 'file',
                                       'filename': 'WORKDIR/top.qcow2'}}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor',
                              'file': 'top'}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'cor2',
                              'file': 'top', 'read-only': True}),
        ]
        ours = self.assert_same(steps)
        refused = {'error': {'class': 'GenericError',
                             'desc': 'Block node is read-only'}}
        self.assertEqual(ours[0][3:], [refused, refused])

    def test_writes_pass_through(self):
        """Writes, zeroes and a flush through the filter reach the top
        image; reading them back gives what was written."""
        steps = self.chain_steps({}) + self.export_steps()
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            self.make_chain(workdir)
            sock = os.path.join(workdir, 'qmp.sock')
            d = start(['--chardev', f'socket,id=mon,path={sock},server=on,'
                       'wait=off', '--monitor', 'chardev=mon'])
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            for cmd, arguments in steps:
                arguments = json.loads(json.dumps(arguments).replace(
                    'WORKDIR', workdir))
                self.assertIn('return', qmp.execute(cmd, arguments))
            c = nbd.NBD()
            c.set_export_name('cor')
            c.connect_unix(os.path.join(workdir, 'nbd.sock'))
            c.pwrite(b'\x33' * 4096, 8192)
            c.zero(4096, 0)
            c.flush()
            data = c.pread(16384, 0)
            c.shutdown()
            qmp.execute('quit')
            d.stop()
            mapping = json.loads(self.qemu_img(
                'map', '--output=json', '-f', 'qcow2',
                os.path.join(workdir, 'top.qcow2')))
            for m in mapping:
                m.pop('offset', None)
            results[name] = (data, mapping)
        self.assertEqual(results['blockd'], results['qsd'])
        self.assertEqual(results['blockd'][0],
                         b'\0' * 4096 + b'\x11' * 4096 + b'\x33' * 4096 +
                         b'\x11' * 4096)

    def test_query_over_file(self):
        """query-named-block-nodes and query-block of copy-on-read nodes
        (with and without bottom) over a plain qcow2 image: as qsd's."""
        steps = self.chain_steps({})[:1] + [
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'c1',
                              'file': 'base'}),
            ('blockdev-add', {'driver': 'copy-on-read', 'node-name': 'c2',
                              'file': 'base', 'bottom': 'base'}),
            ('query-named-block-nodes', {'flat': True}),
            ('query-named-block-nodes', {}),
            ('blockdev-del', {'node-name': 'c2'}),
            ('blockdev-del', {'node-name': 'c1'}),
            ('blockdev-del', {'node-name': 'base'}),
        ]
        self.assert_same(steps)

if __name__ == '__main__':
    h.main()
