"""Block exports: block-export-add, block-export-del, query-block-exports,
BLOCK_EXPORT_DELETED and --export, with the test export type 'testexp'
(tests/integration/plugins/export-testexp); the messages that do not
depend on the type are compared with qemu-storage-daemon 7.2's, which
uses its nbd type."""

import os

import blockd_harness as h

PLUGIN_DIRS = (os.environ.get('BLOCKD_PLUGIN_DIR', '') + ':' +
               os.environ.get('BLOCKD_TEST_EXPORT_PLUGIN_DIR', ''))

NODES = ['--blockdev', 'null-co,node-name=n0,size=1048576,read-zeroes=on',
         '--blockdev', 'null-co,node-name=ro,read-only=on',
         '--blockdev', 'null-co,node-name=n2']

# (command, arguments); 'TYPE' is replaced by the export type.  Every
# reply must be the same from both daemons.
SEQUENCE = [
    ('block-export-add', {'type': 'TYPE', 'id': 'e1', 'node-name': 'nope'}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e1', 'node-name': 'n0'}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e1', 'node-name': 'n2'}),
    ('block-export-add', {'type': 'TYPE', 'id': '1bad', 'node-name': 'n0'}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e2', 'node-name': 'ro',
                          'writable': True}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e3', 'node-name': 'n0',
                          'iothread': 'nothere'}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e3', 'node-name': 'n0',
                          'iothread': 'nothere', 'fixed-iothread': True}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e3', 'node-name': 'ro',
                          'iothread': 'nothere', 'writable': True}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e4', 'node-name': 'ro'}),
    ('blockdev-del', {'node-name': 'ro'}),
    ('query-block-exports', {}),
    ('block-export-del', {'id': 'zz'}),
    ('block-export-del', {'id': 'e1', 'mode': 'bad'}),
    ('block-export-del', {'id': 'e1'}),
    ('block-export-del', {'id': 'e1', 'mode': 'hard'}),
    ('query-block-exports', {}),
    ('block-export-add', {'type': 'TYPE', 'id': 'e1', 'node-name': 'n0'}),
    ('query-block-exports', {}),
    ('block-export-del', {'id': 'e1', 'mode': 'hard'}),
    ('block-export-del', {'id': 'e4'}),
    ('query-block-exports', {}),
]


def fill(args, type_name):
    args = dict(args)
    if args.get('type') == 'TYPE':
        args['type'] = type_name
        if type_name == 'nbd':
            # qsd's nbd exports need distinct export names
            args['name'] = args['id']
    return args


class Exports(h.TestCase):

    def start(self, extra=(), qsd=False):
        sock = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = NODES + ['--chardev',
                        'socket,id=m,path=%s,server=on,wait=off' % sock,
                        '--monitor', 'chardev=m'] + list(extra)
        if qsd:
            d = self.start_qsd(args)
        else:
            d = self.start_daemon(['--plugin-dir', PLUGIN_DIRS] + args)
        d.wait_for_socket_file(sock)
        return d, self.qmp(sock)

    def replay(self, qsd):
        d, qmp = self.start(qsd=qsd)
        type_name = 'testexp'
        if qsd:
            type_name = 'nbd'
            nbd = os.path.join(self.make_tmpdir(), 'nbd.sock')
            qmp.command('nbd-server-start',
                        addr={'type': 'unix', 'data': {'path': nbd}})
        out = []
        for cmd, args in SEQUENCE:
            reply = qmp.execute(cmd, fill(args, type_name))
            for info in reply.get('return') or []:
                if isinstance(info, dict) and info.get('type') == type_name:
                    info['type'] = 'TYPE'
            events = [e['data'] for e in qmp.take_events()]
            out.append((reply, events))
        return out

    def test_sequence_matches_qsd(self):
        ours = self.replay(False)
        theirs = self.replay(True)
        for (cmd, args), a, b in zip(SEQUENCE, ours, theirs):
            self.assertEqual(a, b, '%s %s' % (cmd, args))

    def test_io_through_backend(self):
        img = os.path.join(self.tmpdir, 'img')
        with open(img, 'wb') as f:
            f.truncate(65536)
        d, qmp = self.start(['--blockdev',
                             'file,node-name=f0,filename=%s' % img])
        qmp.command('block-export-add', type='testexp', id='w',
                    **{'node-name': 'f0'}, writable=True, pattern=0x5a)
        info = qmp.command('testexp-info', id='w')
        self.assertEqual(info, {'length': 65536, 'first-byte': 0x5a,
                                'write-errno': 0, 'clients': 0})
        with open(img, 'rb') as f:
            self.assertEqual(f.read(513), b'\x5a' * 512 + b'\0')
        # a second writer: shared perms allow it, like QEMU
        qmp.command('block-export-add', type='testexp', id='r',
                    **{'node-name': 'f0'})
        info = qmp.command('testexp-info', id='r')
        self.assertEqual(info['first-byte'], 0x5a)
        self.assertEqual(info['write-errno'], 1)          # EPERM
        # the plugin's own refusal
        reply = qmp.execute('block-export-add',
                            {'type': 'testexp', 'id': 'x',
                             'node-name': 'f0', 'fail-create': True})
        self.assertEqual(reply['error']['desc'],
                         "testexp 'x' refuses to be created")
        self.assertEqual([e['id'] for e in
                          qmp.command('query-block-exports')], ['r', 'w'])

    def test_export_in_iothread(self):
        """iothread= moves the node into the IOThread; I/O works there, and
        the iothread cannot go while the export's node runs in it."""
        img = os.path.join(self.tmpdir, 'img')
        with open(img, 'wb') as f:
            f.truncate(65536)
        d, qmp = self.start(['--object', 'iothread,id=io0', '--blockdev',
                             'file,node-name=f0,filename=%s' % img])
        qmp.command('block-export-add', type='testexp', id='w',
                    **{'node-name': 'f0'}, writable=True, pattern=0x33,
                    iothread='io0', **{'fixed-iothread': True})
        self.assertEqual(qmp.command('testexp-info', id='w')['first-byte'],
                         0x33)
        with open(img, 'rb') as f:
            self.assertEqual(f.read(1), b'\x33')
        reply = qmp.execute('object-del', {'id': 'io0'})
        self.assertEqual(reply['error']['desc'],
                         "object 'io0' is in use, can not be deleted")
        qmp.command('block-export-del', id='w')
        qmp.command('x-blockdev-set-iothread', **{'node-name': 'f0'},
                    iothread=None)
        qmp.command('blockdev-del', **{'node-name': 'f0'})
        self.assertEqual(qmp.command('object-del', id='io0'), {})

    def test_multithread_refusals(self):
        """'iothread' as a list (QEMU 10.1's multi-threaded exports): the
        core's checks, in QEMU's order and words, before the type sees
        it; a type that cannot serve from several threads is refused."""
        d, qmp = self.start(['--object', 'iothread,id=io0'])
        cases = [
            ({'iothread': ['io0'], 'fixed-iothread': True},
             'Cannot use fixed-iothread for a multi-threaded export'),
            ({'iothread': []}, 'The set of I/O threads must not be empty'),
            ({'iothread': ['io0', 'nothere']},
             'iothread "nothere" not found'),
            ({'iothread': ['io0']},
             "Export type 'testexp' does not support multi-threading"),
            ({'iothread': [1]},
             "Invalid parameter type for 'iothread[0]', expected: string"),
        ]
        for extra, desc in cases:
            reply = qmp.execute('block-export-add', dict(
                type='testexp', id='m', **{'node-name': 'n0'}, **extra))
            self.assertEqual(reply['error']['desc'], desc, extra)
        self.assertEqual(qmp.command('query-block-exports'), [])
        r = self.run_blockd(['--plugin-dir', PLUGIN_DIRS] + NODES +
                            ['--object', 'iothread,id=io0', '--export',
                             'testexp,id=e,node-name=n0,iothread.0=io0'])
        self.assertEqual(r.returncode, 1)
        self.assertIn("Export type 'testexp' does not support "
                      "multi-threading", r.stderr)

    def test_safe_and_hard_deletion(self):
        d, qmp = self.start()
        qmp.command('block-export-add', type='testexp', id='e',
                    **{'node-name': 'n0'})
        qmp.command('testexp-connect', id='e')
        reply = qmp.execute('block-export-del', {'id': 'e'})
        self.assertEqual(reply['error'],
                         {'class': 'GenericError',
                          'desc': "export 'e' still in use"})
        qmp.command('testexp-disconnect', id='e')
        qmp.command('testexp-connect', id='e')
        qmp.command('testexp-connect', id='e')
        self.assertEqual(qmp.command('block-export-del', id='e',
                                     mode='hard'), {})
        self.assertEqual(qmp.wait_event('BLOCK_EXPORT_DELETED')['data'],
                         {'id': 'e'})
        self.assertEqual(qmp.command('query-block-exports'), [])
        # the id is free again
        qmp.command('block-export-add', type='testexp', id='e',
                    **{'node-name': 'n0'})

    def test_deleted_only_when_last_client_goes(self):
        d, qmp = self.start()
        qmp.command('block-export-add', type='testexp', id='e',
                    **{'node-name': 'n0'}, **{'keep-clients': True})
        qmp.command('testexp-connect', id='e')
        qmp.command('block-export-del', id='e', mode='hard')
        self.assertEqual(qmp.take_events(), [])
        self.assertEqual(qmp.command('query-block-exports'),
                         [{'id': 'e', 'type': 'testexp', 'node-name': 'n0',
                           'shutting-down': True}])
        reply = qmp.execute('block-export-del', {'id': 'e'})
        self.assertEqual(reply['error']['desc'],
                         "Export 'e' is already shutting down")
        reply = qmp.execute('block-export-add', {'type': 'testexp',
                                                 'id': 'e',
                                                 'node-name': 'n0'})
        self.assertEqual(reply['error']['desc'],
                         "Block export id 'e' is already in use")
        qmp.command('testexp-disconnect', id='e')
        self.assertEqual(qmp.wait_event('BLOCK_EXPORT_DELETED')['data'],
                         {'id': 'e'})
        self.assertEqual(qmp.command('query-block-exports'), [])

    def test_writer_conflict(self):
        d, qmp = self.start(['--blockdev', 'raw,node-name=r0,file=n2'])
        # raw takes write on n2 and shares it, so a writable export works
        qmp.command('block-export-add', type='testexp', id='e',
                    **{'node-name': 'n2'}, writable=True)
        self.assertEqual(len(qmp.command('query-block-exports')), 1)

    def test_cli_export(self):
        d, qmp = self.start(['--export',
                             'testexp,id=c1,node-name=n0,writable=on',
                             '--export',
                             '{"type": "testexp", "id": "c2", '
                             '"node-name": "n2"}'])
        self.assertEqual(qmp.command('query-block-exports'),
                         [{'id': 'c2', 'type': 'testexp', 'node-name': 'n2',
                           'shutting-down': False},
                          {'id': 'c1', 'type': 'testexp', 'node-name': 'n0',
                           'shutting-down': False}])
        qmp.command('testexp-connect', id='c1')
        # exit deletes every export, clients or not, before the monitor
        d.stop()
        deleted = []
        try:
            while True:
                msg = qmp.receive()
                if msg.get('event') == 'BLOCK_EXPORT_DELETED':
                    deleted.append(msg['data']['id'])
        except (ConnectionError, OSError):
            pass
        deleted += [e['data']['id'] for e in
                    qmp.take_events('BLOCK_EXPORT_DELETED')]
        self.assertEqual(sorted(deleted), ['c1', 'c2'])

    def test_cli_errors_match_qsd(self):
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        cases = [
            ['--export', 'TYPE,id=e,node-name=nope'],
            ['--export', 'TYPE,id=e,node-name=ro,writable=on'],
            ['--export', 'TYPE,id=e,node-name=n0', '--export',
             'TYPE,id=e,node-name=n0'],
            ['--export', 'TYPE,id=e,node-name=n0,iothread=zz'],
            ['--export', 'bogus,id=e,node-name=n0'],
        ]
        for case in cases:
            ours = self.run_blockd(
                ['--plugin-dir', PLUGIN_DIRS] + NODES +
                [a.replace('TYPE', 'testexp') for a in case])
            theirs = self.run_command(
                [qsd, '--nbd-server', 'addr.type=unix,addr.path=nbd.sock'] +
                NODES + [a.replace('TYPE', 'nbd') for a in case])
            self.assertEqual(ours.returncode, 1, case)
            self.assertEqual(theirs.returncode, 1, case)
            a = ours.stderr.replace('blockd: ', '', 1)
            b = theirs.stderr.replace('qemu-storage-daemon: ', '', 1)
            self.assertEqual(a.replace('testexp', 'T'),
                             b.replace('nbd', 'T'), case)

    def test_help(self):
        r = self.run_blockd(['--plugin-dir', PLUGIN_DIRS, '--export',
                             'help'])
        self.assertEqual(r.returncode, 0)
        self.assertIn('testexp', r.stdout)


if __name__ == '__main__':
    h.main()
