#!/usr/bin/python3
"""Socket chardevs in client mode (server=off, reconnect), and a QMP
monitor on one: the daemon connects to a QMP client that listens, as
QEMU's Python library qemu.qmp does it for every iotest that starts
qemu-storage-daemon (`--chardev socket,id=mon,path=SOCK` and
`--monitor chardev=mon`, the library listening on SOCK).

Debian has no qemu.qmp package: the listening side here does what
qemu.qmp's accept() and negotiation do on the wire (bind and listen
before the daemon starts, accept, read the greeting, send
qmp_capabilities enabling 'oob' when offered, ids of the form
"__qmp#00001").  Every scenario runs against blockd and against
qemu-storage-daemon 7.2 and the replies are compared.
"""
import json
import os
import re
import select
import socket
import time

import blockd_harness as h


def legacy_unix(path, **extra):
    data = {'addr': {'type': 'unix', 'data': {'path': path}}}
    data.update(extra)
    return {'type': 'socket', 'data': data}


def legacy_inet(host, port, **extra):
    data = {'addr': {'type': 'inet',
                     'data': {'host': host, 'port': str(port)}}}
    data.update(extra)
    return {'type': 'socket', 'data': data}


class Listener:
    """The listening end a client-mode chardev connects to."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(1)
        self.address = self.sock.getsockname()

    def close(self):
        self.sock.close()

    def accept(self, daemon, timeout=h.START_TIMEOUT):
        """The daemon's next connection, as a socket; fails if the daemon
        exits or nothing comes within @timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if ready:
                conn, _ = self.sock.accept()
                conn.settimeout(timeout)
                return conn
            if not daemon.running():
                raise daemon._failure('exited before connecting')
            if time.monotonic() > deadline:
                raise daemon._failure('did not connect')


class ListeningQmp(h.QmpClient):
    """A QMP session on a connection the daemon made: qemu.qmp's side."""

    def __init__(self, conn):
        # h.QmpClient connects by itself: only its reading is reused
        self.path = 'accepted connection'
        self.events = []
        self._sock = conn
        self._buf = b''
        self._next_id = 0
        self.greeting = self.receive()

    def negotiate(self):
        """What qemu.qmp sends: oob enabled when the greeting offers it."""
        args = {}
        if 'oob' in self.greeting['QMP']['capabilities']:
            args['enable'] = ['oob']
        return self.execute_qmp('qmp_capabilities', args)

    def execute_qmp(self, name, arguments=None):
        """execute() with an id as qemu.qmp makes them; the reply with the
        id removed after checking it."""
        self._next_id += 1
        ident = f'__qmp#{self._next_id:05d}'
        reply = self.execute(name, arguments, id=ident)
        assert reply.pop('id') == ident, reply
        return reply


class ChardevClientTest(h.TestCase):

    def daemons(self):
        """(name, start) for blockd and qemu-storage-daemon."""
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        return [('blockd', lambda args: self.start_daemon(plugins + args)),
                ('qsd', self.start_qsd)]

    def server_monitor(self, start, workdir):
        """A daemon with an ordinary server-mode monitor: its QmpClient."""
        sock = os.path.join(workdir, 'qmp.sock')
        d = start(['--chardev', f'socket,id=qmp,path={sock},server=on,'
                   'wait=off', '--monitor', 'chardev=qmp'])
        d.wait_for_socket_file(sock)
        return d, self.qmp(sock)

    def test_monitor_on_client_socket_unix(self):
        """The daemon connects to a listening qemu.qmp-like client: the
        greeting, the negotiation with oob, commands with ids, and what
        query-chardev says of the connection, as qsd does."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            path = os.path.join(workdir, 'qmp.sock')
            listener = Listener(socket.AF_UNIX, path)
            self.addCleanup(listener.close)
            d = start(['--chardev', f'socket,id=mon,path={path}',
                       '--monitor', 'chardev=mon'])
            qmp = ListeningQmp(listener.accept(d))
            self.addCleanup(qmp.close)
            self.assertEqual(qmp.greeting['QMP']['capabilities'], ['oob'])
            before = qmp.execute_qmp('query-chardev')
            results[name] = [
                before,
                qmp.negotiate(),
                qmp.execute_qmp('query-chardev'),
                qmp.execute_qmp('query-chardev-backends')['return'] and None,
                qmp.execute_qmp('chardev-remove', {'id': 'mon'}),
            ]
            self.assertEqual(results[name][2]['return'],
                             [{'label': 'mon', 'filename': 'unix:',
                               'frontend-open': True}])
        self.assertEqual(results['blockd'], results['qsd'])

    def test_reconnect_tcp(self):
        """reconnect=1 on TCP: after the client closes the connection the
        daemon connects again about a second later and greets anew; with
        nobody listening it reports the failure once and keeps trying."""
        for name, start in self.daemons():
            with self.subTest(daemon=name):
                listener = Listener(socket.AF_INET, ('127.0.0.1', 0))
                port = listener.address[1]
                d = start(['--chardev', f'socket,id=mon,host=127.0.0.1,'
                           f'port={port},reconnect=1',
                           '--monitor', 'chardev=mon'])
                conn = listener.accept(d)
                qmp = ListeningQmp(conn)
                self.assertEqual(qmp.negotiate(), {'return': {}})
                local = conn.getpeername()
                info = qmp.execute_qmp('query-chardev')['return']
                self.assertEqual(info, [{
                    'label': 'mon', 'frontend-open': True,
                    'filename': f'tcp:127.0.0.1:{local[1]} <-> '
                                f'127.0.0.1:{port}'}])
                qmp.close()

                t0 = time.monotonic()
                qmp = ListeningQmp(listener.accept(d))
                waited = time.monotonic() - t0
                self.assertGreater(waited, 0.5)
                self.assertIn('QMP', qmp.greeting)
                # a new session: capabilities negotiation again
                self.assertEqual(qmp.execute_qmp('query-chardev')['error'],
                                 {'class': 'CommandNotFound',
                                  'desc': "Expecting capabilities "
                                          "negotiation with "
                                          "'qmp_capabilities'"})
                qmp.close()
                listener.close()

                # nobody listens: one message, then a connection later
                pattern = (f"Unable to connect character device mon: "
                           f"Failed to connect to '127.0.0.1:{port}': "
                           f"Connection refused")
                d.wait_until(lambda: pattern in d.stderr(),
                             'the connection failure message')
                time.sleep(2.5)
                listener = Listener(socket.AF_INET, ('127.0.0.1', port))
                qmp = ListeningQmp(listener.accept(d))
                self.assertEqual(qmp.negotiate(), {'return': {}})
                self.assertEqual(d.stderr().count(pattern), 1,
                                 d.stderr())
                qmp.close()
                listener.close()

    def test_chardev_add_client(self):
        """chardev-add of client sockets over a monitor: connected,
        refused, reconnecting, the options a client refuses, and a
        connection the peer closes; replies compared with qsd's."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            d, qmp = self.server_monitor(start, workdir)
            peer_path = os.path.join(workdir, 'peer.sock')
            peer = Listener(socket.AF_UNIX, peer_path)
            self.addCleanup(peer.close)
            refused = Listener(socket.AF_INET, ('127.0.0.1', 0))
            refused_port = refused.address[1]
            refused.close()
            absent = os.path.join(workdir, 'absent.sock')

            def add(ident, backend):
                return qmp.execute('chardev-add', {'id': ident,
                                                   'backend': backend})

            out = [
                add('c0', legacy_unix(absent, server=False)),
                add('c1', legacy_inet('127.0.0.1', refused_port,
                                      server=False)),
                add('c2', legacy_unix(peer_path, server=False, wait=False)),
                add('c3', legacy_unix(peer_path, reconnect=1)),
                add('c4', legacy_unix(peer_path, server=False,
                                      reconnect='1')),
                add('c5', legacy_unix(absent, server=False, reconnect=5)),
                add('c6', legacy_unix(peer_path, server=False)),
            ]
            conn = peer.accept(d)

            def chardevs():
                return sorted(qmp.command('query-chardev'),
                              key=lambda c: c['label'])
            out.append(chardevs())
            conn.close()
            d.wait_until(lambda: chardevs()[1]['filename'].startswith(
                'disconnected:'), 'c6 to notice the peer left')
            out.append(chardevs())
            # the QOM tree's view of a client socket
            out.append(qmp.execute('qom-list', {'path': 'c6'}))
            out.append(qmp.execute('qom-get', {'path': '/chardevs/c6',
                                               'property': 'addr'}))
            out.append(qmp.execute('qom-get', {'path': '/chardevs/c6',
                                               'property': 'connected'}))
            out.append(qmp.execute('qom-get', {'path': '/chardevs/c5',
                                               'property': 'addr'}))
            out.append(qmp.execute('qom-get', {'path': '/chardevs/c5',
                                               'property': 'type'}))
            out.append(qmp.execute('chardev-remove', {'id': 'c6'}))
            out.append(qmp.execute('chardev-remove', {'id': 'c5'}))
            out.append(chardevs())
            results[name] = json.loads(
                json.dumps(out).replace(workdir, 'WORKDIR')
                .replace(f':{refused_port}', ':PORT'))
        self.assertEqual(results['blockd'], results['qsd'])
        self.assertEqual(results['blockd'][0]['error']['desc'],
                         "Failed to add chardev 'c0': Failed to connect to "
                         "'WORKDIR/absent.sock': No such file or directory")

    def test_cli_errors(self):
        """--chardev's client-mode errors, word for word as qsd's."""
        workdir = self.tmpdir
        absent = os.path.join(workdir, 'absent.sock')
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        for extra in [',wait=off', ',server=on,reconnect=2', ',reconnect=x',
                      ',reconnect=-1', '']:
            with self.subTest(extra=extra):
                args = ['--chardev', f'socket,id=m,path={absent}{extra}',
                        '--monitor', 'chardev=m']
                ours = self.run_blockd(args)
                theirs = self.run_command([qsd] + args)
                self.assertEqual(ours.returncode, 1)
                self.assertEqual(theirs.returncode, 1)
                self.assertEqual(
                    re.sub(r'^blockd: ', '', ours.stderr),
                    re.sub(r'^qemu-storage-daemon: ', '', theirs.stderr))


if __name__ == '__main__':
    h.main()
