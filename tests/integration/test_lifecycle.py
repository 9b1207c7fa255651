"""The daemon's life: --daemonize, --pidfile, termination by 'quit' and
by signals, and failed start-ups that must leave nothing behind.  Where
qemu-storage-daemon 7.2 has the same behaviour, both are run on the same
command line and their exit status and messages compared."""

import os
import re
import signal
import stat
import time

import blockd_harness as h


def qmp_args(path, chardev_id='m', wait=False):
    """--chardev/--monitor arguments for a QMP socket at `path`."""
    opts = f'socket,id={chardev_id},path={path},server=on'
    if not wait:
        opts += ',wait=off'
    return ['--chardev', opts, '--monitor', chardev_id]


def without_program(message, program):
    """`message` with each line's leading "program:" removed."""
    return re.sub(r'(?m)^(\S*/)?' + re.escape(program) + ':', '', message)


def read_pid(path):
    with open(path, encoding='ascii') as f:
        text = f.read()
    assert re.fullmatch(r'[0-9]+\n', text), repr(text)
    return int(text)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid, timeout=h.STOP_TIMEOUT):
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class LifecycleCase(h.TestCase):

    def run_both(self, args, cwd_files=()):
        """Run blockd and qemu-storage-daemon with `args`, each in a
        fresh private directory (its cwd); returns both results and both
        directories."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        results = []
        for binary in (h.BLOCKD, qsd):
            self._tmpdir = self.make_tmpdir()
            res = self.run_command([binary] + list(args))
            results.append((res, self._tmpdir))
        return results

    def assert_same_failure(self, ours, peer):
        self.assertNotEqual(peer.returncode, 0, peer.stderr)
        self.assertEqual(ours.returncode, peer.returncode, ours.stderr)
        self.assertEqual(without_program(ours.stderr, 'blockd'),
                         without_program(peer.stderr, 'qemu-storage-daemon'))

    def daemonize(self, args, binary=None):
        """Run `binary --daemonize --pidfile d.pid ARGS` in this test's
        directory; returns the result and the daemon's pid (stopped at
        cleanup)."""
        res = self.run_command([binary or h.BLOCKD, '--daemonize',
                                '--pidfile', 'd.pid'] + list(args))
        self.assertEqual(res.returncode, 0, res.stderr)
        pid = read_pid(os.path.join(self.tmpdir, 'd.pid'))
        self.addCleanup(h.stop_pid, pid)
        return res, pid


class Daemonize(LifecycleCase):

    def test_parent_exits_once_qmp_accepts(self):
        """The parent's exit 0 means the daemon is ready: the QMP socket
        accepts at once, and the pid file names the daemon.  Relative paths
        work, and are cleaned up after the daemon has changed to /."""
        res, pid = self.daemonize(qmp_args('qmp.sock'))
        self.assertEqual(res.stderr, '')
        self.assertEqual(res.stdout, '')
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        # no retry: the parent may only have exited once this works
        with h.QmpClient(sock) as client:
            self.assertEqual(client.command('query-version')['qemu'],
                             {'major': 7, 'minor': 2, 'micro': 0})
        self.assertEqual(os.readlink(f'/proc/{pid}/cwd'), '/')
        for fd in (0, 1, 2):
            self.assertEqual(os.readlink(f'/proc/{pid}/fd/{fd}'),
                             '/dev/null')
        # a new session, but not its leader: it can never get a terminal
        self.assertNotEqual(os.getsid(pid), os.getsid(0))
        self.assertNotEqual(os.getsid(pid), pid)
        # umask 027, as qemu-storage-daemon's; a socket file is never
        # more than 0660 (qsd's is 0750 here: see blockd(8))
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o640)
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        self.assertEqual(stat.S_IMODE(os.stat(pidfile).st_mode), 0o600)

        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_gone(pid), 'daemon did not stop')
        self.assertEqual(sorted(os.listdir(self.tmpdir)), [])

    def test_parent_waits_for_first_client(self):
        """With wait=on set-up is complete only once a client connects:
        until then the parent waits and there is no pid file."""
        d = self.start_daemon(['--daemonize', '--pidfile', 'd.pid'] +
                              qmp_args('qmp.sock', wait=True))
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d.wait_for_socket_file(sock)
        time.sleep(0.3)
        self.assertTrue(d.running(), d.stderr())
        self.assertFalse(os.path.exists(os.path.join(self.tmpdir, 'd.pid')))
        with h.QmpClient(sock) as client:
            self.assertEqual(d.wait(), 0, d.stderr())
            pid = read_pid(os.path.join(self.tmpdir, 'd.pid'))
            self.addCleanup(h.stop_pid, pid)
            client.command('query-version')
        h.stop_pid(pid)
        self.assertFalse(os.path.exists(sock))
        self.assertFalse(os.path.exists(os.path.join(self.tmpdir, 'd.pid')))

    def test_setup_failure_reaches_parent(self):
        """A bad option after --daemonize: the parent exits 1 and the
        error is on its stderr; nothing is left behind."""
        res = self.run_blockd(['--daemonize', '--pidfile', 'd.pid'] +
                              qmp_args('qmp.sock') +
                              qmp_args('nodir/q.sock', chardev_id='m2'))
        self.assertEqual(res.returncode, 1)
        self.assertEqual(
            res.stderr,
            'blockd: --chardev socket,id=m2,path=nodir/q.sock,server=on,'
            'wait=off: Failed to bind socket to nodir/q.sock: No such file '
            'or directory\n')
        self.assertEqual(os.listdir(self.tmpdir), [])

    def test_bad_monitor_reaches_parent(self):
        res = self.run_blockd(['--daemonize', '--monitor', 'nosuch'])
        self.assertEqual(res.returncode, 1)
        self.assertIn('--monitor nosuch: ', res.stderr)

    def test_failures_like_peer(self):
        cases = [
            ['--daemonize'] + qmp_args('nodir/q.sock'),
            ['--daemonize', '--pidfile', 'nodir/d.pid'],
            ['--daemonize', '--chardev', 'stdio,id=s'],
            ['--daemonize', '--bogus'],
            ['--daemonize', 'stray'],
            ['--daemonize', '--pidfile'],
            ['--daemonize', '--monitor', 'nosuch'],
        ]
        for args in cases:
            with self.subTest(args=args):
                (ours, ours_dir), (peer, peer_dir) = self.run_both(args)
                self.assert_same_failure(ours, peer)
                self.assertEqual(os.listdir(ours_dir), [])

    def test_help_and_version_do_not_fork(self):
        """-h and -V are handled before --daemonize, as by qsd: exit 0
        with the text on stdout."""
        for flag in ('-h', '-V'):
            with self.subTest(flag=flag):
                (ours, _), (peer, _) = self.run_both(['--daemonize', flag])
                self.assertEqual(ours.returncode, 0, ours.stderr)
                self.assertEqual(peer.returncode, 0, peer.stderr)
                self.assertNotEqual(ours.stdout, '')

    def test_success_like_peer(self):
        """Both daemonize with relative paths; both pid files name a
        running daemon serving QMP."""
        for binary in (h.BLOCKD, h.find_qsd()):
            if binary is None:
                self.skipTest('qemu-storage-daemon is not installed')
            with self.subTest(binary=binary):
                self._tmpdir = self.make_tmpdir()
                res, pid = self.daemonize(qmp_args('qmp.sock'),
                                          binary=binary)
                self.assertEqual(res.stderr, '')
                with h.QmpClient(os.path.join(self.tmpdir, 'qmp.sock')) as c:
                    c.command('query-version')
                h.stop_pid(pid)
                self.assertFalse(os.path.exists(
                    os.path.join(self.tmpdir, 'd.pid')))


class PidFile(LifecycleCase):

    def test_written_when_ready_and_removed(self):
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon(['--pidfile', pidfile] +
                              qmp_args(sock, wait=True))
        d.wait_for_socket_file(sock)
        time.sleep(0.3)
        # chardevs come first; the pid file only once set-up is complete
        self.assertFalse(os.path.exists(pidfile))
        client = self.qmp(sock)
        d.wait_until(lambda: os.path.exists(pidfile), 'the pid file')
        self.assertEqual(read_pid(pidfile), d.pid)
        self.assertEqual(stat.S_IMODE(os.stat(pidfile).st_mode), 0o600)
        client.command('query-version')
        self.assertEqual(d.stop(), 0, d.stderr())
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(os.path.exists(sock))

    def second_instance(self, first_binary):
        """A first daemon holds d.pid; a second blockd and a second qsd
        with the same pid file both fail alike and harm nothing."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        first = self.start_daemon(['--pidfile', pidfile] + qmp_args(sock),
                                  binary=first_binary)
        first.wait_until(lambda: os.path.exists(pidfile) and
                         os.path.getsize(pidfile) > 0, 'the pid file')
        results = {}
        for name, binary in (('blockd', h.BLOCKD),
                             ('qemu-storage-daemon', qsd)):
            sock2 = os.path.join(self.tmpdir, f'{name}.sock')
            res = self.run_command([binary, '--pidfile', pidfile] +
                                   qmp_args(sock2))
            results[name] = res
            self.assertEqual(read_pid(pidfile), first.pid)
            if name == 'blockd':
                # qsd leaves its socket behind here; blockd does not
                self.assertFalse(os.path.exists(sock2))
        ours, peer = results['blockd'], results['qemu-storage-daemon']
        self.assert_same_failure(ours, peer)
        self.assertEqual(ours.stderr,
                         'blockd: cannot create PID file: Cannot lock pid '
                         'file: Resource temporarily unavailable\n')
        with h.QmpClient(sock) as client:
            client.command('query-version')
        self.assertEqual(first.stop(), 0, first.stderr())
        self.assertFalse(os.path.exists(pidfile))

    def refuses_pidfile(self, make):
        """`make(pidfile)` puts something not a regular file at the pid
        file path: blockd must refuse it by name, start nothing, and leave
        what is there (and what it points to) untouched."""
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        make(pidfile)
        before = os.lstat(pidfile)
        res = self.run_blockd(['--pidfile', pidfile] + qmp_args(sock))
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stderr,
                         f"blockd: cannot create PID file: Cannot use "
                         f"'{pidfile}' as pid file: not a regular file\n")
        after = os.lstat(pidfile)
        self.assertEqual((after.st_ino, after.st_mode, after.st_mtime_ns),
                         (before.st_ino, before.st_mode, before.st_mtime_ns))
        self.assertFalse(os.path.exists(sock))

    def test_symlink_refused(self):
        """A symlink at the pid file path (qemu-storage-daemon 7.2
        follows it, writes its pid into the target and deletes the target
        at exit) is refused; the target keeps its content."""
        target = os.path.join(self.tmpdir, 'precious')
        with open(target, 'w', encoding='ascii') as f:
            f.write('keep me\n')
        self.refuses_pidfile(lambda path: os.symlink(target, path))
        with open(target, encoding='ascii') as f:
            self.assertEqual(f.read(), 'keep me\n')
        # a dangling symlink must not create its target either
        dangling = os.path.join(self.tmpdir, 'nowhere')
        os.unlink(os.path.join(self.tmpdir, 'd.pid'))
        self.refuses_pidfile(lambda path: os.symlink(dangling, path))
        self.assertFalse(os.path.lexists(dangling))

    def test_fifo_refused(self):
        """A FIFO at the path neither blocks start-up nor is used."""
        self.refuses_pidfile(os.mkfifo)

    def test_second_instance_blocked_by_blockd(self):
        self.second_instance(h.BLOCKD)

    def test_second_instance_blocked_by_qsd(self):
        """The lock is QEMU's: blockd respects one held by qsd."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        self.second_instance(qsd)

    def test_create_failure_like_peer(self):
        (ours, ours_dir), (peer, _) = self.run_both(
            qmp_args('qmp.sock') + ['--pidfile', 'nodir/d.pid'])
        self.assert_same_failure(ours, peer)
        self.assertEqual(ours.stderr,
                         "blockd: cannot create PID file: Could not create "
                         "'nodir/d.pid': No such file or directory\n")
        self.assertEqual(os.listdir(ours_dir), [])

    def test_stale_file_is_taken_over(self):
        """An unlocked pid file left by a crash is simply rewritten."""
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        with open(pidfile, 'w', encoding='ascii') as f:
            f.write('999999999\nrubbish\n')
        d = self.start_daemon(['--pidfile', pidfile])
        def rewritten():
            with open(pidfile, encoding='ascii') as f:
                return f.read() == f'{d.pid}\n'
        d.wait_until(rewritten, 'the new pid file')
        self.assertEqual(d.stop(), 0, d.stderr())
        self.assertFalse(os.path.exists(pidfile))


class Termination(LifecycleCase):
    """quit, SIGINT, SIGHUP and SIGTERM: exit status 0, sockets and the
    pid file removed, also with a QMP client connected."""

    def start(self):
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon(['--pidfile', pidfile] + qmp_args(sock))
        d.wait_until(lambda: os.path.exists(pidfile), 'the pid file')
        return d, sock, pidfile

    def check_signal(self, sig, with_client):
        d, sock, pidfile = self.start()
        client = None
        if with_client:
            client = self.qmp(sock)
            client.command('query-version')
        d.proc.send_signal(sig)
        self.assertEqual(d.wait(), 0, d.stderr())
        self.assertEqual(d.stderr(), '')
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(os.path.exists(sock))
        if client:
            with self.assertRaises((ConnectionError, OSError)):
                client.receive()

    def test_signals(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            for with_client in (False, True):
                with self.subTest(signal=sig.name, client=with_client):
                    self._tmpdir = self.make_tmpdir()
                    self.check_signal(sig, with_client)

    def test_quit(self):
        d, sock, pidfile = self.start()
        client = self.qmp(sock)
        self.assertEqual(client.command('quit'), {})
        self.assertEqual(d.wait(), 0, d.stderr())
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(os.path.exists(sock))


class RefusedOptions(LifecycleCase):
    """An option that fails (a missing image) or whose subsystem is not
    there yet stops start-up naming the option, and the failure undoes
    what earlier options created."""

    def test_refusal_leaves_nothing(self):
        for option, value, message in (
                ('--blockdev', 'driver=file,node-name=n,filename=no.img',
                 "blockd: --blockdev driver=file,node-name=n,filename=no.img:"
                 " Could not open 'no.img': No such file or directory\n"),
                ('--export', 'type=bogus,id=e,node-name=n',
                 "blockd: --export type=bogus,id=e,node-name=n: Parameter "
                 "'type' does not accept value 'bogus'\n"),
                ('--nbd-server', 'addr.type=unix,addr.path=no/nbd.sock',
                 'blockd: --nbd-server addr.type=unix,addr.path=no/nbd.sock:'
                 ' Failed to bind socket to no/nbd.sock: No such file or '
                 'directory\n')):
            with self.subTest(option=option):
                self._tmpdir = self.make_tmpdir()
                res = self.run_blockd(['--pidfile', 'd.pid'] +
                                      qmp_args('qmp.sock') +
                                      [option, value])
                self.assertEqual(res.returncode, 1)
                self.assertEqual(res.stderr, message)
                self.assertEqual(os.listdir(self.tmpdir), [])


if __name__ == '__main__':
    h.main()
