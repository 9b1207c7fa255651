"""blockdev-add and blockdev-del sequences, and --blockdev on the command
line, run against blockd and qemu-storage-daemon 7.2: the same commands
must give the same replies and the same messages."""

import os

import blockd_harness as h

# null-co and raw-over-null-co nodes: successes, every refusal the two
# commands give, a failed blockdev-add that must leave nothing behind
# (r4 defines a node named like an existing one), deletion order.
SEQUENCE = [
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
    ('blockdev-add', {'driver': 'null-co'}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': '1bad'}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': '#block1'}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n2',
                      'size': 4096, 'latency-ns': 10,
                      'read-zeroes': True}),
    ('blockdev-add', {'driver': 'null-aio', 'node-name': 'a1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r1', 'file': 'n1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r2', 'file': 'nope'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r3',
                      'file': {'driver': 'null-co', 'size': 4096}}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r4',
                      'file': {'driver': 'null-co', 'node-name': 'n1'}}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r4',
                      'file': {'driver': 'null-co', 'node-name': 'r4'}}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r5', 'file': 'n1',
                      'offset': 1024, 'size': 100000}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r6', 'file': 'n1',
                      'offset': 1073741824}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r7', 'file': 'n1',
                      'offset': 1073741825}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r7', 'file': 'n1',
                      'size': 1073741825}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r8', 'file': 'n1',
                      'offset': -1}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r9'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r10',
                      'file': {'driver': 'raw', 'file': 'n2'},
                      'read-only': True, 'force-share': True}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n3',
                      'force-share': True}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n5',
                      'detect-zeroes': 'unmap'}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n6',
                      'detect-zeroes': 'unmap', 'discard': 'unmap',
                      'cache': {'direct': True, 'no-flush': True}}),
    ('blockdev-del', {'node-name': 'n1'}),
    ('blockdev-del', {'node-name': 'nope'}),
    ('blockdev-del', {'node-name': 'r3'}),
    ('blockdev-del', {'node-name': 'r3'}),
    ('blockdev-del', {'node-name': 'r1'}),
    ('blockdev-del', {'node-name': 'n1'}),
    ('blockdev-del', {'node-name': 'r6'}),
    ('blockdev-del', {'node-name': 'n1'}),
    ('blockdev-del', {'node-name': 'n2'}),
    ('blockdev-del', {'node-name': 'r10'}),
    ('blockdev-del', {'node-name': 'n2'}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
]

CLI_CASES = [
    ['--blockdev', 'null-co,node-name=1bad'],
    ['--blockdev', 'null-co'],
    ['--blockdev', 'null-co,node-name=a,size=abc'],
    ['--blockdev', 'raw,node-name=r,file=zz'],
    ['--blockdev', 'null-co,node-name=a', '--blockdev',
     'null-co,node-name=a'],
    ['--blockdev', 'null-co,node-name=a,detect-zeroes=unmap'],
]


class Blockdev(h.TestCase):

    def session(self, binary_is_qsd):
        sock = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = ['--chardev',
                'socket,id=m,path=%s,server=on,wait=off' % sock,
                '--monitor', 'chardev=m']
        d = self.start_qsd(args) if binary_is_qsd else self.start_daemon(args)
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        return [qmp.execute(cmd, args) for cmd, args in SEQUENCE]

    def test_sequence_matches_qsd(self):
        ours = self.session(False)
        theirs = self.session(True)
        for (cmd, args), a, b in zip(SEQUENCE, ours, theirs):
            self.assertEqual(a, b, '%s %s' % (cmd, args))

    def test_cli_good(self):
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon(
            ['--blockdev', 'null-co,node-name=n0,size=1048576',
             '--blockdev', 'driver=raw,node-name=r0,file=n0,offset=512',
             '--blockdev', '{"driver": "null-aio", "node-name": "j0"}',
             '--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
             '--monitor', 'chardev=m'])
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        self.assertEqual(qmp.execute('blockdev-del', {'node-name': 'n0'}),
                         {'error': {'class': 'GenericError',
                                    'desc': 'Block device n0 is in use'}})
        self.assertEqual(qmp.execute('blockdev-del', {'node-name': 'r0'}),
                         {'return': {}})
        self.assertEqual(qmp.execute('blockdev-del', {'node-name': 'n0'}),
                         {'return': {}})

    def test_cli_bad_matches_qsd(self):
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        for args in CLI_CASES:
            ours = self.run_blockd(args)
            theirs = self.run_command([qsd] + args)
            self.assertEqual(ours.returncode, 1, args)
            self.assertEqual(theirs.returncode, 1, args)
            self.assertEqual(
                ours.stderr.replace('blockd: ', '', 1),
                theirs.stderr.replace('qemu-storage-daemon: ', '', 1), args)

    def test_cli_negative_size(self):
        # qemu-storage-daemon 7.2 aborts here; blockd says why and exits
        r = self.run_blockd(['--blockdev', '{"driver": "null-co", '
                             '"node-name": "a", "size": -5}'])
        self.assertEqual(r.returncode, 1)
        self.assertIn("Parameter 'size' expects a non-negative number "
                      "below 2^64", r.stderr)


if __name__ == '__main__':
    h.main()
