"""systemd integration, which qemu-storage-daemon does not have:
readiness notification to NOTIFY_SOCKET and socket activation
(LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), each tested with a test-side
socket standing in for the service manager."""

import os
import signal
import socket
import subprocess
import sys
import time

import blockd_harness as h

# Stands in for systemd's exec step: fd 3 is the listening socket, and
# LISTEN_PID is set after the fork so that it is the daemon's own pid.
EXEC_WRAPPER = '''
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
env = dict(os.environ)
env['LISTEN_PID'] = str(os.getpid() + int(sys.argv[2]))
os.execve(sys.argv[3], sys.argv[3:], env)
'''


def qmp_args(path):
    return ['--chardev', f'socket,id=m,path={path},server=on,wait=off',
            '--monitor', 'm']


class Notify(h.TestCase):

    def notify_socket(self, abstract=False):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        if abstract:
            name = f'blockd-test-notify-{os.getpid()}-{id(self)}'
            sock.bind('\0' + name)
            address = '@' + name
        else:
            address = os.path.join(self.tmpdir, 'notify.sock')
            sock.bind(address)
        sock.settimeout(h.START_TIMEOUT)
        return sock, address

    def check(self, abstract):
        sock, address = self.notify_socket(abstract)
        qmp = os.path.join(self.tmpdir, 'qmp.sock')
        pidfile = os.path.join(self.tmpdir, 'd.pid')
        env = h.child_env(NOTIFY_SOCKET=address)
        d = self.start_daemon(['--pidfile', pidfile] + qmp_args(qmp),
                              env=env)
        self.assertEqual(sock.recv(4096), b'READY=1')
        # ready means: pid file written, QMP accepting
        self.assertTrue(os.path.exists(pidfile))
        with h.QmpClient(qmp) as client:
            client.command('query-version')
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(sock.recv(4096), b'STOPPING=1')
        self.assertEqual(d.wait(), 0, d.stderr())
        self.assertEqual(d.stderr(), '')

    def test_ready_and_stopping(self):
        self.check(abstract=False)

    def test_abstract_socket(self):
        self.check(abstract=True)

    def test_no_ready_on_failed_start(self):
        sock, address = self.notify_socket()
        res = self.run_blockd(['--monitor', 'nosuch'],
                              env=h.child_env(NOTIFY_SOCKET=address))
        self.assertEqual(res.returncode, 1)
        sock.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            sock.recv(4096)


class SocketActivation(h.TestCase):

    def activate(self, args, fdnames='qmp', pid_offset=0):
        """Bind a listening socket, start blockd with it as fd 3 the way
        systemd would, and return (daemon process, socket path)."""
        path = os.path.join(self.tmpdir, 'activated.sock')
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.listen()
        env = h.child_env(LISTEN_FDS='1', LISTEN_FDNAMES=fdnames)
        err_path = os.path.join(self.tmpdir, 'blockd.stderr')
        with open(err_path, 'wb') as err:
            proc = subprocess.Popen(
                [sys.executable, '-c', EXEC_WRAPPER, str(listener.fileno()),
                 str(pid_offset), h.BLOCKD] + list(args),
                env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                pass_fds=[listener.fileno()], cwd=self.tmpdir)

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)
        # only the daemon holds the socket now, as with systemd's copy
        # closed: a failed start-up shows as a refused connection
        listener.close()
        proc.err_path = err_path
        return proc, path

    def stderr(self, proc):
        with open(proc.err_path, encoding='utf-8') as f:
            return f.read()

    def test_named_fd_serves_qmp(self):
        proc, path = self.activate(
            ['--chardev', 'socket,id=m,fd=qmp,server=on,wait=off',
             '--monitor', 'm'])
        with h.QmpClient(path) as client:
            self.assertEqual(client.command('query-version')['qemu']['major'],
                             7)
            chardevs = client.command('query-chardev')
            # connected, it shows the passed socket's own address
            self.assertEqual(chardevs, [{
                'label': 'm', 'filename': f'unix:{path},server=on',
                'frontend-open': True}])
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(h.STOP_TIMEOUT), 0, self.stderr(proc))
        # the socket file belongs to the service manager: left alone
        self.assertTrue(os.path.exists(path))

    def test_nbd_server_on_named_fd(self):
        """--nbd-server addr.type=fd,addr.str=NAME takes the passed socket
        (an NBD plugin asks the core for it by name)."""
        proc, path = self.activate(
            ['--blockdev', 'null-co,node-name=n,size=1048576,read-zeroes=on',
             '--nbd-server', 'addr.type=fd,addr.str=nbd',
             '--export', 'nbd,id=e,node-name=n,name=e'], fdnames='nbd')
        uri = f'nbd+unix:///e?socket={path}'
        deadline = time.monotonic() + h.START_TIMEOUT
        while True:
            res = subprocess.run(['nbdinfo', '--size', uri],
                                 capture_output=True, text=True)
            if res.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual((res.returncode, res.stdout), (0, '1048576\n'),
                         res.stderr + self.stderr(proc))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(h.STOP_TIMEOUT), 0, self.stderr(proc))
        # the socket file belongs to the service manager: left alone
        self.assertTrue(os.path.exists(path))

    def test_chardev_add_by_name(self):
        """chardev-add with an fd address whose str is a passed name."""
        qmp = os.path.join(self.tmpdir, 'qmp.sock')
        proc, path = self.activate(qmp_args(qmp), fdnames='extra')
        client = None
        for _ in range(200):
            try:
                client = self.qmp(qmp)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                proc.poll()
                self.assertIsNone(proc.returncode, self.stderr(proc))
                time.sleep(0.05)
        client.command('chardev-add', id='x', backend={
            'type': 'socket', 'data': {
                'addr': {'type': 'fd', 'data': {'str': 'extra'}},
                'server': True, 'wait': False}})
        # a name is handed out once
        reply = client.execute('chardev-add', {'id': 'y', 'backend': {
            'type': 'socket', 'data': {
                'addr': {'type': 'fd', 'data': {'str': 'extra'}},
                'server': True, 'wait': False}}})
        self.assertEqual(reply['error']['desc'],
                         "Failed to add chardev 'y': File descriptor named "
                         "'extra' has not been found")
        client.command('quit')
        self.assertEqual(proc.wait(h.STOP_TIMEOUT), 0, self.stderr(proc))

    def test_wrong_listen_pid_is_ignored(self):
        """LISTEN_PID of another process: the fds are not ours."""
        proc, path = self.activate(
            ['--chardev', 'socket,id=m,fd=qmp,server=on,wait=off',
             '--monitor', 'm'], pid_offset=1)
        self.assertEqual(proc.wait(h.STOP_TIMEOUT), 1)
        # not activated: the name is read as qemu-storage-daemon reads it
        self.assertEqual(
            self.stderr(proc),
            "blockd: --chardev socket,id=m,fd=qmp,server=on,wait=off: "
            "Unable to parse FD number qmp\n")

    def test_unknown_name(self):
        proc, path = self.activate(
            ['--chardev', 'socket,id=m,fd=other,server=on,wait=off',
             '--monitor', 'm'])
        self.assertEqual(proc.wait(h.STOP_TIMEOUT), 1)
        self.assertIn("File descriptor named 'other' has not been found",
                      self.stderr(proc))


if __name__ == '__main__':
    h.main()
