"""blockd's command line as a user meets it: help, version, bad options,
plugin listing, and a plain daemon that stops on a signal.  Where the
behaviour is qemu-storage-daemon's, both programs are run and compared."""

import os
import re
import signal
import time
import unittest

import blockd_harness as h

# Every option of qemu-storage-daemon 7.2, and blockd's own.
QSD_OPTIONS = ['--blockdev', '--chardev', '--daemonize', '--export',
               '--monitor', '--nbd-server', '--object', '--pidfile',
               '-T', '--trace', '-h', '--help', '-V', '--version']
BLOCKD_OPTIONS = ['--plugin-dir', '--list-plugins']


def mentions(text, option):
    """Whether `option` appears in `text` as an option, not as part of a
    longer one."""
    return re.search(r'(?<![\w-])' + re.escape(option) + r'(?![\w-])',
                     text) is not None


def lines(text):
    return text.splitlines()


def without_program(message, program):
    """A diagnostic with its leading "program: " removed, so that blockd's
    and qemu-storage-daemon's can be compared."""
    # getopt names the program by argv[0], which may be a whole path.
    return re.sub(r'^(\S*/)?' + re.escape(program) + ': ', '', message)


class HelpAndVersion(h.TestCase):

    def test_help(self):
        for flag in ('-h', '--help'):
            with self.subTest(flag=flag):
                res = self.run_blockd([flag])
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stderr, '')
                for option in QSD_OPTIONS + BLOCKD_OPTIONS:
                    self.assertTrue(mentions(res.stdout, option),
                                    f'{option} is missing from the help')

    def test_help_covers_peer_options(self):
        """Every option qemu-storage-daemon's own help names, blockd's
        help names too (this catches options of a newer peer)."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        peer = self.run_command([qsd, '-h'])
        self.assertEqual(peer.returncode, 0, peer.stderr)
        peer_options = set(re.findall(r'(?<![\w-])--[a-z][a-z-]*',
                                      peer.stdout))
        self.assertIn('--blockdev', peer_options)
        ours = self.run_blockd(['-h']).stdout
        for option in sorted(peer_options):
            self.assertTrue(mentions(ours, option),
                            f'{option} is missing from the help')

    def test_version(self):
        self.assertTrue(h.BLOCKD_VERSION, 'BLOCKD_VERSION is not set')
        for flag in ('-V', '--version'):
            with self.subTest(flag=flag):
                res = self.run_blockd([flag])
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stderr, '')
                first = lines(res.stdout)[0]
                self.assertEqual(first, f'blockd version {h.BLOCKD_VERSION}')
                self.assertIn('qemu-storage-daemon 7.2', res.stdout)


class BadArguments(h.TestCase):
    """Command-line errors: status 1 and one line on stderr naming what was
    wrong, as qemu-storage-daemon does."""

    def run_both(self, args):
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        ours = self.run_blockd(args)
        peer = self.run_command([qsd] + args)
        return ours, peer

    def assert_one_line_error(self, res, word):
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout, '')
        self.assertEqual(len(lines(res.stderr)), 1, res.stderr)
        self.assertIn(word, res.stderr)

    def test_unknown_option(self):
        res = self.run_blockd(['--no-such-option'])
        self.assert_one_line_error(res, '--no-such-option')
        self.assertTrue(res.stderr.startswith('blockd: '), res.stderr)

    def test_unknown_option_like_peer(self):
        ours, peer = self.run_both(['--no-such-option'])
        self.assert_one_line_error(peer, '--no-such-option')
        self.assert_one_line_error(ours, '--no-such-option')
        self.assertEqual(
            without_program(ours.stderr, 'blockd'),
            without_program(peer.stderr, 'qemu-storage-daemon'))

    def test_unknown_short_option(self):
        ours, peer = self.run_both(['-Z'])
        self.assert_one_line_error(peer, 'Z')
        self.assert_one_line_error(ours, 'Z')
        self.assertEqual(
            without_program(ours.stderr, 'blockd'),
            without_program(peer.stderr, 'qemu-storage-daemon'))

    def test_missing_option_argument_like_peer(self):
        ours, peer = self.run_both(['--pidfile'])
        self.assert_one_line_error(peer, 'pidfile')
        self.assert_one_line_error(ours, 'pidfile')
        self.assertEqual(
            without_program(ours.stderr, 'blockd'),
            without_program(peer.stderr, 'qemu-storage-daemon'))

    def test_positional_argument_like_peer(self):
        ours, peer = self.run_both(['stray-argument'])
        self.assert_one_line_error(peer, 'stray-argument')
        self.assert_one_line_error(ours, 'stray-argument')

    def test_positional_argument_message_like_peer(self):
        ours, peer = self.run_both(['stray-argument'])
        self.assertEqual(
            without_program(ours.stderr, 'blockd'),
            without_program(peer.stderr, 'qemu-storage-daemon'))


class ListPlugins(h.TestCase):

    def test_build_tree_plugins(self):
        """Run from the build tree, blockd finds the plugins built beside
        it with no flag and no variable."""
        env = h.child_env(unset=['BLOCKD_PLUGIN_DIR'])
        res = self.run_blockd(['--list-plugins'], env=env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stderr, '')
        out = res.stdout
        plugin_dir = os.path.join(h.BUILD_ROOT, 'plugins')
        self.assertIn(f'plugin directories: {plugin_dir}\n', out)
        self.assertRegex(
            out, r'(?m)^block-null ' + re.escape(h.BLOCKD_VERSION) +
            r' \(ABI 1\.0\): (available|loaded)$')
        self.assertIn(f'file: {plugin_dir}/block-null.so', out)
        # the drivers line of block-null's own entry
        drivers = re.search(r'(?m)^block-null .*\n(?:  .*\n)*?'
                            r'  block drivers: (.*)$', out)
        self.assertIsNotNone(drivers, out)
        self.assertEqual(sorted(drivers.group(1).split(', ')),
                         ['null-aio', 'null-co'])
        self.assertNotIn('no plugins found', out)

    def assert_no_plugins(self, res, empty):
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f'plugin directories: {empty}\n', res.stdout)
        self.assertIn('no plugins found', res.stdout)
        self.assertNotIn('block-null', res.stdout)

    def test_plugin_dir_option(self):
        empty = self.make_tmpdir()
        env = h.child_env(unset=['BLOCKD_PLUGIN_DIR'])
        res = self.run_blockd(['--plugin-dir', empty, '--list-plugins'],
                              env=env)
        self.assert_no_plugins(res, empty)

    def test_plugin_dir_variable(self):
        empty = self.make_tmpdir()
        env = h.child_env(BLOCKD_PLUGIN_DIR=empty)
        res = self.run_blockd(['--list-plugins'], env=env)
        self.assert_no_plugins(res, empty)

    def test_unreadable_plugin_dir(self):
        """A plugin directory that is there but cannot be read is named
        with the reason: on stderr before an option fails for want of its
        plugins, and in --list-plugins.  A missing one is no error."""
        if os.geteuid() != 0:
            self.skipTest('needs root to run blockd as another user')
        binary, _ = self.unprivileged_blockd()
        closed = os.path.join(self.tmpdir, 'plugins')
        os.mkdir(closed, 0o700)             # root's, the daemon is nobody
        os.chown(self.tmpdir, h.NOBODY, h.NOBODY)
        missing = os.path.join(self.tmpdir, 'missing')
        why = f'cannot read plugin directory {closed}: Permission denied'
        env = h.child_env(unset=['BLOCKD_PLUGIN_DIR'])

        res = self.run_command(h.NOBODY_SETPRIV + [
            binary, '--plugin-dir', f'{closed}:{missing}', '--list-plugins'],
            env=env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f'plugin directories: {closed}:{missing}\n'
                      f'error: {why}\n', res.stdout)
        self.assertNotIn('missing:', res.stdout)

        res = self.run_command(h.NOBODY_SETPRIV + [
            binary, '--plugin-dir', closed,
            '--blockdev', 'file,node-name=a,filename=/dev/null'], env=env)
        self.assertEqual(res.returncode, 1)
        lines = h.without_sanitizer_notes(res.stderr).splitlines()
        self.assertEqual(lines[0], f'blockd: warning: {why}')
        self.assertIn("Parameter 'driver' does not accept value 'file'",
                      lines[-1])


class PlainDaemon(h.TestCase):
    """`blockd` with no arguments runs until told to stop."""

    def check_stops_on(self, sig):
        env = h.child_env(unset=['BLOCKD_PLUGIN_DIR'])
        daemon = self.start_daemon([], env=env)
        daemon.wait_for_signal_handlers(
            [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
        # Long enough to see it would not just exit by itself.
        time.sleep(0.5)
        self.assertTrue(daemon.running(), daemon.stderr())
        daemon.proc.send_signal(sig)
        self.assertEqual(daemon.wait(), 0, daemon.stderr())
        self.assertEqual(daemon.stderr(), '')

    def test_sigterm(self):
        self.check_stops_on(signal.SIGTERM)

    def test_sigint(self):
        self.check_stops_on(signal.SIGINT)

    def test_sighup(self):
        self.check_stops_on(signal.SIGHUP)


if __name__ == '__main__':
    h.main()
