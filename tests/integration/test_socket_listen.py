#!/usr/bin/python3
"""Listening on every SocketAddress form QEMU 7.2 accepts, through the one
implementation (<blockd/socket.h>) that nbd-server-start, --nbd-server
and socket chardevs share: replies and errors compared with
qemu-storage-daemon 7.2, and clients connecting for real (nbdinfo over
TCP, a Python client on abstract UNIX names, a vsock listener opened).

Unlike qsd, whose UNIX socket files take their mode from the umask
(0777 at umask 000, open to every local user), blockd makes them 0660 or
narrower: checked here for each kind of user of the listener.
"""
import stat
import os
import re
import socket
import subprocess
import time

import blockd_harness as h

NBD_MAGIC = b'NBDMAGIC'


def legacy(addr):
    """The flat SocketAddress @addr in the legacy form (under 'data')."""
    rest = dict(addr)
    return {'type': rest.pop('type'), 'data': rest}


def held_port():
    """A listening TCP socket on 127.0.0.1 whose port is free above it
    (checked, not guaranteed): (socket, port)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        s.listen()
        port = s.getsockname()[1]
        if port + 8 > 65535:
            s.close()
            continue
        free = True
        for p in range(port + 1, port + 8):
            t = socket.socket()
            try:
                t.bind(('127.0.0.1', p))
            except OSError:
                free = False
            t.close()
        if free:
            return s, port
        s.close()
    raise AssertionError('no free port range found')


def nbd_greeting(family, address):
    """Connect and read the first 8 bytes an NBD server sends."""
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(h.START_TIMEOUT)
        c.connect(address)
        data = b''
        while len(data) < 8:
            chunk = c.recv(8 - len(data))
            if not chunk:
                break
            data += chunk
        return data


class SocketListen(h.TestCase):

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(1 << 20)

    def start(self, qsd, extra=()):
        """A daemon with a QMP monitor and node 'f'; its QmpClient."""
        name = 'qsd' if qsd else 'blockd'
        qmp_sock = os.path.join(self.tmpdir, f'{name}.qmp')
        args = ['--chardev',
                f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f,filename={self.img}']
        env = h.child_env(TMPDIR=self.tmpdir)
        d = (self.start_qsd if qsd else self.start_daemon)(
            list(extra) + args, env=env)
        d.wait_for_socket_file(qmp_sock)
        return self.qmp(qmp_sock)

    def both(self):
        return [('blockd', self.start(False)), ('qsd', self.start(True))]

    # ---- nbd-server-start ----

    def test_nbd_server_start_replies(self):
        """Each address form gives qsd's reply; successes are stopped."""
        long_name = 'a' * 108
        cases = [
            {'type': 'inet', 'host': '127.0.0.1', 'port': '0',
             'ipv4': False, 'ipv6': False},
            {'type': 'inet', 'host': '127.0.0.1', 'port': '0',
             'ipv6': True},
            {'type': 'inet', 'host': '127.0.0.1', 'port': 'abc', 'to': 5},
            {'type': 'inet', 'host': '127.0.0.1', 'port': '1',
             'to': 70000},
            {'type': 'inet', 'host': 'nonexist.invalid', 'port': '1'},
            {'type': 'inet', 'host': 'localhost', 'port': '1',
             'numeric': True},
            {'type': 'inet', 'host': '127.0.0.1', 'port': 'nbd',
             'numeric': True},
            {'type': 'inet', 'host': '192.0.2.1', 'port': '5000'},
            {'type': 'inet', 'host': '192.0.2.1', 'port': '5000',
             'to': 5002},
            {'type': 'inet', 'host': '127.0.0.1', 'port': '0',
             'keep-alive': True},
            {'type': 'inet', 'host': '127.0.0.1', 'port': '0',
             'mptcp': True},
            {'type': 'inet', 'host': '127.0.0.1', 'port': ''},
            {'type': 'vsock', 'cid': 'x', 'port': '1'},
            {'type': 'vsock', 'cid': '1', 'port': '4294967296'},
            {'type': 'vsock', 'cid': '-1', 'port': '1'},
            {'type': 'fd', 'str': 'foo'},
            {'type': 'fd', 'str': '0'},
            {'type': 'unix', 'path': os.path.join(self.tmpdir, 'no', 'x')},
            {'type': 'unix', 'path': long_name, 'abstract': True},
            {'type': 'unix', 'path': long_name + 'b'},
        ]
        clients = self.both()
        for addr in cases:
            with self.subTest(addr=addr):
                replies = []
                for name, c in clients:
                    r = c.execute('nbd-server-start',
                                  {'addr': legacy(addr)})
                    r.pop('id', None)
                    replies.append(r)
                    if 'return' in r:
                        c.command('nbd-server-stop')
                self.assertEqual(replies[0], replies[1])

    def serve(self, c, addr):
        c.command('nbd-server-start', addr=legacy(addr))
        c.command('nbd-server-add', device='f')

    def test_inet_port_range(self):
        """With 'to', the first free port after a taken one is used."""
        for name, c in self.both():
            with self.subTest(daemon=name):
                held, port = held_port()
                self.addCleanup(held.close)
                self.serve(c, {'type': 'inet', 'host': '127.0.0.1',
                               'port': str(port), 'to': port + 6})
                out = self.run_command(
                    ['nbdinfo', '--size',
                     f'nbd://127.0.0.1:{port + 1}/f'])
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(out.stdout.strip(), str(1 << 20))
                # every port of the range taken
                r = c.execute('nbd-server-stop')
                self.assertIn('return', r)
                holders = [socket.socket() for _ in range(2)]
                for i, s in enumerate(holders):
                    self.addCleanup(s.close)
                    # the port just served may be in TIME_WAIT
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(('127.0.0.1', port + 1 + i))
                    s.listen()
                r = c.execute('nbd-server-start', {'addr': legacy(
                    {'type': 'inet', 'host': '127.0.0.1',
                     'port': str(port), 'to': port + 2})})
                self.assertEqual(
                    r['error']['desc'],
                    'Failed to find an available port: Address already '
                    'in use')

    def test_inet_options_serve(self):
        """keep-alive, mptcp, numeric and ipv4 listeners serve clients;
        keep-alive reaches the accepted connection."""
        c = self.start(False)
        for opts in ({'keep-alive': True}, {'mptcp': True},
                     {'numeric': True, 'ipv4': True}):
            with self.subTest(opts=opts):
                held, port = held_port()
                held.close()
                addr = {'type': 'inet', 'host': '127.0.0.1',
                        'port': str(port)}
                addr.update(opts)
                self.serve(c, addr)
                out = self.run_command(
                    ['nbdinfo', '--size', f'nbd://127.0.0.1:{port}/f'])
                self.assertEqual(out.returncode, 0, out.stderr)
                if opts.get('keep-alive'):
                    self.assertTrue(self.server_keepalive(port))
                c.command('nbd-server-stop')

    def server_keepalive(self, port):
        """Whether the server's end of a connection to @port has its
        keep-alive timer running (/proc/net/tcp's timer field 2)."""
        with socket.create_connection(('127.0.0.1', port)) as conn:
            local = conn.getsockname()[1]
            with open('/proc/net/tcp', encoding='ascii') as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    lport = int(fields[1].split(':')[1], 16)
                    rport = int(fields[2].split(':')[1], 16)
                    if lport == port and rport == local:
                        return fields[5].split(':')[0] == '02'
        return False

    def socket_modes(self, umask):
        """The modes of the UNIX socket files a blockd started under
        @umask makes: QMP's (--chardev), the NBD server's
        (--nbd-server), a chardev-add's and a temporary one's (a
        chardev-add with an empty path, made in TMPDIR)."""
        qmp_sock = os.path.join(self.tmpdir, f'qmp-{umask:o}.sock')
        nbd_sock = os.path.join(self.tmpdir, f'nbd-{umask:o}.sock')
        added = os.path.join(self.tmpdir, f'added-{umask:o}.sock')
        tmp = self.make_tmpdir()
        old = os.umask(umask)
        try:
            d = self.start_daemon(
                ['--chardev',
                 f'socket,id=m,path={qmp_sock},server=on,wait=off',
                 '--monitor', 'chardev=m',
                 '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}'],
                env=h.child_env(TMPDIR=tmp))
        finally:
            os.umask(old)
        d.wait_for_socket_file(qmp_sock)
        c = self.qmp(qmp_sock)
        for cid, path in (('added', added), ('tmp', '')):
            c.command('chardev-add', id=cid, backend={
                'type': 'socket', 'data': {
                    'addr': legacy({'type': 'unix', 'path': path}),
                    'server': True, 'wait': False}})
        made = [os.path.join(tmp, n) for n in os.listdir(tmp)]
        self.assertEqual(len(made), 1, made)
        modes = {}
        for key, path in (('qmp', qmp_sock), ('nbd', nbd_sock),
                          ('added', added), ('tmp', made[0])):
            st = os.lstat(path)
            self.assertTrue(stat.S_ISSOCK(st.st_mode), path)
            modes[key] = stat.S_IMODE(st.st_mode)
        # still a server one connects to
        self.assertEqual(nbd_greeting(socket.AF_UNIX, nbd_sock), NBD_MAGIC)
        return modes

    def test_unix_socket_files_are_not_world_accessible(self):
        self.assertEqual(self.socket_modes(0o000),
                         dict.fromkeys(('qmp', 'nbd', 'added', 'tmp'),
                                       0o660))
        # a narrower umask narrows them further
        self.assertEqual(self.socket_modes(0o077),
                         dict.fromkeys(('qmp', 'nbd', 'added', 'tmp'),
                                       0o600))

    def test_unix_abstract(self):
        """Abstract names, tight and not, reached by a Python client."""
        for name, c in self.both():
            for tight in (True, False):
                with self.subTest(daemon=name, tight=tight):
                    label = f'blockd-test-{os.getpid()}-{name}-{tight}'
                    self.serve(c, {'type': 'unix', 'path': label,
                                   'abstract': True, 'tight': tight})
                    address = '\0' + label
                    if not tight:
                        address += '\0' * (107 - len(label))
                    self.assertEqual(
                        nbd_greeting(socket.AF_UNIX, address.encode()),
                        NBD_MAGIC)
                    c.command('nbd-server-stop')

    def test_vsock(self):
        """A vsock listener opens on any cid (a loopback client works
        only where the kernel has vsock loopback: tried, not required)."""
        for name, c in self.both():
            with self.subTest(daemon=name):
                port = 0x626c6b00 + (os.getpid() & 0xff) + (
                    0 if name == 'blockd' else 0x100)
                self.serve(c, {'type': 'vsock', 'cid': '4294967295',
                               'port': str(port)})
                # the port is taken now: a second listener cannot bind
                s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
                with s, self.assertRaises(OSError):
                    s.bind((socket.VMADDR_CID_ANY, port))
                c.command('nbd-server-stop')

    def test_cli_nbd_server(self):
        """--nbd-server: qsd's messages on stderr, exit status 1."""
        cases = [
            'addr.type=fd,addr.str=foo',
            'addr.type=fd,addr.str=3x',
            'addr.type=fd,addr.str=99',
            'addr.type=inet,addr.host=127.0.0.1,addr.port=20000,'
            'addr.to=19000',
            'addr.type=inet,addr.host=127.0.0.1,addr.port=1,'
            'addr.ipv4=off,addr.ipv6=off',
            'addr.type=vsock,addr.cid=x,addr.port=5',
            'addr.type=unix,addr.path=no/such/dir',
        ]
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        for arg in cases:
            with self.subTest(arg=arg):
                ours = self.run_blockd(['--nbd-server', arg], timeout=20)
                theirs = self.run_command([qsd, '--nbd-server', arg],
                                          timeout=20)
                self.assertEqual(ours.returncode, 1)
                self.assertEqual(theirs.returncode, 1)
                self.assertEqual(ours.stderr.split(': ', 1)[1],
                                 theirs.stderr.split(': ', 1)[1])

    def test_cli_fd_not_yet_listening(self):
        """--nbd-server addr.type=fd with a bound socket that does not
        listen yet: made to listen, as QEMU does."""
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        qmp_sock = os.path.join(self.tmpdir, 'fd.qmp')
        proc = subprocess.Popen(
            [h.BLOCKD, '--chardev',
             f'socket,id=m,path={qmp_sock},server=on,wait=off',
             '--monitor', 'chardev=m',
             '--blockdev', f'driver=file,node-name=f,filename={self.img}',
             '--nbd-server', f'addr.type=fd,addr.str={s.fileno()}',
             '--export', 'type=nbd,id=e,node-name=f'],
            pass_fds=(s.fileno(),), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.tmpdir)
        self.addCleanup(proc.wait)
        self.addCleanup(h.stop_pid, proc.pid)
        deadline = time.monotonic() + h.START_TIMEOUT
        while not os.path.exists(qmp_sock):
            self.assertIsNone(proc.poll(), 'blockd exited')
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        self.qmp(qmp_sock)      # retries until the monitor listens
        s.close()
        out = self.run_command(['nbdinfo', '--size',
                                f'nbd://127.0.0.1:{port}/f'])
        self.assertEqual(out.returncode, 0, out.stderr)

    # ---- chardevs ----

    def chardev_filename(self, c, cid):
        for info in c.command('query-chardev'):
            if info['label'] == cid:
                return info['filename']
        raise AssertionError(f'no chardev {cid}')

    def test_chardev_add_forms(self):
        """chardev-add on each form: qsd's query-chardev filename (names
        and ports that differ between the two runs normalised)."""
        results = {}
        for name, c in self.both():
            held, port = held_port()
            self.addCleanup(held.close)
            label = f'blockd-test-{os.getpid()}-{name}'
            vport = 0x626c6c00 + (os.getpid() & 0xff) + (
                0 if name == 'blockd' else 0x100)
            forms = {
                'range': {'type': 'inet', 'host': '127.0.0.1',
                          'port': str(port), 'to': port + 6,
                          'ipv4': True},
                'any': {'type': 'inet', 'host': '', 'port': '0'},
                'abstract': {'type': 'unix', 'path': label,
                             'abstract': True},
                'loose': {'type': 'unix', 'path': label + 'l',
                          'abstract': True, 'tight': False},
                'tmp': {'type': 'unix', 'path': ''},
                'vsock': {'type': 'vsock', 'cid': '4294967295',
                          'port': str(vport)},
                'fd': {'type': 'fd', 'str': 'x'},
                'bad': {'type': 'vsock', 'cid': '1', 'port': 'p'},
            }
            out = {}
            for key, addr in forms.items():
                r = c.execute('chardev-add', {'id': key, 'backend': {
                    'type': 'socket', 'data': {
                        'addr': legacy(addr), 'server': True,
                        'wait': False}}})
                if 'error' in r:
                    out[key] = r['error']
                    continue
                f = self.chardev_filename(c, key)
                f = f.replace(label, 'LABEL').replace(str(vport), 'VPORT')
                f = f.replace(self.tmpdir + '/', 'TMP/')
                f = re.sub(r'TMP/(qemu|blockd)-socket-\w{6}', 'TMP/SOCKET',
                           f)
                f = re.sub(r'0\.0\.0\.0:\d+', '0.0.0.0:PORT', f)
                # the range's first port is held: the next one is taken
                f = f.replace(f'127.0.0.1:{port + 1},', '127.0.0.1:NEXT,')
                out[key] = f
                c.command('chardev-remove', id=key)
            results[name] = out
        self.assertEqual(results['blockd'], results['qsd'])
        self.assertEqual(results['blockd']['range'],
                         'disconnected:tcp:127.0.0.1:NEXT,server=on')
        # the temporary socket file went with its chardev
        self.assertFalse([n for n in os.listdir(self.tmpdir)
                          if n.startswith('blockd-socket-')])

    def test_chardev_flat_options(self):
        """--chardev with to/ipv4 and abstract/tight: qsd's filenames."""
        results = {}
        for name in ('blockd', 'qsd'):
            held, port = held_port()
            self.addCleanup(held.close)
            label = f'blockd-test-{os.getpid()}-{name}'
            c = self.start(name == 'qsd', extra=[
                '--chardev', f'socket,id=r,host=127.0.0.1,port={port},'
                f'to={port + 6},ipv4=on,server=on,wait=off',
                '--chardev', f'socket,id=a,path={label},abstract=on,'
                'tight=off,server=on,wait=off'])
            results[name] = [
                self.chardev_filename(c, 'r').replace(
                    f':{port + 1},', ':NEXT,'),
                self.chardev_filename(c, 'a').replace(label, 'LABEL')]
        self.assertEqual(results['blockd'], results['qsd'])
        self.assertEqual(results['blockd'][0],
                         'disconnected:tcp:127.0.0.1:NEXT,server=on')


if __name__ == '__main__':
    h.main()
