#!/usr/bin/python3
"""User-creatable objects: object-add, object-del, qom-list-types,
qom-list-properties and --object, with the test plugin object-testobj.

Where qemu-storage-daemon has the same case, the same requests with the
same ids go to both: blockd creates "testobj" objects where qsd creates
"iothread" ones (both have an integer property 'poll-max-ns'), and the
replies must be identical.
"""
import os

import blockd_harness
from blockd_harness import BLOCKD, TestCase

TEST_PLUGIN_DIR = os.environ.get('BLOCKD_TEST_PLUGIN_DIR', '')
PLUGIN_DIRS = os.environ.get('BLOCKD_PLUGIN_DIR', '') + ':' + TEST_PLUGIN_DIR


def with_plugins(args):
    return ['--plugin-dir', PLUGIN_DIRS] + list(args)


class ObjectTests(TestCase):

    def start_qmp(self, binary=None, extra=()):
        """A daemon serving QMP on a socket in the test's directory, with
        the test plugin for blockd; returns (daemon, client)."""
        path = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = ['--chardev', f'socket,id=qmp0,path={path},server=on,wait=off',
                '--monitor', 'chardev=qmp0'] + list(extra)
        if binary is None:
            daemon = self.start_daemon(with_plugins(args))
        else:
            daemon = self.start_qsd(args)
        daemon.wait_for_socket_file(path)
        return daemon, self.qmp(path)

    # The same session; TYPE is the type each daemon has.
    SESSION = [
        ('object-add', {'qom-type': 'TYPE', 'id': 'a'}),
        ('object-add', {'qom-type': 'TYPE', 'id': 'a'}),
        ('object-add', {'qom-type': 'TYPE', 'id': '1b'}),
        ('object-add', {'qom-type': 'TYPE', 'id': ''}),
        ('object-add', {'qom-type': 'TYPE', 'id': 'a/b'}),
        ('object-add', {'qom-type': 'TYPE'}),
        ('object-add', {'id': 'b'}),
        ('object-add', {'qom-type': 'nosuch', 'id': 'b'}),
        ('object-add', {'qom-type': 1, 'id': 'b'}),
        ('object-add', {'qom-type': 'TYPE', 'id': 'b', 'foo': 1}),
        ('object-add', {'qom-type': 'TYPE', 'id': 'b', 'poll-max-ns': 'x'}),
        ('object-add', {'qom-type': 'TYPE', 'id': 'b', 'poll-max-ns': 5}),
        ('object-del', {'id': 'nosuch'}),
        ('object-del', {'id': 'a'}),
        ('object-del', {'id': 'a'}),
        ('object-del', {}),
        ('object-del', {'id': 'b', 'x': 1}),
        ('object-add', {'qom-type': 'TYPE', 'id': 'a'}),
        ('object-del', {'id': 'b'}),
        ('qom-list-properties', {'typename': 'nosuch'}),
        ('qom-list-properties', {}),
        ('qom-list-types', {'implements': 'nosuch'}),
    ]

    def run_session(self, client, type_name):
        replies = []
        for name, args in self.SESSION:
            args = {k: (type_name if v == 'TYPE' else v)
                    for k, v in args.items()}
            replies.append((name, args, client.execute(name, args)))
        return replies

    def test_session_like_qsd(self):
        _, ours = self.start_qmp()
        _, theirs = self.start_qmp(binary='qsd')
        mine = self.run_session(ours, 'testobj')
        peer = self.run_session(theirs, 'iothread')
        for (name, args, got), (_, _, want) in zip(mine, peer):
            with self.subTest(command=name, arguments=args):
                self.assertEqual(got, want)

    def test_command_line_errors_like_qsd(self):
        cases = [
            ['TYPE,id=1b'],
            ['TYPE'],
            ['TYPE,id=a', 'TYPE,id=a'],
            ['TYPE,id=a,foo=1'],
            ['nosuch,id=a'],
            ['id=a'],
            ['TYPE,id=a,poll-max-ns=x'],
            ['{"qom-type":"TYPE","id":"a","poll-max-ns":"5"}'],
            ['{"qom-type":"TYPE"}'],
        ]
        for case in cases:
            with self.subTest(objects=case):
                results = []
                for binary, type_name in ((BLOCKD, 'testobj'),
                                          (blockd_harness.find_qsd(),
                                           'iothread')):
                    if binary is None:
                        self.skipTest('qemu-storage-daemon is not installed')
                    argv = [binary]
                    if binary == BLOCKD:
                        argv += ['--plugin-dir', PLUGIN_DIRS]
                    for opt in case:
                        argv += ['--object', opt.replace('TYPE', type_name)]
                    res = self.run_command(argv, timeout=30)
                    err = res.stderr.replace(type_name, 'TYPE')
                    err = err.split(': ', 1)[1] if ': ' in err else err
                    results.append((res.returncode, err))
                self.assertEqual(results[0], results[1])

    def test_help_lists_types_and_properties(self):
        res = self.run_blockd(with_plugins(['--object', 'help']))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.splitlines()[0],
                         'List of user creatable objects:')
        self.assertIn('  testobj', res.stdout.splitlines())
        res = self.run_blockd(with_plugins(['--object', 'testobj,help']))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.splitlines(), [
            'testobj options:',
            '  fail-complete=<bool>',
            '  fail-create=<bool>',
            '  label=<string>',
            '  poll-max-ns=<int>',
            '  size=<size>',
            '  uses=<string>',
        ])
        # an unknown type lists the types, as qsd does
        res = self.run_blockd(with_plugins(['--object', 'nosuch,help']))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.splitlines()[0],
                         'List of user creatable objects:')

    def test_list_types_and_properties(self):
        _, client = self.start_qmp()
        for args in ({}, {'implements': 'user-creatable'},
                     {'implements': 'testobj'}, {'implements': 'object'}):
            with self.subTest(arguments=args):
                self.assertIn({'name': 'testobj', 'parent': 'object'},
                              client.command('qom-list-types', args))
        types = client.command('qom-list-types',
                               {'implements': 'user-creatable',
                                'abstract': True})
        self.assertIn({'name': 'user-creatable', 'abstract': True,
                       'parent': 'interface'}, types)
        self.assertEqual(
            client.command('qom-list-properties', {'typename': 'testobj'}),
            [{'name': 'type', 'type': 'string'},
             {'name': 'label', 'type': 'string'},
             {'name': 'size', 'type': 'size'},
             {'name': 'poll-max-ns', 'type': 'int'},
             {'name': 'uses', 'type': 'string'},
             {'name': 'fail-create', 'type': 'bool'},
             {'name': 'fail-complete', 'type': 'bool'}])

    def test_in_use_and_failures(self):
        _, client = self.start_qmp(extra=['--object', 'testobj,id=base'])
        add = lambda **kw: client.execute(
            'object-add', dict({'qom-type': 'testobj'}, **kw))
        self.assertEqual(add(id='user', uses='base'), {'return': {}})
        self.assertEqual(
            client.execute('object-del', {'id': 'base'}),
            {'error': {'class': 'GenericError',
                       'desc': "object 'base' is in use, can not be "
                               "deleted"}})
        self.assertEqual(client.execute('object-del', {'id': 'user'}),
                         {'return': {}})
        self.assertEqual(client.execute('object-del', {'id': 'base'}),
                         {'return': {}})
        # a refused or failed object leaves nothing behind
        self.assertEqual(add(id='x', **{'fail-create': True})['error']['desc'],
                         "testobj 'x' refuses to be created")
        self.assertEqual(add(id='x', **{'fail-complete': True})['error']
                         ['desc'], "testobj 'x' fails to complete")
        self.assertEqual(add(id='x', uses='nosuch')['error']['desc'],
                         "testobj 'nosuch' not found")
        self.assertEqual(add(id='x'), {'return': {}})
        # a failed complete() that referenced an object released it
        self.assertEqual(add(id='y', uses='x', **{'fail-complete': True})
                         ['error']['desc'], "testobj 'y' fails to complete")
        self.assertEqual(client.execute('object-del', {'id': 'x'}),
                         {'return': {}})

    def test_command_line_objects_in_order(self):
        _, client = self.start_qmp(extra=[
            '--object', 'testobj,id=one',
            '--object', '{"qom-type":"testobj","id":"two","uses":"one"}'])
        self.assertIn('in use', client.execute('object-del', {'id': 'one'})
                      ['error']['desc'])
        # keyval values are coerced: sizes with suffixes
        self.assertEqual(client.execute('object-add', {
            'qom-type': 'testobj', 'id': 'three', 'size': 1024}),
            {'return': {}})
        res = self.run_blockd(with_plugins(
            ['--object', 'testobj,id=a,uses=b', '--object', 'testobj,id=b']))
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stderr, "blockd: --object testobj,id=a,uses=b: "
                         "testobj 'b' not found\n")

    def test_without_plugin(self):
        res = self.run_blockd(['--plugin-dir', self.make_tmpdir(),
                               '--object', 'testobj,id=a'])
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stderr, "blockd: --object testobj,id=a: "
                         "Parameter 'qom-type' does not accept value "
                         "'testobj'\n")


if __name__ == '__main__':
    blockd_harness.main()
