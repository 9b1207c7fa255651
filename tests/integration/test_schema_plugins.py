#!/usr/bin/python3
"""The schema follows the installed plugins: query-qmp-schema has a
plugin's types while its files are in the plugin directory and loses
them when they are removed; the same for qom-list-types, --object help
and --blockdev help.

The plugins are copied to a private directory (built plugins plus the
test plugin object-testobj) and files are removed from the copy.  Like
QEMU, query-qmp-schema shows only types reachable from a command or
event: ObjectOptions through object-add; BlockdevOptions only once
blockdev-add is declared (until then that test skips).
"""
import glob
import os
import shutil

import blockd_harness
from blockd_harness import TestCase

PLUGIN_DIR = os.environ.get('BLOCKD_PLUGIN_DIR', '')
TEST_PLUGIN_DIR = os.environ.get('BLOCKD_TEST_PLUGIN_DIR', '')


def by_name(schema):
    return {info['name']: info for info in schema}


def find_object(schema, member_names, tag):
    """The object type (names are masked) with these members and tag."""
    found = [info for info in schema
             if info['meta-type'] == 'object' and info.get('tag') == tag
             and member_names <= {m['name'] for m in info['members']}]
    return found


class SchemaPluginTests(TestCase):

    def private_plugins(self, drop=()):
        """A copy of the built plugins and the test plugin, less the
        plugins named in drop."""
        path = os.path.join(self.make_tmpdir(), 'plugins')
        os.mkdir(path)
        for directory in (PLUGIN_DIR, TEST_PLUGIN_DIR):
            for f in glob.glob(os.path.join(directory, '*.so')) + \
                    glob.glob(os.path.join(directory, '*.plugin')):
                shutil.copy(f, path)
        for name in drop:
            files = glob.glob(os.path.join(path, name + '.*'))
            self.assertTrue(files, f'no files of {name} to remove')
            for f in files:
                os.unlink(f)
        return path

    def client(self, plugin_dir):
        path = os.path.join(self.make_tmpdir(), 'qmp.sock')
        daemon = self.start_daemon([
            '--plugin-dir', plugin_dir,
            '--chardev', f'socket,id=qmp0,path={path},server=on,wait=off',
            '--monitor', 'chardev=qmp0'])
        daemon.wait_for_socket_file(path)
        return self.qmp(path)

    def blockdev_options(self, schema):
        if not any(i['meta-type'] == 'command' and i['name'] == 'blockdev-add'
                   for i in schema):
            self.skipTest('blockdev-add is not declared yet, so '
                          'BlockdevOptions is not in query-qmp-schema')
        found = find_object(schema, {'driver', 'node-name', 'discard'},
                            'driver')
        self.assertEqual(len(found), 1, found)
        return found[0]

    def test_block_null_branches(self):
        schema = self.client(self.private_plugins()).command(
            'query-qmp-schema')
        types = by_name(schema)
        options = self.blockdev_options(schema)
        cases = {v['case']: v['type'] for v in options['variants']}
        self.assertIn('null-co', cases)
        self.assertIn('null-aio', cases)
        null = types[cases['null-co']]
        self.assertEqual({m['name'] for m in null['members']},
                         {'size', 'latency-ns', 'read-zeroes'})
        driver = next(m for m in options['members'] if m['name'] == 'driver')
        self.assertIn('null-co', types[driver['type']]['values'])

    def test_without_block_null(self):
        schema = self.client(self.private_plugins(drop=['block-null'])) \
            .command('query-qmp-schema')
        types = by_name(schema)
        options = self.blockdev_options(schema)
        cases = {v['case'] for v in options.get('variants', [])}
        self.assertNotIn('null-co', cases)
        self.assertNotIn('null-aio', cases)
        driver = next(m for m in options['members'] if m['name'] == 'driver')
        self.assertNotIn('null-co', types[driver['type']]['values'])
        self.assertFalse(find_object(schema, {'read-zeroes', 'latency-ns'},
                                     None))

    def object_options(self, schema):
        found = find_object(schema, {'qom-type', 'id'}, 'qom-type')
        self.assertEqual(len(found), 1, found)
        return found[0]

    def test_object_branch(self):
        schema = self.client(self.private_plugins()).command(
            'query-qmp-schema')
        types = by_name(schema)
        options = self.object_options(schema)
        cases = {v['case']: v['type'] for v in options['variants']}
        self.assertIn('testobj', cases)
        self.assertEqual({m['name'] for m in types[cases['testobj']]
                          ['members']},
                         {'label', 'size', 'poll-max-ns', 'uses',
                          'fail-create', 'fail-complete'})
        qom_type = next(m for m in options['members']
                        if m['name'] == 'qom-type')
        self.assertIn('testobj', types[qom_type['type']]['values'])

    def test_without_object_plugin(self):
        schema = self.client(self.private_plugins(drop=['object-testobj'])) \
            .command('query-qmp-schema')
        types = by_name(schema)
        options = self.object_options(schema)
        self.assertNotIn('testobj', {v['case'] for v in
                                     options.get('variants', [])})
        qom_type = next(m for m in options['members']
                        if m['name'] == 'qom-type')
        self.assertNotIn('testobj', types[qom_type['type']]['values'])
        self.assertFalse(find_object(schema, {'fail-create', 'uses'}, None))

    def test_object_type_follows_plugin(self):
        with_test = self.private_plugins()
        client = self.client(with_test)
        self.assertIn({'name': 'testobj', 'parent': 'object'},
                      client.command('qom-list-types'))
        res = self.run_blockd(['--plugin-dir', with_test, '--object', 'help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn('  testobj', res.stdout.splitlines())

        plugins = self.private_plugins(drop=['object-testobj',
                                             'object-iothread',
                                             'object-secret',
                                             'object-authz',
                                             'object-tls-creds',
                                             'object-thread-context',
                                             'object-throttle-group'])
        client = self.client(plugins)
        self.assertNotIn('testobj', [t['name'] for t in
                                     client.command('qom-list-types')])
        res = self.run_blockd(['--plugin-dir', plugins, '--object', 'help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout, 'List of user creatable objects:\n')

    def test_blockdev_and_export_help(self):
        plugins = self.private_plugins()
        res = self.run_blockd(['--plugin-dir', plugins, '--blockdev', 'help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.splitlines()[0], 'List of block drivers:')
        self.assertIn('  null-co', res.stdout.splitlines())
        res = self.run_blockd(['--plugin-dir', plugins,
                               '--blockdev', 'driver=null-co,help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = res.stdout.splitlines()
        self.assertEqual(lines[0], 'null-co options:')
        self.assertIn('  read-zeroes=<bool>', lines)
        self.assertIn('  node-name=<string>', lines)
        self.assertEqual(lines[1:], sorted(lines[1:]))
        res = self.run_blockd(['--plugin-dir',
                               self.private_plugins(drop=['block-null']),
                               '--blockdev', 'null-co,help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn('null-co', res.stdout)
        res = self.run_blockd(['--plugin-dir', plugins, '--export', 'help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.splitlines()[0], 'List of export types:')
        # not help: an export, checked against the schema
        res = self.run_blockd(['--export', 'bogus,id=e,node-name=n'])
        self.assertEqual((res.returncode, res.stderr),
                         (1, "blockd: --export bogus,id=e,node-name=n: "
                          "Parameter 'type' does not accept value "
                          "'bogus'\n"))


if __name__ == '__main__':
    blockd_harness.main()
