#!/usr/bin/python3
"""The NBD server (plugins/export-nbd) driven by real NBD clients, side
by side with qemu-storage-daemon 7.2 where the answer must be the same.

- qemu-io and qemu-img read and write through nbd+unix:// and
  nbd://127.0.0.1:PORT; nbdcopy copies the whole export byte for byte;
- nbdinfo --list --json, --map and --can multi-conn give what qsd gives
  for the same image, read-only and writable;
- max-connections holds further clients before the greeting, as qsd;
- fio's nbd engine runs a random read/write job without errors;
- 2000 random writes through python3-libnbd leave the image equal to a
  reference kept in memory;
- hostile clients on raw sockets (bad magic, huge lengths, unknown
  options and commands, requests past the end, a disconnect in the
  middle of a write) end at most their own connection, and clients that
  never read their replies do not hold up the daemon's exit;
- the QMP commands (nbd-server-start/-stop/-add/-remove), a listening
  socket passed as a file descriptor, and --nbd-server without the
  plugin.
"""

import json
import os
import random
import socket
import struct
import subprocess
import time

import nbd

import blockd_harness as h
from blockd_harness import free_port, recv_exact

SIZE = 16 << 20
NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_REP_MAGIC = 0x3e889045565a9
NBD_REQUEST_MAGIC = 0x25609513
NBD_SIMPLE_REPLY_MAGIC = 0x67446698


class NbdCase(h.TestCase):

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(SIZE)
            f.seek(0)
            f.write(b'\x55' * (1 << 20))
            f.seek(5 << 20)
            f.write(os.urandom(3 << 20))

    def start(self, qsd=False, writable=True, server=None, extra=(),
              env=None, export_opts=''):
        """Start a daemon exporting self.img as 'disk'; returns (daemon,
        nbd socket path, qmp socket path)."""
        name = 'qsd' if qsd else 'blockd'
        stamp = time.monotonic_ns()
        nbd_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.nbd')
        qmp_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.qmp')
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev',
                f'driver=file,node-name=f,filename={self.img}',
                '--nbd-server',
                server or f'addr.type=unix,addr.path={nbd_sock}',
                '--export', 'type=nbd,id=e,node-name=f,name=disk,'
                f'description=the test disk,writable={"on" if writable else "off"}'
                + export_opts]
        args = list(extra) + args
        if qsd:
            d = self.start_qsd(args, env=env)
        else:
            d = self.start_daemon(args, env=env)
        d.wait_for_socket_file(qmp_sock)
        self.wait_for_server(d, server or f'addr.path={nbd_sock}')
        return d, nbd_sock, qmp_sock

    def wait_for_server(self, d, server):
        """--nbd-server comes after the QMP chardev on the command line:
        wait for its socket too (a unix path to exist, a TCP port to
        accept), without taking a connection from a unix server."""
        opts = dict(kv.split('=', 1) for kv in server.split(',') if '=' in kv)
        if 'addr.path' in opts:
            d.wait_for_socket_file(opts['addr.path'])
        elif 'addr.port' in opts:
            def accepts():
                try:
                    socket.create_connection(
                        (opts.get('addr.host', '127.0.0.1'),
                         int(opts['addr.port'])), timeout=1).close()
                    return True
                except OSError:
                    return False
            d.wait_until(accepts, 'the NBD server port', h.START_TIMEOUT)

    def uri(self, sock, name='disk'):
        return f'nbd+unix:///{name}?socket={sock}'

    def run_ok(self, argv, **kwargs):
        res = self.run_command(argv, **kwargs)
        self.assertEqual(res.returncode, 0,
                         f'{argv} failed: {res.stdout}{res.stderr}')
        return res

    def image_bytes(self):
        with open(self.img, 'rb') as f:
            return f.read()


class Clients(NbdCase):

    def test_qemu_io_and_qemu_img_unix_and_tcp(self):
        port = free_port()
        d, sock, _ = self.start(
            server=f'addr.type=inet,addr.host=127.0.0.1,addr.port={port}')
        tcp = f'nbd://127.0.0.1:{port}/disk'
        self.run_ok(['qemu-io', '-f', 'raw', '-c', 'write -P 0x3c 1M 64k',
                     '-c', 'read -P 0x3c 1M 64k', '-c', 'read -P 0x55 0 4k',
                     tcp])
        self.run_ok(['qemu-img', 'compare', '-f', 'raw', '-F', 'raw',
                     tcp, self.img])
        info = json.loads(self.run_ok(['qemu-img', 'info', '--output=json',
                                       tcp]).stdout)
        self.assertEqual(info['virtual-size'], SIZE)
        d.stop()

        d, sock, _ = self.start()
        self.run_ok(['qemu-io', '-f', 'raw', '-c', 'write -z 1M 64k',
                     '-c', 'read -P 0 1M 64k', '-c', 'flush',
                     '-c', 'write -P 0x77 -f 15M 4k', self.uri(sock)])
        self.run_ok(['qemu-img', 'compare', '-f', 'raw', '-F', 'raw',
                     self.uri(sock), self.img])
        self.assertEqual(self.image_bytes()[15 << 20:(15 << 20) + 4096],
                         b'\x77' * 4096)

    def test_many_connections_to_an_export_in_an_iothread(self):
        """Each connection negotiates in the main loop, then moves to the
        export's iothread: the move must not let the iothread enter the
        connection before the main loop has let go of it (a race that
        once aborted blockd about once in ten connections)."""
        d, sock, _ = self.start(extra=['--object', 'iothread,id=io0'],
                                export_opts=',iothread=io0')
        for i in range(150):
            c = nbd.NBD()
            c.connect_uri(self.uri(sock))
            c.pwrite(bytes([i]) * 4096, i * 4096)
            self.assertEqual(c.pread(4096, i * 4096), bytes([i]) * 4096)
            c.shutdown()
            self.assertTrue(d.running(), d.stderr)
        with open(self.img, 'rb') as f:
            self.assertEqual(f.read(4096 * 150),
                             b''.join(bytes([i]) * 4096 for i in range(150)))

    def test_nbdcopy_whole_export(self):
        _, sock, _ = self.start(writable=False)
        out = os.path.join(self.tmpdir, 'copy.raw')
        self.run_ok(['nbdcopy', self.uri(sock), out])
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), self.image_bytes())

    def test_fio_random_rw(self):
        _, sock, _ = self.start()
        res = self.run_ok(['fio', '--name=nbd', '--ioengine=nbd',
                           f'--uri={self.uri(sock)}', '--rw=randrw',
                           '--bs=4k', '--size=8M', '--iodepth=16',
                           '--runtime=3', '--time_based',
                           '--output-format=json'], timeout=120)
        job = json.loads(res.stdout[res.stdout.index('{'):])['jobs'][0]
        self.assertEqual(job['error'], 0)
        self.assertGreater(job['read']['io_bytes'], 0)
        self.assertGreater(job['write']['io_bytes'], 0)

    def test_random_writes_match_reference(self):
        _, sock, _ = self.start()
        ref = bytearray(self.image_bytes())
        rnd = random.Random(1234)
        c = nbd.NBD()
        c.connect_uri(self.uri(sock))
        for _ in range(2000):
            length = rnd.randint(1, 256 << 10)
            off = rnd.randrange(0, SIZE - length)
            kind = rnd.random()
            if kind < 0.8:
                data = rnd.randbytes(length)
                c.pwrite(data, off, nbd.CMD_FLAG_FUA if kind < 0.1 else 0)
                ref[off:off + length] = data
            elif kind < 0.9:
                c.zero(length, off)
                ref[off:off + length] = bytes(length)
            else:
                self.assertEqual(c.pread(length, off),
                                 bytes(ref[off:off + length]))
        c.flush()
        # many requests in flight at once, answered out of order
        bufs = [nbd.Buffer(65536) for _ in range(64)]
        pending = {c.aio_pread(b, i * 65536): i for i, b in enumerate(bufs)}
        while pending:
            c.poll(-1)
            for k in [k for k in pending if c.aio_command_completed(k)]:
                del pending[k]
        for i, b in enumerate(bufs):
            self.assertEqual(b.to_bytearray(),
                             ref[i * 65536:(i + 1) * 65536])
        c.shutdown()
        self.assertEqual(self.image_bytes(), bytes(ref))


class VersusQsd(NbdCase):
    """nbdinfo's view of blockd and of qemu-storage-daemon 7.2."""

    def nbdinfo(self, sock, *args):
        out = self.run_ok(['nbdinfo'] + list(args) + [
            self.uri(sock) if '--list' not in args
            else f'nbd+unix://?socket={sock}']).stdout
        return out.replace(sock, 'SOCK')

    def test_nbdinfo_list_map_json(self):
        for writable in (False, True):
            with self.subTest(writable=writable):
                d1, s1, _ = self.start(writable=writable)
                d2, s2, _ = self.start(qsd=True, writable=writable)
                for args in (('--list', '--json'), ('--json',), ('--map',),
                             ('--map', '--totals')):
                    ours = self.nbdinfo(s1, *args)
                    theirs = self.nbdinfo(s2, *args)
                    self.assertEqual(ours, theirs, args)
                # every property nbdinfo 1.14 can test (its --can/--is:
                # later nbdinfo's --has): the same answer from both
                ro = subprocess.DEVNULL
                for prop in (('--can', 'connect'), ('--can', 'read'),
                             ('--can', 'write'), ('--can', 'cache'),
                             ('--can', 'df'), ('--can', 'fast-zero'),
                             ('--can', 'flush'), ('--can', 'fua'),
                             ('--can', 'multi-conn'), ('--can', 'trim'),
                             ('--can', 'zero'),
                             ('--can', 'structured-reply'),
                             ('--is', 'read-only'), ('--is', 'rotational'),
                             ('--is', 'tls')):
                    codes = [subprocess.run(['nbdinfo', *prop, self.uri(s)],
                                            stdout=ro, stderr=ro).returncode
                             for s in (s1, s2)]
                    self.assertEqual(codes[0], codes[1], prop)
                    self.assertIn(codes[0], (0, 2), prop)
                    if prop[1] == 'multi-conn':
                        self.assertEqual(codes[0], 0)
                    if prop[1] == 'write':
                        self.assertEqual(codes[0], 0 if writable else 2)
                d1.stop()
                d2.stop()

    def test_quit_sends_export_events_before_its_reply(self):
        """quit closes the exports first: BLOCK_EXPORT_DELETED reaches the
        client before quit's return, in qsd's order."""
        orders = []
        for qsd in (False, True):
            d, _, qmp_sock = self.start(qsd=qsd)
            qmp = self.qmp(qmp_sock)
            qmp.send({'execute': 'quit'})
            seen = []
            while True:
                try:
                    msg = qmp.receive()
                except ConnectionError:
                    break
                seen.append(msg.get('event', 'return' if 'return' in msg
                                    else msg))
            self.assertEqual(d.wait(), 0)
            orders.append(seen)
        self.assertEqual(orders[0], ['BLOCK_EXPORT_DELETED', 'return'])
        self.assertEqual(orders[0], orders[1])

    def test_max_connections(self):
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, _ = self.start(
                    qsd=qsd, server=f'addr.type=unix,addr.path='
                    f'{self.tmpdir}/mc{qsd}.sock,max-connections=1')
                sock = f'{self.tmpdir}/mc{qsd}.sock'
                first = socket.socket(socket.AF_UNIX)
                first.connect(sock)
                self.assertEqual(recv_exact(first, 8), b'NBDMAGIC')
                second = socket.socket(socket.AF_UNIX)
                second.connect(sock)
                second.settimeout(0.5)
                with self.assertRaises(socket.timeout):
                    second.recv(1)
                first.close()
                second.settimeout(10)
                self.assertEqual(recv_exact(second, 8), b'NBDMAGIC')
                second.close()
                # max-connections=1 also withdraws multi-conn
                res = subprocess.run(['nbdinfo', '--can', 'multi-conn',
                                      self.uri(sock)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                self.assertEqual(res.returncode, 2)

    def test_qmp_errors(self):
        replies = []
        for qsd in (False, True):
            _, sock, qmp_sock = self.start(qsd=qsd)
            q = self.qmp(qmp_sock)
            r = []
            r.append(q.execute('nbd-server-start', {
                'addr': {'type': 'unix', 'data': {'path': sock + 'x'}}}))
            r.append(q.execute('nbd-server-add', {'device': 'f',
                                                  'name': 'disk'}))
            r.append(q.execute('nbd-server-add', {'device': 'f',
                                                  'name': 'other'}))
            r.append(q.execute('nbd-server-remove', {'name': 'nope'}))
            r.append(q.execute('nbd-server-remove', {'name': 'other'}))
            r.append(q.execute('nbd-server-stop'))
            r.append(q.execute('nbd-server-stop'))
            r.append(q.execute('block-export-add', {
                'type': 'nbd', 'id': 'x', 'node-name': 'f'}))
            replies.append([json.dumps(x, sort_keys=True) for x in r])
            self.assertFalse(os.path.exists(sock), 'socket left after stop')
        self.assertEqual(replies[0], replies[1])

    def test_fd_listener(self):
        lsock = socket.socket(socket.AF_UNIX)
        path = os.path.join(self.tmpdir, 'passed.sock')
        lsock.bind(path)
        lsock.listen(4)
        self.addCleanup(lsock.close)
        fd = lsock.fileno()
        os.set_inheritable(fd, True)
        qmp_sock = os.path.join(self.tmpdir, 'fd.qmp')
        args = [h.BLOCKD, '--chardev',
                f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m', '--blockdev',
                f'driver=file,node-name=f,filename={self.img}',
                '--nbd-server', f'addr.type=fd,addr.str={fd}',
                '--export', 'type=nbd,id=e,node-name=f,name=disk']
        p = subprocess.Popen(args, pass_fds=(fd,), cwd=self.tmpdir,
                             stdin=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
        deadline = time.monotonic() + h.START_TIMEOUT
        while not os.path.exists(qmp_sock):
            self.assertIsNone(p.poll(), 'blockd exited')
            self.assertLess(time.monotonic(), deadline, 'blockd not ready')
            time.sleep(0.05)
        out = self.run_ok(['nbdinfo', '--size', self.uri(path)]).stdout
        self.assertEqual(int(out), SIZE)
        p.terminate()
        self.assertEqual(p.wait(10), 0)

    def test_tls_and_missing_plugin(self):
        _, sock, qmp_sock = self.start()
        q = self.qmp(qmp_sock)
        q.command('nbd-server-stop')
        r = q.execute('nbd-server-start', {
            'addr': {'type': 'unix', 'data': {'path': sock}},
            'tls-creds': 'tls0'})
        # TLS itself is tested in test_nbd_tls.py
        self.assertEqual(r['error']['desc'],
                         "No TLS credentials with id 'tls0'")
        empty = self.make_tmpdir()
        res = self.run_blockd(['--nbd-server', 'addr.type=unix,addr.path=x'],
                              env=h.child_env(BLOCKD_PLUGIN_DIR=empty))
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stderr,
                         "blockd: --nbd-server addr.type=unix,addr.path=x: "
                         "the NBD server is not available (no installed "
                         "plugin provides QMP command 'nbd-server-start')\n")


class Hostile(NbdCase):
    """Raw sockets that break the protocol; the daemon keeps serving."""

    def setUp(self):
        super().setUp()
        self.daemon, self.sock, _ = self.start()

    def connect(self, flags=3):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        self.addCleanup(s.close)
        # the socket file exists from bind() on, but refuses until listen()
        deadline = time.monotonic() + 10
        while True:
            try:
                s.connect(self.sock)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        greeting = recv_exact(s, 18)
        self.assertEqual(greeting[:16], b'NBDMAGICIHAVEOPT')
        s.sendall(struct.pack('>I', flags))
        return s

    def option(self, s, opt, data=b''):
        s.sendall(struct.pack('>QII', NBD_OPTS_MAGIC, opt, len(data)) + data)

    def option_reply(self, s):
        magic, opt, rep, length = struct.unpack('>QIII', recv_exact(s, 20))
        self.assertEqual(magic, NBD_REP_MAGIC)
        return opt, rep, recv_exact(s, length)

    def go(self, s):
        """NBD_OPT_GO on 'disk' without structured replies."""
        self.option(s, 7, struct.pack('>I', 4) + b'disk' +
                    struct.pack('>H', 0))
        while True:
            opt, rep, data = self.option_reply(s)
            if rep == 1:
                return
            self.assertEqual(rep, 3, data)

    def request(self, s, typ, off, length, data=b'', flags=0, cookie=1):
        s.sendall(struct.pack('>IHHQQI', NBD_REQUEST_MAGIC, flags, typ,
                              cookie, off, length) + data)

    def simple_reply(self, s, length=0):
        magic, err, cookie = struct.unpack('>IIQ', recv_exact(s, 16))
        self.assertEqual(magic, NBD_SIMPLE_REPLY_MAGIC)
        return err, cookie, recv_exact(s, length) if not err else b''

    def assert_closed(self, s):
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass

    def assert_serving(self):
        self.assertTrue(self.daemon.running())
        out = self.run_ok(['nbdinfo', '--size', self.uri(self.sock)]).stdout
        self.assertEqual(int(out), SIZE)

    def test_bad_option_magic(self):
        s = self.connect()
        s.sendall(struct.pack('>QII', 0x1122334455667788, 7, 0))
        self.assert_closed(s)
        self.assert_serving()

    def test_bad_client_flags(self):
        s = self.connect(flags=0xff)
        self.assert_closed(s)
        self.assert_serving()

    def test_huge_option_length(self):
        s = self.connect()
        s.sendall(struct.pack('>QII', NBD_OPTS_MAGIC, 7, 0xffffffff))
        self.assert_closed(s)
        self.assert_serving()

    def test_unknown_option_and_bad_payloads(self):
        s = self.connect()
        self.option(s, 0x1234, b'junk')
        opt, rep, msg = self.option_reply(s)
        self.assertEqual((opt, rep), (0x1234, 0x80000001))
        # GO whose name length points past the payload
        self.option(s, 7, struct.pack('>I', 1000) + b'disk')
        self.assertEqual(self.option_reply(s)[1], 0x80000003)
        # meta context before structured replies, then a huge count
        self.option(s, 10, struct.pack('>I', 4) + b'disk' +
                    struct.pack('>I', 0))
        self.assertEqual(self.option_reply(s)[1], 0x80000003)
        self.option(s, 8)
        self.assertEqual(self.option_reply(s)[1], 1)
        self.option(s, 10, struct.pack('>I', 4) + b'disk' +
                    struct.pack('>I', 0xffffffff))
        self.assertEqual(self.option_reply(s)[1], 0x80000003)
        # unknown export
        self.option(s, 7, struct.pack('>I', 4) + b'nope' +
                    struct.pack('>H', 0))
        self.assertEqual(self.option_reply(s)[1], 0x80000006)
        self.option(s, 2)       # NBD_OPT_ABORT
        self.assertEqual(self.option_reply(s)[1], 1)
        self.assert_closed(s)
        self.assert_serving()

    def test_requests_past_end_unknown_and_oversized(self):
        s = self.connect()
        self.go(s)
        self.request(s, 0, SIZE - 512, 1024, cookie=7)
        self.assertEqual(self.simple_reply(s)[:2], (22, 7))
        self.request(s, 1, SIZE, 512, b'x' * 512, cookie=8)
        self.assertEqual(self.simple_reply(s)[:2], (22, 8))
        self.request(s, 0x77, 0, 0, cookie=9)
        self.assertEqual(self.simple_reply(s)[:2], (22, 9))
        self.request(s, 0, 0, 64 << 20, cookie=10)
        self.assertEqual(self.simple_reply(s)[:2], (22, 10))
        self.request(s, 0, 0, 512, cookie=11)
        self.assertEqual(self.simple_reply(s, 512), (0, 11, b'\x55' * 512))
        # a write too large to read: answered, then the connection ends
        self.request(s, 1, 0, 0xffffffff, cookie=12)
        self.assertEqual(self.simple_reply(s)[:2], (22, 12))
        self.assert_closed(s)
        self.assert_serving()

    def test_bad_request_magic_and_disconnect_mid_write(self):
        s = self.connect()
        self.go(s)
        s.sendall(b'\x12\x34\x56\x78' + bytes(24))
        self.assert_closed(s)
        s = self.connect()
        self.go(s)
        self.request(s, 1, 0, 1 << 20, b'y' * 4096)
        s.close()
        s = self.connect()
        self.go(s)
        s.sendall(struct.pack('>IHH', NBD_REQUEST_MAGIC, 0, 0))
        s.close()
        self.assert_serving()
        with open(self.img, 'rb') as f:
            self.assertEqual(f.read(4096), b'\x55' * 4096)

    def test_exit_with_clients_that_do_not_read(self):
        # one client stuck in the handshake, one that asks for 16 reads of
        # 32 MiB and never reads the replies: SIGTERM still ends the daemon
        stuck = socket.socket(socket.AF_UNIX)
        stuck.connect(self.sock)
        self.addCleanup(stuck.close)
        s = self.connect()
        self.go(s)
        for i in range(16):
            self.request(s, 0, 0, 32 << 20, cookie=i)
        time.sleep(0.5)
        self.daemon.proc.terminate()
        self.assertEqual(self.daemon.proc.wait(5), 0)
        self.assertFalse(os.path.exists(self.sock))


if __name__ == '__main__':
    h.main()
