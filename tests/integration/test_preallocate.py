#!/usr/bin/python3
"""The preallocate filter: the same blockdev-add sequences as
qemu-storage-daemon 7.2 give the same replies and errors; writes through
a qcow2 image on a preallocate node over NBD grow its file in
prealloc-size steps aligned to prealloc-align, and at close the file is
truncated back to its data: the file sizes seen while running and after
the daemon quit are the same as with qsd."""
import json
import os
import subprocess

import nbd

import blockd_harness as h

KIB = 1024
MIB = 1024 * KIB


class PreallocateTest(h.TestCase):

    def daemons(self):
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        return [('blockd', lambda args: self.start_daemon(plugins + args)),
                ('qsd', self.start_qsd)]

    def run_both(self, steps, writes=()):
        """On each daemon, with an empty 64 MiB qcow2 image at
        WORKDIR/img.qcow2: run the QMP @steps, then (when @writes) write
        each (offset, length) through the NBD export 'fmt', noting the
        image file's size after each, then quit.  Returns per daemon
        (replies, sizes while running, size after quit)."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            img = os.path.join(workdir, 'img.qcow2')
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', img,
                            str(64 * MIB)], check=True)
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
            sizes = []
            if writes:
                c = nbd.NBD()
                c.set_export_name('fmt')
                c.connect_unix(os.path.join(workdir, 'nbd.sock'))
                for off, length in writes:
                    c.pwrite(b'\x5a' * length, off)
                    c.flush()
                    sizes.append(os.path.getsize(img))
                data = [c.pread(length, off) for off, length in writes]
                c.shutdown()
                self.assertEqual(data, [b'\x5a' * n for _, n in writes])
            qmp.execute('quit')
            d.stop()
            results[name] = (json.loads(json.dumps(replies).replace(
                workdir, 'WORKDIR')), sizes, os.path.getsize(img))
        return results['blockd'], results['qsd']

    def steps(self, prealloc_options):
        return [
            ('blockdev-add', {'driver': 'file', 'node-name': 'proto',
                              'filename': 'WORKDIR/img.qcow2'}),
            ('blockdev-add', dict({'driver': 'preallocate',
                                   'node-name': 'pre', 'file': 'proto'},
                                  **prealloc_options)),
            ('blockdev-add', {'driver': 'qcow2', 'node-name': 'fmt',
                              'file': 'pre'}),
        ]

    def export_steps(self):
        return [
            ('nbd-server-start', {'addr': {'type': 'unix', 'data': {
                'path': 'WORKDIR/nbd.sock'}}}),
            ('block-export-add', {'type': 'nbd', 'id': 'exp',
                                  'node-name': 'fmt', 'writable': True}),
        ]

    def assert_same(self, steps, writes=()):
        ours, theirs = self.run_both(steps, writes)
        for step, a, b in zip(steps, ours[0], theirs[0]):
            self.assertEqual(a, b, f'{step}')
        self.assertEqual(ours[1:], theirs[1:])
        return ours

    def test_errors(self):
        """Alignments QEMU refuses, negative sizes, unknown options."""
        steps = self.steps({})[:1] + [
            ('blockdev-add', {'driver': 'preallocate', 'node-name': 'p1',
                              'file': 'proto', 'prealloc-align': 1000}),
            ('blockdev-add', {'driver': 'preallocate', 'node-name': 'p2',
                              'file': 'proto', 'prealloc-size': -1}),
            ('blockdev-add', {'driver': 'preallocate', 'node-name': 'p3',
                              'file': 'proto', 'prealloc-align': 'x'}),
            ('blockdev-add', {'driver': 'preallocate', 'node-name': 'p4',
                              'file': 'proto', 'nosuch': 1}),
            ('blockdev-add', {'driver': 'preallocate', 'node-name': 'p5',
                              'file': 'proto', 'prealloc-align': 1536,
                              'prealloc-size': 0}),
            ('query-named-block-nodes', {'flat': True}),
            ('blockdev-del', {'node-name': 'p5'}),
        ]
        ours = self.assert_same(steps)
        self.assertIn('error', ours[0][1])
        self.assertEqual(ours[0][7], {'return': {}})

    def test_grows_in_steps_and_truncates_back(self):
        """prealloc-size 4 MiB, prealloc-align 1 MiB: the file grows
        ahead of the data in those steps, and is cut back at quit."""
        steps = self.steps({'prealloc-size': 4 * MIB,
                            'prealloc-align': MIB}) + self.export_steps()
        ours = self.assert_same(steps, writes=[(0, 64 * KIB),
                                               (MIB, 64 * KIB),
                                               (8 * MIB, 256 * KIB),
                                               (9 * MIB, 64 * KIB)])
        sizes, final = ours[1], ours[2]
        self.assertGreaterEqual(sizes[-1], final + 3 * MIB)
        self.assertEqual(sizes[-1] % MIB, 0)

    def test_defaults(self):
        """The defaults (128 MiB ahead, 1 MiB alignment)."""
        steps = self.steps({}) + self.export_steps()
        ours = self.assert_same(steps, writes=[(0, 64 * KIB)])
        self.assertGreaterEqual(ours[1][0], 128 * MIB)


    def test_cut_back_when_format_goes(self):
        """blockdev-del of the qcow2 node drops write and resize on the
        filter: the file is cut back to its data there and then, while
        the daemon runs (QEMU's check_perm); a block_resize through the
        filter, and a reopen with new options, as qsd."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            img = os.path.join(workdir, 'img.qcow2')
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', img,
                            str(64 * MIB)], check=True)
            sock = os.path.join(workdir, 'qmp.sock')
            d = start(['--chardev', f'socket,id=mon,path={sock},server=on,'
                       'wait=off', '--monitor', 'chardev=mon'])
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            out = []

            def run(cmd, arguments):
                arguments = json.loads(json.dumps(arguments).replace(
                    'WORKDIR', workdir))
                out.append(qmp.execute(cmd, arguments))
                out.append(os.path.getsize(img))

            for cmd, arguments in (self.steps({'prealloc-size': 2 * MIB})
                                   + self.export_steps()):
                run(cmd, arguments)
            c = nbd.NBD()
            c.set_export_name('fmt')
            c.connect_unix(os.path.join(workdir, 'nbd.sock'))
            c.pwrite(b'\x5a' * 65536, 3 * MIB)
            c.flush()
            out.append(os.path.getsize(img))
            c.shutdown()
            run('block-export-del', {'id': 'exp'})
            run('block_resize', {'node-name': 'fmt', 'size': 128 * MIB})
            # the format goes: the file is cut back now
            run('blockdev-del', {'node-name': 'fmt'})
            run('blockdev-add', {'driver': 'qcow2', 'node-name': 'fmt',
                                 'file': 'pre'})
            run('blockdev-reopen', {'options': [{
                'driver': 'preallocate', 'node-name': 'pre',
                'file': 'proto', 'prealloc-size': 8 * MIB,
                'prealloc-align': 4 * MIB}]})
            run('blockdev-reopen', {'options': [{
                'driver': 'preallocate', 'node-name': 'pre',
                'file': 'proto', 'prealloc-align': 4 * MIB}]})
            run('blockdev-reopen', {'options': [{
                'driver': 'preallocate', 'node-name': 'pre',
                'file': 'proto', 'prealloc-size': 0,
                'prealloc-align': 100}]})
            run('blockdev-del', {'node-name': 'fmt'})
            run('blockdev-del', {'node-name': 'pre'})
            qmp.execute('quit')
            d.stop()
            out.append(os.path.getsize(img))
            results[name] = json.loads(json.dumps(out).replace(
                workdir, 'WORKDIR'))
        self.assertEqual(results['blockd'], results['qsd'])
        sizes = results['blockd']
        # grown ahead by the write, cut back by the blockdev-del of fmt
        self.assertGreaterEqual(sizes[10], 2 * MIB)
        self.assertEqual(sizes[15], {'return': {}})
        self.assertLess(sizes[16], MIB)

if __name__ == '__main__':
    h.main()
