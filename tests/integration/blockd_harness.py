"""Shared pieces of blockd's integration tests.

Every integration test runs the real daemon (and, side by side, the real
qemu-storage-daemon where that is installed) and talks to it with real
clients.  This module gives them:

- TestCase: a unittest.TestCase with a private temporary directory per test,
  daemons that are always stopped by pid, and helpers to run commands;
- Daemon: one started process, its stderr kept in a file, stopped with
  SIGTERM then SIGKILL;
- QmpClient: a small QMP client over a UNIX socket;
- find_qsd(): the qemu-storage-daemon to compare with, or None;
- main(): the entry point each test file calls.

Only the Python standard library is used here; tests run under Debian's
/usr/bin/python3 so that they may import Debian's modules (nbd) as well.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

# Set by tests/integration/meson.build.
BLOCKD = os.environ.get('BLOCKD', '')
BLOCKD_VERSION = os.environ.get('BLOCKD_VERSION', '')
BUILD_ROOT = os.environ.get('BLOCKD_BUILD_ROOT', '')
SOURCE_ROOT = os.environ.get('BLOCKD_SOURCE_ROOT', '')

# How long a daemon gets to start, and to stop after SIGTERM, in seconds.
# The unprivileged user some tests run the daemon as (setpriv).
NOBODY = 65534
NOBODY_SETPRIV = ['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}',
                  '--clear-groups']

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def find_qsd():
    """The path of qemu-storage-daemon, or None when it is not installed."""
    return shutil.which('qemu-storage-daemon')


def child_env(unset=(), **extra):
    """os.environ for a child, less the names in `unset`, plus `extra`."""
    env = dict(os.environ)
    for name in unset:
        env.pop(name, None)
    env.update(extra)
    return env


def stop_pid(pid, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Stop a process that is not our child (a daemonized one) by pid:
    send `sig`, wait up to `timeout` seconds for it to go, then SIGKILL.
    Returns once the pid no longer exists."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def caught_signals(pid):
    """The set of signal numbers process `pid` has a handler for, read from
    /proc/PID/status (SigCgt).  A daemon that installs its handlers once
    started is ready for a signal when they appear here."""
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('SigCgt:'):
                mask = int(line.split()[1], 16)
                return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    return set()


class DaemonError(Exception):
    """A daemon did not do what a test waited for; the message includes
    its stderr."""


class Daemon:
    """One running daemon process (blockd or qemu-storage-daemon).

    stdout and stderr go to files in `workdir`, so a chatty daemon never
    blocks on a full pipe and its output can be read at any point.
    Use as a context manager or call stop(); TestCase.start_daemon() does
    it for you in every outcome.
    """

    _count = 0

    def __init__(self, argv, workdir, env=None, name=None):
        Daemon._count += 1
        self.name = name or os.path.basename(argv[0])
        stem = os.path.join(workdir, f'{self.name}-{Daemon._count}')
        self.argv = list(argv)
        self.stdout_path = stem + '.stdout'
        self.stderr_path = stem + '.stderr'
        with open(self.stdout_path, 'wb') as out, \
             open(self.stderr_path, 'wb') as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err,
                                         env=env, cwd=workdir)
        self.pid = self.proc.pid
        self.returncode = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stdout(self):
        with open(self.stdout_path, encoding='utf-8',
                  errors='replace') as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, encoding='utf-8',
                  errors='replace') as f:
            return without_sanitizer_notes(f.read())

    def running(self):
        return self.proc.poll() is None

    def _failure(self, what):
        status = self.proc.poll()
        state = 'running' if status is None else f'exited with {status}'
        return DaemonError(f'{self.name} {what} ({state}); '
                           f'command: {self.argv!r}; '
                           f'stderr:\n{self.stderr()}')

    def wait_until(self, predicate, what, timeout=START_TIMEOUT):
        """Poll `predicate()` until true; raise DaemonError naming `what`
        if the daemon exits first or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.running():
                raise self._failure(f'exited before {what}')
            if time.monotonic() > deadline:
                raise self._failure(f'timed out waiting for {what}')
            time.sleep(0.02)

    def wait_for_socket(self, path, timeout=START_TIMEOUT):
        """Wait until a UNIX socket exists at `path` and accepts
        connections."""
        def ready():
            if not os.path.exists(path):
                return False
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(path)
                except (ConnectionRefusedError, FileNotFoundError):
                    return False
            return True
        self.wait_until(ready, f'socket {path}', timeout)

    def wait_for_socket_file(self, path, timeout=START_TIMEOUT):
        """Wait until `path` exists, without connecting (for servers that
        accept only one client, such as a QMP monitor)."""
        self.wait_until(lambda: os.path.exists(path), f'socket {path}',
                        timeout)

    def wait_for_signal_handlers(self, signals, timeout=START_TIMEOUT):
        """Wait until the daemon has handlers for every signal in
        `signals`, so that sending one tests the daemon's handling rather
        than the default action."""
        wanted = {int(s) for s in signals}
        self.wait_until(lambda: wanted <= caught_signals(self.pid),
                        'its signal handlers', timeout)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for the daemon to exit by itself; returns its status (a
        negative number for a signal, as subprocess gives it)."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(f'did not exit within {timeout}s') from None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig`, wait up to `timeout` seconds, then SIGKILL.  Safe to
        call more than once.  Returns the exit status."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode


class QmpError(Exception):
    """An error reply: `error_class` and `desc` as the server sent them."""

    def __init__(self, reply):
        self.reply = reply
        error = reply.get('error', {})
        self.error_class = error.get('class')
        self.desc = error.get('desc')
        super().__init__(f'{self.error_class}: {self.desc}')


class QmpClient:
    """A QMP client over a UNIX socket.

    connect() reads the greeting (kept in .greeting) and, unless told not
    to, negotiates capabilities.  execute() returns the whole reply;
    command() returns its "return" value or raises QmpError.  Events that
    arrive while waiting for a reply are kept in .events in arrival order.
    """

    def __init__(self, path, timeout=START_TIMEOUT, negotiate=True):
        self.path = path
        self.events = []
        self.greeting = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._buf = b''
        try:
            # A server's socket file exists from bind() on but refuses
            # connections until listen(): retry that short window.
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self._sock.connect(path)
                    break
                except ConnectionRefusedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            self.greeting = self.receive()
            if 'QMP' not in self.greeting:
                raise ValueError(f'not a QMP greeting: {self.greeting!r}')
            if negotiate:
                self.command('qmp_capabilities')
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._sock.close()

    def send_raw(self, data):
        """Send bytes as they are (for malformed input tests)."""
        self._sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b'\n')

    def receive(self):
        """The next JSON object from the server, whatever it is."""
        while True:
            line, sep, rest = self._buf.partition(b'\n')
            if sep:
                self._buf = rest
                if line.strip():
                    return json.loads(line)
                continue
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError(f'QMP connection {self.path} closed')
            self._buf += chunk

    def execute(self, name, arguments=None, id=None):
        """Send a command and return its reply (a dict with "return" or
        "error", and "id" when given)."""
        cmd = {'execute': name}
        if arguments is not None:
            cmd['arguments'] = arguments
        if id is not None:
            cmd['id'] = id
        self.send(cmd)
        while True:
            msg = self.receive()
            if 'event' in msg:
                self.events.append(msg)
                continue
            return msg

    def command(self, name, arguments=None, **kwargs):
        """execute(), returning "return" or raising QmpError."""
        if arguments is None and kwargs:
            arguments = kwargs
        reply = self.execute(name, arguments)
        if 'error' in reply:
            raise QmpError(reply)
        return reply['return']

    def take_events(self, name=None):
        """Remove and return the events collected so far (only those named
        `name`, if given)."""
        taken = [e for e in self.events if name is None or e['event'] == name]
        self.events = [e for e in self.events if e not in taken]
        return taken

    def wait_event(self, name, timeout=START_TIMEOUT):
        """Return the first event `name`, collected already or arriving
        within `timeout` seconds."""
        for event in self.events:
            if event['event'] == name:
                self.events.remove(event)
                return event
        old = self._sock.gettimeout()
        self._sock.settimeout(timeout)
        try:
            while True:
                msg = self.receive()
                if msg.get('event') == name:
                    return msg
                self.events.append(msg)
        finally:
            self._sock.settimeout(old)


class TestCase(unittest.TestCase):
    """Base class for integration tests: see the module's doc."""

    def setUp(self):
        super().setUp()
        if not BLOCKD:
            self.fail('BLOCKD is not set: run the tests with meson test')

    def skipTest(self, reason):
        """Skip, unless BLOCKD_TEST_NO_SKIP=1 (set by tools/dev test, which
        installs every peer and client): there a skip is a failure, so
        that nothing skipped is ever counted as passed."""
        if os.environ.get('BLOCKD_TEST_NO_SKIP') == '1':
            self.fail(f'would skip ({reason}); skipping is not allowed '
                      'under BLOCKD_TEST_NO_SKIP=1')
        super().skipTest(reason)

    def make_tmpdir(self):
        """A new private directory (mode 0700), removed after the test."""
        path = tempfile.mkdtemp(prefix='blockd-test-')
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    @property
    def tmpdir(self):
        """This test's private directory, made on first use."""
        if getattr(self, '_tmpdir', None) is None:
            self._tmpdir = self.make_tmpdir()
        return self._tmpdir

    def unprivileged_blockd(self):
        """(binary, plugin_dir): blockd and the built plugins copied into
        a private directory that user nobody owns, for tests that run the
        daemon as nobody.  The checkout itself may be where nobody cannot
        go (a clone in a 0700 home directory), so never run it from
        there."""
        root = self.make_tmpdir()
        os.chown(root, NOBODY, NOBODY)
        binary = os.path.join(root, 'blockd')
        shutil.copy2(BLOCKD, binary)
        plugins = os.path.join(root, 'plugins')
        os.mkdir(plugins)
        os.chmod(plugins, 0o755)
        src = os.environ['BLOCKD_PLUGIN_DIR']
        for name in sorted(os.listdir(src)):
            if name.endswith(('.so', '.plugin')):
                shutil.copy2(os.path.join(src, name), plugins)
        return binary, plugins

    def start_daemon(self, args, binary=None, env=None):
        """Start `binary` (blockd by default) with `args`; it is stopped
        by pid (SIGTERM, then SIGKILL) whatever the test's outcome.  A
        sanitizer report in blockd's stderr (a leak found at exit, an
        error) then fails the test."""
        daemon = Daemon([binary or BLOCKD] + list(args), self.tmpdir, env=env)
        self.addCleanup(self._stop_and_check, daemon)
        return daemon

    def _stop_and_check(self, daemon):
        daemon.stop()
        if daemon.argv[0] == BLOCKD:
            self.assert_no_sanitizer_report(daemon.stderr(),
                                            f'blockd (pid {daemon.pid})')

    def assert_no_sanitizer_report(self, text, what='blockd'):
        """Fail if `text` (a blockd's stderr) holds a report of
        AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer."""
        match = _SANITIZER_REPORT.search(text)
        if match:
            self.fail(f'{what}: sanitizer report in its stderr:\n'
                      f'{text[max(0, match.start() - 200):]}')

    def start_qsd(self, args, env=None):
        """Start qemu-storage-daemon like start_daemon(), or skip the test
        when it is not installed."""
        qsd = find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        return self.start_daemon(args, binary=qsd, env=env)

    def qmp(self, path, **kwargs):
        """A QmpClient connected to `path`, closed after the test."""
        client = QmpClient(path, **kwargs)
        self.addCleanup(client.close)
        return client

    def run_command(self, argv, env=None, timeout=60, input=None):
        """Run a command to completion; returns subprocess.CompletedProcess
        with text stdout and stderr."""
        res = subprocess.run(argv, env=env, timeout=timeout,
                             input=input, capture_output=True, text=True,
                             cwd=self.tmpdir,
                             stdin=None if input is not None
                             else subprocess.DEVNULL)
        if argv and argv[0] == BLOCKD:
            self.assert_no_sanitizer_report(res.stderr)
        return res

    def run_blockd(self, args, env=None, timeout=60):
        res = self.run_command([BLOCKD] + list(args), env=env,
                               timeout=timeout)
        res.stderr = without_sanitizer_notes(res.stderr)
        return res


# ASan's one-line note that it cannot follow every stack switch (blockd's
# coroutines start with swapcontext) is not blockd's output.
_SANITIZER_NOTE = re.compile(r'^==\d+==WARNING: ASan doesn\'t fully support '
                             r'makecontext/swapcontext.*\n', re.M)


# The first line of every report that means a bug: ASan's errors,
# LeakSanitizer's leaks at exit (tests/meson.build turns it on and makes
# GLib's slices plain mallocs so that it sees them) and UBSan's findings.
_SANITIZER_REPORT = re.compile(r'^==\d+==ERROR: (Address|Leak)Sanitizer'
                               r'|^\S+:\d+:\d+: runtime error: ', re.M)


def without_sanitizer_notes(text):
    return _SANITIZER_NOTE.sub('', text)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def recv_exact(s, n):
    """Exactly @n bytes from socket @s; EOFError when it closes first."""
    data = bytearray()
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError(f'connection closed after {len(data)} of {n} '
                           'bytes')
        data += chunk
    return bytes(data)


def main():
    """Run the calling test file's tests.  Exits 0 when they pass, 77
    (meson's "skipped") when every test was skipped, 1 otherwise."""
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    if result.testsRun == 0:
        print('no tests ran', file=sys.stderr)
        sys.exit(1)
    if not result.wasSuccessful():
        sys.exit(1)
    if len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0)
