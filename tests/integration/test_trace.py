"""-T/--trace: trace points enabled by patterns, an events file or not at
all, written to stderr or a file; the option's warnings and errors as
qemu-storage-daemon 7.2 gives them."""

import os
import re

import blockd_harness as h


def qmp_args(path):
    return ['--chardev', f'socket,id=m,path={path},server=on,wait=off',
            '--monitor', 'm']


def without_program(message, program):
    return re.sub(r'(?m)^(\S*/)?' + re.escape(program) + ':', '', message)


class Tracing(h.TestCase):

    def session(self, trace_args):
        """Run blockd with `trace_args`, send one query-version, stop it;
        returns its stderr."""
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon(trace_args + qmp_args(sock))
        d.wait_for_socket_file(sock)
        with h.QmpClient(sock) as client:
            client.command('query-version')
        self.assertEqual(d.stop(), 0, d.stderr())
        return d.stderr()

    def assert_qmp_lines(self, text, reply=True):
        self.assertRegex(
            text, r'(?m)^qmp_command chardev m req: '
            r'\{"execute": ?"query-version"\}$')
        self.assertRegex(text, r'(?m)^qmp_dispatch command query-version$')
        if reply:
            self.assertRegex(text, r'(?m)^qmp_reply chardev m resp: '
                             r'\{"return": \{"qemu": ')

    def test_glob_on_stderr(self):
        err = self.session(['-T', 'enable=qmp_*'])
        self.assert_qmp_lines(err)
        # only what the pattern selects
        for line in err.splitlines():
            self.assertTrue(line.startswith('qmp_'), line)

    def test_implied_enable_and_long_option(self):
        err = self.session(['--trace', 'qmp_dispatch'])
        self.assertEqual(err.splitlines(),
                         ['qmp_dispatch command qmp_capabilities',
                          'qmp_dispatch command query-version'])

    def test_nothing_when_off(self):
        self.assertEqual(self.session([]), '')

    def test_events_file(self):
        events = os.path.join(self.tmpdir, 'events')
        with open(events, 'w', encoding='utf-8') as f:
            f.write('# the QMP side\n\nqmp_*\nmonitor_accept\n'
                    '-qmp_reply\n')
        err = self.session(['-T', f'events={events}'])
        self.assert_qmp_lines(err, reply=False)
        self.assertIn('monitor_accept chardev m\n', err)
        self.assertNotIn('qmp_reply', err)
        self.assertNotIn('monitor_close', err)

    def test_file(self):
        log = os.path.join(self.tmpdir, 'trace.log')
        err = self.session(['-T', f'enable=qmp_*,file={log}'])
        self.assertEqual(err, '')
        with open(log, encoding='utf-8') as f:
            self.assert_qmp_lines(f.read())

    def test_later_pattern_wins(self):
        err = self.session(['-T', 'qmp_*', '-T', '-qmp_*',
                            '-T', 'qmp_dispatch'])
        self.assertEqual(err.splitlines(),
                         ['qmp_dispatch command qmp_capabilities',
                          'qmp_dispatch command query-version'])

    def test_plugin_trace_point(self):
        """A plugin's point: enabled before the plugin loads, without a
        warning, and fired from its init."""
        res = self.run_blockd(['-T', 'block_null_init', '-T', 'plugin_load*',
                               '--list-plugins'])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr,
                         r'(?m)^plugin_load plugin block-null path \S+'
                         r'/block-null\.so$')
        self.assertIn('block_null_init plugin block-null drivers null-co '
                      'null-aio\n', res.stderr)
        self.assertIn('plugin_loaded plugin block-null\n', res.stderr)
        self.assertNotIn('warning', res.stderr)

    def test_help_lists_points(self):
        res = self.run_blockd(['-T', 'help'])
        self.assertEqual(res.returncode, 0, res.stderr)
        names = res.stdout.splitlines()
        self.assertEqual(names, sorted(names))
        for name in ('qmp_command', 'qmp_reply', 'qmp_dispatch',
                     'monitor_accept', 'plugin_load', 'block_null_init'):
            self.assertIn(name, names)


class OptionLikePeer(h.TestCase):
    """The same -T arguments given to blockd and to qemu-storage-daemon:
    same exit status, same messages (after the program name).  '-T help'
    last makes the successful cases exit once the options are read."""

    def run_both(self, args):
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        ours = self.run_blockd(args)
        peer = self.run_command([qsd] + args)
        return ours, peer

    def check(self, args, status):
        ours, peer = self.run_both(args)
        self.assertEqual(peer.returncode, status, peer.stderr)
        self.assertEqual(ours.returncode, status, ours.stderr)
        self.assertEqual(without_program(ours.stderr, 'blockd'),
                         without_program(peer.stderr, 'qemu-storage-daemon'))
        return ours

    def test_unknown_name_warns(self):
        ours = self.check(['-T', 'nosuch', '-T', 'help'], 0)
        self.assertEqual(ours.stderr, "blockd: -T nosuch: warning: trace "
                         "event 'nosuch' does not exist\n")

    def test_unknown_glob_is_silent(self):
        self.check(['-T', 'nosuch*', '-T', 'help'], 0)

    def test_empty_enable(self):
        self.check(['-T', 'enable=', '-T', 'help'], 0)

    def test_events_file_warning(self):
        with open(os.path.join(self.tmpdir, 'ev'), 'w',
                  encoding='utf-8') as f:
            f.write('# comment\n\nnosuch_point\n-other*\n')
        self.check(['-T', 'events=ev', '-T', 'help'], 0)

    def test_missing_events_file(self):
        ours = self.check(['-T', 'events=missing'], 1)
        self.assertEqual(ours.stderr,
                         'blockd:missing: No such file or directory\n')

    def test_bad_file(self):
        self.check(['-T', 'file=nodir/x.log'], 1)

    def test_invalid_parameter(self):
        self.check(['-T', 'foo=bar'], 1)

    def test_short_form_boolean(self):
        self.check(['-T', 'enable=x*,bad'], 1)


if __name__ == '__main__':
    h.main()
