"""tools/blockd-qmp, the QMP shell: its script mode against blockd and
against qemu-storage-daemon 7.2 (the same file of commands must print the
same thing and exit alike), keyval typed by the schema, a session under a
pseudo-terminal (completion, history, events, a job's progress bar), and
its errors (unknown command, bad keyval, no daemon to connect to).
"""
import os
import pty
import re
import select
import signal
import subprocess
import time

import blockd_harness as h

SHELL = os.environ.get('BLOCKD_QMP') or os.path.join(
    os.environ['BLOCKD_SOURCE_ROOT'], 'tools', 'blockd-qmp')
PYTHON = '/usr/bin/python3'
# The built plugins and the test job type (job-testjob), which goes
# ready at 100% and concludes on job-complete.
PLUGIN_DIRS = (os.environ.get('BLOCKD_PLUGIN_DIR', '') + ':' +
               os.environ.get('BLOCKD_TEST_JOB_PLUGIN_DIR', ''))

# Relative file names: the shell starts the daemon in its own working
# directory, so the output holds no path that differs between runs.
SCRIPT = """\
# a comment, then an empty line

blockdev-add driver=null-co node-name=n0 size=1M read-zeroes=on
blockdev-add driver=raw node-name=r0 file=n0
blockdev-add {"driver": "raw", "node-name": "r1", "file": {"driver": "null-co", "size": 4096}}
{"execute": "query-block-exports"}
nbd-server-start addr.type=unix addr.data.path=nbd.sock
block-export-add type=nbd id=e0 node-name=r0 writable=off
query-block-exports
blockdev-create job-id=c1 options.driver=file options.filename=c1.img options.size=64K
query-jobs
job-dismiss id=c1
query-jobs
block-export-del id=e0 mode=hard
blockdev-del node-name=nope
query-block-exports
"""

ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07|\r')


class ShellTest(h.TestCase):

    def run_shell(self, args, input=None, cwd=None, env=None):
        res = subprocess.run([PYTHON, SHELL] + list(args), input=input,
                             capture_output=True, text=True, timeout=120,
                             cwd=cwd or self.tmpdir,
                             env=env or h.child_env(),
                             stdin=None if input is not None
                             else subprocess.DEVNULL)
        if h.BLOCKD in args:
            # The daemon the shell started wrote to the shell's stderr.
            self.assert_no_sanitizer_report(res.stderr)
            res.stderr = h.without_sanitizer_notes(res.stderr)
        return res

    # -- script mode, side by side

    def script_run(self, daemon_binary):
        d = self.make_tmpdir()
        path = os.path.join(d, 'cmds.qmp')
        with open(path, 'w') as f:
            f.write(SCRIPT)
        return self.run_shell(['-e', '-f', 'cmds.qmp', '--', daemon_binary],
                              cwd=d)

    def test_script_same_as_qsd(self):
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        ours = self.script_run(h.BLOCKD)
        theirs = self.script_run(qsd)
        self.assertEqual(ours.stdout, theirs.stdout)
        self.assertEqual(ours.stderr, theirs.stderr)
        self.assertEqual(ours.returncode, theirs.returncode)
        # What the script did, and where it stopped.
        self.assertEqual(ours.returncode, 1)
        self.assertIn("cmds.qmp:15: GenericError: Failed to find node with "
                      "node-name='nope'", ours.stderr)
        self.assertIn('"node-name": "r0"', ours.stdout)
        self.assertIn('c1           [##############################] 100% '
                      'concluded', ours.stdout)

    def test_stdin_script_and_unix_address(self):
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        daemon = self.start_daemon(
            ['--chardev', f'socket,id=m0,path={sock},server=on,wait=off',
             '--monitor', 'chardev=m0'])
        daemon.wait_for_socket_file(sock)
        res = self.run_shell([sock], input='query-block-exports\n'
                             'query-jobs\n')
        self.assertEqual((res.returncode, res.stdout, res.stderr),
                         (0, '[]\n[]\n', ''))
        # The monitor takes one client: the shell left it free.
        res = self.run_shell(['unix:' + sock], input='query-jobs\n')
        self.assertEqual((res.returncode, res.stdout), (0, '[]\n'))

    def test_tcp_address(self):
        port = h.free_port()
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        daemon = self.start_daemon(
            ['--chardev', f'socket,id=m0,host=127.0.0.1,port={port},'
             'server=on,wait=off', '--monitor', 'chardev=m0',
             '--chardev', f'socket,id=m1,path={sock},server=on,wait=off',
             '--monitor', 'chardev=m1'])
        daemon.wait_for_socket_file(sock)
        res = self.run_shell([f'127.0.0.1:{port}'],
                             input='blockdev-add driver=null-co '
                             'node-name=t0\nquery-named-block-nodes\n')
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn('"node-name": "t0"', res.stdout)

    # -- keyval typed by the schema

    def test_keyval_typing(self):
        # An array of an alternate (name or object); the merge fails (no
        # such node) and stops the script, its arguments typed all the same.
        res = self.run_shell(['-v', '-e', '--', h.BLOCKD], input=(
            'block-dirty-bitmap-merge node=n0 target=b bitmaps.0=a '
            'bitmaps.1.node=n0 bitmaps.1.name=c\n'))
        self.assertEqual(res.returncode, 1)
        self.assertIn("<stdin>:1: GenericError: ", res.stderr)
        self.assertEqual(res.stdout,
                         '{"execute": "block-dirty-bitmap-merge", '
                         '"arguments": {"node": "n0", "target": "b", '
                         '"bitmaps": ["a", {"node": "n0", "name": "c"}]}}\n')

        res = self.run_shell(['-v', '-e', '--', h.BLOCKD], input=(
            'blockdev-add driver=null-co node-name=n0 size=1M '
            'read-zeroes=on latency-ns=0x10\n'
            'blockdev-add driver=raw node-name=r0 file=n0 offset=512 '
            'size=4096\n'
            'blockdev-add driver=raw node-name=r1 file.driver=null-co '
            'file.size=2048 read-only=yes\n'
            "block-set-write-threshold node-name=r1 write-threshold=7\n"
            'nbd-server-start addr.type=inet addr.data.host=127.0.0.1 '
            'addr.data.port=0\n'))
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = res.stdout.splitlines()
        self.assertEqual(lines[0],
                         '{"execute": "blockdev-add", "arguments": '
                         '{"driver": "null-co", "node-name": "n0", '
                         '"size": 1048576, "read-zeroes": true, '
                         '"latency-ns": 16}}')
        self.assertEqual(lines[1],
                         '{"execute": "blockdev-add", "arguments": '
                         '{"driver": "raw", "node-name": "r0", "file": "n0", '
                         '"offset": 512, "size": 4096}}')
        self.assertEqual(lines[2],
                         '{"execute": "blockdev-add", "arguments": '
                         '{"driver": "raw", "node-name": "r1", "file": '
                         '{"driver": "null-co", "size": 2048}, '
                         '"read-only": true}}')
        self.assertIn('"write-threshold": 7', lines[3])
        self.assertIn('"addr": {"type": "inet", "data": {"host": '
                      '"127.0.0.1", "port": "0"}}', lines[4])

    # -- errors

    def test_errors(self):
        res = self.run_shell(['--', h.BLOCKD],
                             input='query-jobs\nnope\nquery-jobs\n')
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, '[]\n')
        self.assertEqual(res.stderr, 'blockd-qmp: <stdin>:2: '
                         'CommandNotFound: The command nope has not been '
                         'found\n')

        for line, msg in [
                ('blockdev-add driver', "'driver' is not KEY=VALUE"),
                ('blockdev-add a=1 a=2', "key 'a' is given twice"),
                ('blockdev-add a=1 a.b=2',
                 "key 'a' is given both a value and members"),
                ('blockdev-add a..b=1', "bad key 'a..b' in 'a..b=1'"),
                ("blockdev-add node-name='x", 'unterminated quote'),
                ('blockdev-add {"driver": ', 'bad JSON arguments'),
                ('{"arguments": {}}', 'a JSON request needs "execute"'),
                ('block-dirty-bitmap-merge node=n target=t bitmaps.0=a '
                 'bitmaps.2=b',
                 'array members must be numbered 0, 1, 2...'),
                ('.nope', "unknown shell command '.nope'")]:
            res = self.run_shell(['--', h.BLOCKD], input=line + '\n')
            self.assertEqual(res.returncode, 1, line)
            self.assertEqual(res.stdout, '', line)
            self.assertIn('blockd-qmp: <stdin>:1: ' + msg, res.stderr, line)

        port = h.free_port()
        res = self.run_shell([f'127.0.0.1:{port}'], input='')
        self.assertEqual((res.returncode, res.stderr),
                         (1, f'blockd-qmp: cannot connect to 127.0.0.1:'
                          f'{port}: Connection refused\n'))
        path = os.path.join(self.tmpdir, 'none.sock')
        res = self.run_shell([path], input='')
        self.assertEqual((res.returncode, res.stderr),
                         (1, f'blockd-qmp: cannot connect to {path}: '
                          f'No such file or directory\n'))
        res = self.run_shell(['host:99999'], input='')
        self.assertEqual(res.returncode, 1)
        self.assertIn("'host:99999' is not HOST:PORT", res.stderr)
        res = self.run_shell(['--', os.path.join(self.tmpdir, 'no-daemon')],
                             input='')
        self.assertEqual(res.returncode, 1)
        self.assertIn('cannot start', res.stderr)
        res = self.run_shell([], input='')
        self.assertEqual(res.returncode, 2)
        self.assertIn('give the QMP socket ADDRESS', res.stderr)
        # A failed job fails the command, in script mode the script.
        res = self.run_shell(['-e', '--', h.BLOCKD], input=(
            'blockdev-create job-id=c1 options.driver=file '
            'options.filename=no/such/dir/x.img options.size=0\n'
            'query-jobs\n'))
        self.assertEqual(res.returncode, 1)
        self.assertIn('c1           [', res.stdout)
        self.assertIn('concluded: Could not create', res.stdout)
        self.assertIn('<stdin>:1: job c1 failed: Could not create',
                      res.stderr)


class Pty:
    """The shell on a pseudo-terminal, read until a pattern shows."""

    def __init__(self, argv, env, cwd):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.seen = ''
        self.pos = 0

    def send(self, text):
        os.write(self.fd, text.encode())

    def expect(self, pattern, timeout=30):
        """Wait for `pattern` (a regex) in the output after the last
        match, escape sequences removed; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            clean = ANSI.sub('', self.seen)
            m = re.compile(pattern).search(clean, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f'{pattern!r} not seen; output was:\n'
                                     f'{clean}')
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b''
                if not data:
                    raise AssertionError(f'{pattern!r} not seen before the '
                                         f'end; output was:\n{clean}')
                self.seen += data.decode(errors='replace')

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                # What is still buffered (the daemon's last words).
                while select.select([self.fd], [], [], 0.1)[0]:
                    try:
                        data = os.read(self.fd, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    self.seen += data.decode(errors='replace')
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if r:
                    self.seen += os.read(self.fd, 65536).decode(
                        errors='replace')
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError('the shell did not exit')

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


class InteractiveTest(h.TestCase):

    def start(self, state):
        env = h.child_env(XDG_STATE_HOME=state, TERM='xterm', COLUMNS='200',
                          LINES='50', INPUTRC='/dev/null')
        shell = Pty([PYTHON, SHELL, '--', h.BLOCKD, '--plugin-dir',
                     PLUGIN_DIRS], env, self.tmpdir)
        self.addCleanup(shell.kill)
        shell.expect(r'\(QMP\) ')
        return shell

    def test_session(self):
        state = self.make_tmpdir()
        shell = self.start(state)

        # Completion of a command name, then of argument names and values.
        shell.send('query-vers\t')
        shell.expect(r'query-version ')
        shell.send('\r')
        shell.expect(r'"qemu": \{')
        shell.expect(r'\(QMP\) ')
        shell.send('blockdev-add driver=null-c\t')
        shell.expect(r'driver=null-co ')
        shell.send('node-name=n0 read-z\t')
        shell.expect(r'read-zeroes=')
        shell.send('tr\t')
        shell.expect(r'true ')
        shell.send('\r')
        shell.expect(r'\(QMP\) ')
        shell.send('query-named-block-nodes fl\t')
        shell.expect(r'flat=')
        shell.send('true\r')
        shell.expect(r'"filename": "json:\{\\"read-zeroes\\": true')
        shell.expect(r'"node-name": "n0"')
        shell.expect(r'\(QMP\) ')

        # A job: its events and its progress bar, to 100%.
        shell.send('blockdev-create job-id=j1 options.dri\t')
        shell.expect(r'options\.driver=')
        shell.send('file options.filename=j1.img options.size=1M\r')
        shell.expect(r'event JOB_STATUS_CHANGE at [0-9:.]+ '
                     r'\{"status": "created", "id": "j1"\}')
        shell.expect(r'j1 +\[#{30}\] 100% concluded')
        shell.expect(r'\(QMP\) ')
        self.assertEqual(os.path.getsize(os.path.join(self.tmpdir,
                                                      'j1.img')), 1 << 20)
        shell.send('job-dismiss id=j1\r')
        shell.expect(r'event JOB_STATUS_CHANGE at [0-9:.]+ '
                     r'\{"status": "null", "id": "j1"\}')

        # A job that goes ready, then concludes on job-complete: .jobs
        # follows it.
        shell.send('.jobs\r')
        shell.expect(r'no jobs')
        shell.send('testjob-start job-id=t1 length=4096 auto-dismiss=off\r')
        shell.expect(r't1 +\[#{30}\] 100% ready')
        shell.expect(r'\(QMP\) ')
        shell.send('job-complete id=t1\r')
        shell.expect(r'\(QMP\) ')
        shell.send('.jobs\r')
        shell.expect(r't1 +\[#{30}\] 100% concluded')
        shell.expect(r'\(QMP\) ')
        shell.send('job-dismiss id=t1\r')
        shell.expect(r'"status": "null", "id": "t1"')

        # An error does not end the session.
        shell.send('nope\r')
        shell.expect(r'blockd-qmp: CommandNotFound: The command nope has '
                     r'not been found')
        shell.expect(r'\(QMP\) ')

        # History: the line above, recalled with the up arrow.
        shell.send('query-jobs\r')
        shell.expect(r'\[\]')
        shell.expect(r'\(QMP\) ')
        shell.send('\x1b[A\x1b[A')
        shell.expect(r'nope')
        shell.send('\x1b[B\r')
        shell.expect(r'\[\]')
        shell.expect(r'\(QMP\) ')
        shell.send('\x04')
        self.assertEqual(shell.wait(), 0)
        # The daemon shares the terminal: its stderr is in what was seen.
        self.assert_no_sanitizer_report(shell.seen)

        history = os.path.join(state, 'blockd-qmp', 'history')
        with open(history) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], 'query-version')
        # (a line equal to the one before it is not added again)
        self.assertEqual(lines[-2:], ['nope', 'query-jobs'])

        # A new session starts with the history of the last one.
        shell = self.start(state)
        shell.send('\x1b[A\x1b[A')
        shell.expect(r'nope')
        shell.send('\x15.quit\r')
        self.assertEqual(shell.wait(), 0)
        self.assert_no_sanitizer_report(shell.seen)


if __name__ == '__main__':
    h.main()
