#!/usr/bin/python3
"""NBD over TLS: the tls-creds-* objects (plugins/object-tls-creds) and
the NBD server's tls-creds (plugins/export-nbd), driven by real clients,
side by side with qemu-storage-daemon 7.2 where the answer must be the
same.

- x509 certificates made by certtool (a CA, a server certificate for
  localhost and 127.0.0.1, a client certificate) and PSK keys made by
  psktool, in a private directory;
- qemu-io and qemu-img read and write over TLS (x509 over a unix socket
  and TCP, PSK, anonymous), nbdinfo with tls-certificates= and
  tls-psk-file=; clients without TLS, with the wrong key, or without a
  certificate when verify-peer is on, are refused;
- the protocol on a raw socket: options before STARTTLS, a second
  STARTTLS, STARTTLS without TLS configured, the same replies as qsd;
  extended headers refused before TLS and in force only when asked for
  after it;
- object-add and nbd-server-start errors, the same messages as qsd;
- deleting the credentials object does not stop the server, as in qsd.
"""

import json
import os
import shutil
import socket
import ssl
import struct
import tempfile
import time

import subprocess

import blockd_harness as h
from blockd_harness import free_port, recv_exact

SIZE = 4 << 20
NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_REP_MAGIC = 0x3e889045565a9
NBD_OPT_EXPORT_NAME = 1
NBD_OPT_ABORT = 2
NBD_OPT_LIST = 3
NBD_OPT_STARTTLS = 5
NBD_OPT_GO = 7
NBD_OPT_EXTENDED_HEADERS = 11
NBD_REP_ACK = 1
NBD_REP_SERVER = 2
NBD_REP_INFO = 3
NBD_REP_ERR_POLICY = (1 << 31) + 2
NBD_REP_ERR_INVALID = (1 << 31) + 3
NBD_REP_ERR_TLS_REQD = (1 << 31) + 5
NBD_REQUEST_MAGIC = 0x25609513
NBD_EXTENDED_REQUEST_MAGIC = 0x21e41c71
NBD_SIMPLE_REPLY_MAGIC = 0x67446698
NBD_EXTENDED_REPLY_MAGIC = 0x6e8a278c
NBD_CMD_FLUSH = 3

CA_TEMPLATE = 'cn = blockd test CA\nca\ncert_signing_key\nexpiration_days = 7\n'
SERVER_TEMPLATE = ('organization = blockd test\ncn = localhost\n'
                   'dns_name = localhost\nip_address = 127.0.0.1\n'
                   'tls_www_server\nencryption_key\nsigning_key\n'
                   'expiration_days = 7\n')
CLIENT_TEMPLATE = ('country = GB\norganization = blockd test\n'
                   'cn = client1\ntls_www_client\nencryption_key\n'
                   'signing_key\nexpiration_days = 7\n')


def send_option(s, opt, data=b''):
    s.sendall(struct.pack('>QII', NBD_OPTS_MAGIC, opt, len(data)) + data)


def read_reply(s):
    """(option, reply type, payload) of one option reply."""
    magic, opt, rtype, length = struct.unpack('>QIII', recv_exact(s, 20))
    assert magic == NBD_REP_MAGIC, hex(magic)
    return opt, rtype, recv_exact(s, length)


def at_eof(s):
    """True when the peer has closed `s` (reads return nothing)."""
    s.settimeout(10)
    try:
        return s.recv(1) == b''
    except (ConnectionResetError, BrokenPipeError):
        return True


class TlsMaterial:
    """Certificates and keys in a private directory, made once."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix='blockd-tls-')
        r = self.root

        def certtool(*args):
            res = subprocess.run(['certtool'] + list(args),
                                   capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f'certtool {args}: {res.stderr}')

        def write(name, text):
            with open(os.path.join(r, name), 'w') as f:
                f.write(text)

        write('ca.info', CA_TEMPLATE)
        write('server.info', SERVER_TEMPLATE)
        write('client.info', CLIENT_TEMPLATE)
        for name in ('ca', 'server', 'client'):
            certtool('--generate-privkey', '--key-type=ecdsa',
                     '--outfile', f'{r}/{name}-key.pem')
        certtool('--generate-self-signed', '--load-privkey', f'{r}/ca-key.pem',
                 '--template', f'{r}/ca.info', '--outfile', f'{r}/ca-cert.pem')
        for name in ('server', 'client'):
            certtool('--generate-certificate',
                     '--load-privkey', f'{r}/{name}-key.pem',
                     '--load-ca-certificate', f'{r}/ca-cert.pem',
                     '--load-ca-privkey', f'{r}/ca-key.pem',
                     '--template', f'{r}/{name}.info',
                     '--outfile', f'{r}/{name}-cert.pem')
        # what each end's 'dir' holds, as QEMU expects the names
        self.server = self.subdir('server', 'ca-cert.pem', 'server-cert.pem',
                                  'server-key.pem')
        self.client = self.subdir('client', 'ca-cert.pem', 'client-cert.pem',
                                  'client-key.pem')
        self.nocert = self.subdir('nocert', 'ca-cert.pem')
        self.empty = self.subdir('empty')
        self.psk = self.subdir('psk')
        self.psk_wrong = self.subdir('psk-wrong')
        for d in (self.psk, self.psk_wrong):
            res = subprocess.run(['psktool', '-u', 'alice', '-p',
                                    f'{d}/keys.psk'], capture_output=True)
            if res.returncode != 0:
                raise RuntimeError(f'psktool: {res.stderr}')

    def subdir(self, name, *files):
        d = os.path.join(self.root, name)
        os.mkdir(d, 0o700)
        for f in files:
            shutil.copy(os.path.join(self.root, f), d)
        return d

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


class TlsCase(h.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for tool in ('certtool', 'psktool'):
            if not shutil.which(tool):
                raise RuntimeError(f'{tool} (gnutls-bin) is not installed')
        cls.tls = TlsMaterial()

    @classmethod
    def tearDownClass(cls):
        cls.tls.remove()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(SIZE)
            f.write(b'\x55' * (1 << 20))

    def start(self, creds, qsd=False, tcp=False, extra=(), server_opts=''):
        """Start a daemon exporting self.img as 'disk' with TLS from the
        object `creds` (a --object string with id=tls0; None: no TLS).
        Returns (daemon, nbd socket path or port, qmp socket path)."""
        name = 'qsd' if qsd else 'blockd'
        stamp = time.monotonic_ns()
        qmp_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.qmp')
        if tcp:
            where = free_port()
            addr = f'addr.type=inet,addr.host=127.0.0.1,addr.port={where}'
        else:
            where = os.path.join(self.tmpdir, f'{name}-{stamp}.nbd')
            addr = f'addr.type=unix,addr.path={where}'
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m']
        if creds:
            args += ['--object', creds]
        args += ['--blockdev', f'driver=file,node-name=f,filename={self.img}',
                 '--nbd-server', addr + (',tls-creds=tls0' if creds else '')
                 + server_opts,
                 '--export', 'type=nbd,id=e,node-name=f,name=disk,'
                 'writable=on']
        args += list(extra)
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        if tcp:
            def accepts():
                try:
                    socket.create_connection(('127.0.0.1', where),
                                             timeout=1).close()
                    return True
                except OSError:
                    return False
            d.wait_until(accepts, 'the NBD server port', h.START_TIMEOUT)
        else:
            # the file appears at bind(), before listen(): a client that
            # came then would be refused, so wait for a connection
            d.wait_for_socket(where)
        return d, where, qmp_sock

    def x509_server(self, **props):
        opts = ''.join(f',{k}={v}' for k, v in props.items())
        return (f'tls-creds-x509,id=tls0,dir={self.tls.server},'
                f'endpoint=server{opts}')

    def run_ok(self, argv, **kwargs):
        res = self.run_command(argv, **kwargs)
        self.assertEqual(res.returncode, 0,
                         f'{argv} failed: {res.stdout}{res.stderr}')
        return res

    def run_fails(self, argv, **kwargs):
        res = self.run_command(argv, **kwargs)
        self.assertNotEqual(res.returncode, 0,
                            f'{argv} succeeded: {res.stdout}')
        return res

    def qemu_nbd_json(self, where, creds_id='tlsc', hostname='localhost'):
        """A json: filename for qemu-io/qemu-img: raw over nbd with TLS."""
        if isinstance(where, int):
            server = {'type': 'inet', 'host': '127.0.0.1', 'port': str(where)}
        else:
            server = {'type': 'unix', 'path': where}
        nbd = {'driver': 'nbd', 'server': server, 'export': 'disk',
               'tls-creds': creds_id}
        if hostname:
            nbd['tls-hostname'] = hostname
        return 'json:' + json.dumps({'driver': 'raw', 'file': nbd})

    def client_object(self, kind='x509', **props):
        if kind == 'x509':
            props.setdefault('dir', self.tls.client)
        opts = ''.join(f',{k}={v}' for k, v in props.items())
        return ['--object', f'tls-creds-{kind},id=tlsc,endpoint=client{opts}']

    def nbds_uri(self, sock, query):
        return f'nbds+unix:///disk?socket={sock}&{query}'


class X509(TlsCase):

    def test_qemu_io_qemu_img_nbdinfo_over_unix(self):
        _, sock, _ = self.start(self.x509_server())
        self.run_ok(['qemu-io', '-f', 'raw'] + self.client_object() +
                    ['-c', 'write -P 0xab 1M 64k', '-c', 'read -P 0xab 1M 64k',
                     '-c', 'read -P 0x55 0 64k', self.qemu_nbd_json(sock)])
        with open(self.img, 'rb') as f:
            f.seek(1 << 20)
            self.assertEqual(f.read(65536), b'\xab' * 65536)
        info = json.loads(self.run_ok(
            ['qemu-img', 'info', '--output=json'] + self.client_object() +
            ['--image-opts',
             f'driver=nbd,path={sock},export=disk,tls-creds=tlsc,'
             'tls-hostname=localhost']).stdout)
        self.assertEqual(info['virtual-size'], SIZE)
        out = json.loads(self.run_ok(
            ['nbdinfo', '--json',
             self.nbds_uri(sock, f'tls-certificates={self.tls.client}')]
        ).stdout)
        self.assertEqual(out['exports'][0]['export-size'], SIZE)
        # a big transfer crosses many TLS records both ways
        self.run_ok(['qemu-io', '-f', 'raw'] + self.client_object() +
                    ['-c', 'write -P 0x3c 0 3M', '-c', 'read -P 0x3c 0 3M',
                     self.qemu_nbd_json(sock)])

    def test_nbdcopy_many_requests_both_ways(self):
        # replies and requests in flight together on one TLS session
        _, sock, _ = self.start(self.x509_server())
        uri = self.nbds_uri(sock, f'tls-certificates={self.tls.client}')
        data = os.urandom(SIZE)
        src = os.path.join(self.tmpdir, 'src.raw')
        with open(src, 'wb') as f:
            f.write(data)
        self.run_ok(['nbdcopy', '--requests=32', '--request-size=65536',
                     src, uri])
        with open(self.img, 'rb') as f:
            self.assertEqual(f.read(), data)
        out = os.path.join(self.tmpdir, 'out.raw')
        self.run_ok(['nbdcopy', '--requests=32', uri, out])
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), data)

    def test_tcp_checks_the_server_name(self):
        _, port, _ = self.start(self.x509_server(), tcp=True)
        # the certificate names 127.0.0.1: qemu checks the host it dials
        self.run_ok(['qemu-io', '-f', 'raw'] + self.client_object() +
                    ['-c', 'read -P 0x55 0 4k',
                     self.qemu_nbd_json(port, hostname=None)])
        res = self.run_fails(['qemu-io', '-f', 'raw'] + self.client_object() +
                             ['-c', 'read 0 4k',
                              self.qemu_nbd_json(port, hostname='other')])
        self.assertIn('Certificate does not match the hostname other',
                      res.stderr)

    def test_plain_clients_are_refused(self):
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, _ = self.start(self.x509_server(), qsd=qsd)
                res = self.run_fails(['qemu-img', 'info',
                                      f'nbd+unix:///disk?socket={sock}'])
                self.assertIn('server reported: Option 0x7 not permitted '
                              'before TLS', res.stderr)
                res = self.run_fails(['nbdinfo',
                                      f'nbd+unix:///disk?socket={sock}'])
                self.assertIn('opt_go', res.stderr)

    def test_verify_peer(self):
        query = f'tls-certificates={self.tls.nocert}'
        for verify in ('on', 'off'):
            for qsd in (False, True):
                with self.subTest(verify=verify, qsd=qsd):
                    d, sock, _ = self.start(
                        self.x509_server(**{'verify-peer': verify}), qsd=qsd)
                    res = self.run_command(['nbdinfo', '--size',
                                            self.nbds_uri(sock, query)])
                    if verify == 'on':
                        self.assertNotEqual(res.returncode, 0, res.stdout)
                    else:
                        self.assertEqual(res.returncode, 0, res.stderr)
                        self.assertEqual(res.stdout.strip(), str(SIZE))
                    # the server serves others still
                    self.run_ok(['nbdinfo', '--size', self.nbds_uri(
                        sock, f'tls-certificates={self.tls.client}')])

    def test_credentials_deleted_while_serving(self):
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, qmp_sock = self.start(self.x509_server(), qsd=qsd)
                qmp = self.qmp(qmp_sock)
                qmp.command('object-del', {'id': 'tls0'})
                self.run_ok(['nbdinfo', '--size', self.nbds_uri(
                    sock, f'tls-certificates={self.tls.client}')])


class Authz(TlsCase):
    """tls-authz: the client certificate's distinguished name is checked
    by an authorization object (object-authz plugin) once the handshake
    is done; the same cases against qemu-storage-daemon 7.2."""

    CLIENT_DN = 'C=GB,O=blockd test,CN=client1'

    def client_allowed(self, authz_objects, qsd, authz_id='auth0'):
        extra = []
        for obj in authz_objects:
            extra += ['--object', obj]
        _, sock, _ = self.start(self.x509_server(), qsd=qsd, extra=extra,
                                server_opts=f',tls-authz={authz_id}')
        res = self.run_command(['nbdinfo', '--size', self.nbds_uri(
            sock, f'tls-certificates={self.tls.client}')])
        return res.returncode == 0

    def test_authz_objects_decide_like_qsd(self):
        glob_rules = json.dumps({
            'qom-type': 'authz-list', 'id': 'auth0', 'policy': 'deny',
            'rules': [{'match': '*,CN=client?', 'policy': 'allow',
                       'format': 'glob'}]})
        cases = [
            ([json.dumps({'qom-type': 'authz-simple', 'id': 'auth0',
                          'identity': self.CLIENT_DN})], True),
            ([json.dumps({'qom-type': 'authz-simple', 'id': 'auth0',
                          'identity': 'CN=someone-else'})], False),
            ([glob_rules], True),
            ([glob_rules.replace('client?', 'mallory')], False),
            ([json.dumps({'qom-type': 'authz-list', 'id': 'auth0',
                          'policy': 'allow',
                          'rules': [{'match': self.CLIENT_DN,
                                     'policy': 'deny'}]})], False),
            ([], False),                         # no such authz object
            (['secret,id=auth0,data=x'], False),  # not an authz object
        ]
        for objects, allowed in cases:
            for qsd in (False, True):
                with self.subTest(objects=objects, qsd=qsd):
                    self.assertEqual(self.client_allowed(objects, qsd),
                                     allowed)

    def test_qom_set_changes_who_is_allowed(self):
        """qom-set on authz-simple's identity decides the next
        connections, in blockd as in qsd."""
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, qmp_sock = self.start(
                    self.x509_server(), qsd=qsd,
                    server_opts=',tls-authz=auth0',
                    extra=['--object', 'authz-simple,id=auth0,'
                           'identity=CN=nobody'])
                qmp = self.qmp(qmp_sock)
                uri = self.nbds_uri(sock,
                                    f'tls-certificates={self.tls.client}')
                self.run_fails(['nbdinfo', '--size', uri])
                qmp.command('qom-set', path='auth0', property='identity',
                            value=self.CLIENT_DN)
                self.run_ok(['nbdinfo', '--size', uri])
                qmp.command('qom-set', path='auth0', property='identity',
                            value='CN=nobody')
                self.run_fails(['nbdinfo', '--size', uri])

    def test_list_file_is_reread(self):
        # qsd 7.2 cannot create this type (its schema and object model
        # disagree on the name), so blockd alone
        rules = os.path.join(self.tmpdir, 'rules.json')

        def write_rules(policy):
            tmp = rules + '.new'
            with open(tmp, 'w') as f:
                json.dump({'policy': 'deny', 'rules': [
                    {'match': self.CLIENT_DN, 'policy': policy}]}, f)
            os.rename(tmp, rules)

        write_rules('allow')
        _, sock, _ = self.start(
            self.x509_server(), server_opts=',tls-authz=auth0',
            extra=['--object', f'authz-listfile,id=auth0,filename={rules},'
                   'refresh=on'])
        uri = self.nbds_uri(sock, f'tls-certificates={self.tls.client}')
        self.run_ok(['nbdinfo', '--size', uri])
        write_rules('deny')
        deadline = time.monotonic() + h.START_TIMEOUT
        while self.run_command(['nbdinfo', '--size', uri]).returncode == 0:
            self.assertLess(time.monotonic(), deadline,
                            'the rules file was not read again')
            time.sleep(0.05)
        write_rules('allow')
        deadline = time.monotonic() + h.START_TIMEOUT
        while self.run_command(['nbdinfo', '--size', uri]).returncode != 0:
            self.assertLess(time.monotonic(), deadline,
                            'the rules file was not read again')
            time.sleep(0.05)


class PskAndAnon(TlsCase):

    def psk_server(self, qsd=False):
        return self.start(f'tls-creds-psk,id=tls0,dir={self.tls.psk},'
                          'endpoint=server', qsd=qsd)

    def psk_uri(self, sock, keys):
        return (f'nbds+unix://alice@/disk?socket={sock}'
                f'&tls-psk-file={keys}/keys.psk')

    def test_psk(self):
        _, sock, _ = self.psk_server()
        res = self.run_ok(['nbdinfo', '--size',
                           self.psk_uri(sock, self.tls.psk)])
        self.assertEqual(res.stdout.strip(), str(SIZE))
        self.run_ok(['qemu-io', '-f', 'raw'] +
                    self.client_object('psk', dir=self.tls.psk,
                                       username='alice') +
                    ['-c', 'write -P 0x17 0 64k', '-c', 'read -P 0x17 0 64k',
                     self.qemu_nbd_json(sock, hostname=None)])

    def test_qom_set_priority_applies_to_new_sessions(self):
        """A priority string set with qom-set is what the next sessions
        use (one that enables no protocol version fails them), in blockd
        as in qsd."""
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, qmp_sock = self.psk_server(qsd=qsd)
                qmp = self.qmp(qmp_sock)
                uri = self.psk_uri(sock, self.tls.psk)
                self.run_ok(['nbdinfo', '--size', uri])
                qmp.command('qom-set', path='tls0', property='priority',
                            value='NORMAL:-VERS-ALL')
                self.run_fails(['nbdinfo', '--size', uri])
                qmp.command('qom-set', path='tls0', property='priority',
                            value='NORMAL')
                self.run_ok(['nbdinfo', '--size', uri])

    def test_wrong_psk_is_refused(self):
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, _ = self.psk_server(qsd=qsd)
                self.run_fails(['nbdinfo', '--size',
                                self.psk_uri(sock, self.tls.psk_wrong)])
                self.run_ok(['nbdinfo', '--size',
                             self.psk_uri(sock, self.tls.psk)])

    def test_anon(self):
        _, sock, _ = self.start('tls-creds-anon,id=tls0,endpoint=server')
        self.run_ok(['qemu-io', '-f', 'raw'] + self.client_object('anon') +
                    ['-c', 'write -P 0x21 0 64k', '-c', 'read -P 0x21 0 64k',
                     self.qemu_nbd_json(sock, hostname=None)])


class Protocol(TlsCase):
    """Raw option haggling, the same with blockd and with qsd."""

    def connect(self, sock):
        s = socket.socket(socket.AF_UNIX)
        self.addCleanup(s.close)
        s.settimeout(10)
        s.connect(sock)
        recv_exact(s, 18)                       # greeting
        s.sendall(struct.pack('>I', 3))         # fixed newstyle, no zeroes
        return s

    def client_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(self.tls.client,
                                               'ca-cert.pem'))
        ctx.load_cert_chain(os.path.join(self.tls.client, 'client-cert.pem'),
                            os.path.join(self.tls.client, 'client-key.pem'))
        return ctx

    def haggle(self, qsd):
        _, sock, _ = self.start(self.x509_server(), qsd=qsd)
        seen = []
        s = self.connect(sock)
        send_option(s, NBD_OPT_LIST)
        seen.append(read_reply(s))
        send_option(s, NBD_OPT_GO, struct.pack('>I', 4) + b'disk' +
                    struct.pack('>H', 0))
        seen.append(read_reply(s))
        send_option(s, NBD_OPT_STARTTLS)
        seen.append(read_reply(s))
        t = self.client_context().wrap_socket(s, server_hostname='localhost')
        send_option(t, NBD_OPT_STARTTLS)
        seen.append(read_reply(t))
        send_option(t, NBD_OPT_LIST)
        seen.append(read_reply(t))
        seen.append(read_reply(t))
        t.close()
        # EXPORT_NAME before TLS ends the connection
        s = self.connect(sock)
        send_option(s, NBD_OPT_EXPORT_NAME, b'disk')
        seen.append(at_eof(s))
        # a STARTTLS with a payload before TLS: refused, then hung up
        s = self.connect(sock)
        send_option(s, NBD_OPT_STARTTLS, b'x')
        seen.append(read_reply(s))
        seen.append(at_eof(s))
        return seen

    def test_options_before_and_after_starttls(self):
        seen = self.haggle(qsd=False)
        self.assertEqual(seen[0], (NBD_OPT_LIST, NBD_REP_ERR_TLS_REQD,
                                   b'Option 0x3 not permitted before TLS'))
        self.assertEqual(seen[1][1], NBD_REP_ERR_TLS_REQD)
        self.assertEqual(seen[2], (NBD_OPT_STARTTLS, NBD_REP_ACK, b''))
        self.assertEqual(seen[3], (NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                                   b'TLS already enabled'))
        self.assertEqual(seen[4][:2], (NBD_OPT_LIST, NBD_REP_SERVER))
        self.assertEqual(seen[5], (NBD_OPT_LIST, NBD_REP_ACK, b''))
        self.assertTrue(seen[6])
        self.assertEqual(seen[7][1], NBD_REP_ERR_INVALID)
        self.assertTrue(seen[8])
        self.assertEqual(seen, self.haggle(qsd=True))

    def go_and_flush(self, t, extended):
        """NBD_OPT_GO on 'disk', then an NBD_CMD_FLUSH in the header style
        negotiated; the reply's magic, error and cookie."""
        send_option(t, NBD_OPT_GO, struct.pack('>I', 4) + b'disk' +
                    struct.pack('>H', 0))
        while True:
            opt, rtype, _ = read_reply(t)
            self.assertEqual(opt, NBD_OPT_GO)
            if rtype == NBD_REP_ACK:
                break
            self.assertEqual(rtype, NBD_REP_INFO)
        if extended:
            t.sendall(struct.pack('>IHHQQQ', NBD_EXTENDED_REQUEST_MAGIC, 0,
                                  NBD_CMD_FLUSH, 77, 0, 0))
            magic, _, _, cookie, _, length = struct.unpack(
                '>IHHQQQ', recv_exact(t, 32))
            self.assertEqual(length, 0)
            return magic, 0, cookie
        t.sendall(struct.pack('>IHHQQI', NBD_REQUEST_MAGIC, 0,
                              NBD_CMD_FLUSH, 77, 0, 0))
        return struct.unpack('>IIQ', recv_exact(t, 16))

    def test_extended_headers_and_starttls(self):
        # before TLS, extended headers are refused like every option, as
        # qsd refuses them
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, _ = self.start(self.x509_server(), qsd=qsd)
                s = self.connect(sock)
                send_option(s, NBD_OPT_EXTENDED_HEADERS)
                self.assertEqual(read_reply(s),
                                 (NBD_OPT_EXTENDED_HEADERS,
                                  NBD_REP_ERR_TLS_REQD,
                                  b'Option 0xb not permitted before TLS'))
        # so nothing from before STARTTLS shapes the transmission: without
        # a new request the headers are compact and the replies simple
        _, sock, _ = self.start(self.x509_server())
        s = self.connect(sock)
        send_option(s, NBD_OPT_EXTENDED_HEADERS)
        self.assertEqual(read_reply(s)[1], NBD_REP_ERR_TLS_REQD)
        send_option(s, NBD_OPT_STARTTLS)
        self.assertEqual(read_reply(s)[1], NBD_REP_ACK)
        t = self.client_context().wrap_socket(s, server_hostname='localhost')
        self.addCleanup(t.close)
        self.assertEqual(self.go_and_flush(t, extended=False),
                         (NBD_SIMPLE_REPLY_MAGIC, 0, 77))
        # negotiated after STARTTLS, they hold
        s = self.connect(sock)
        send_option(s, NBD_OPT_STARTTLS)
        self.assertEqual(read_reply(s)[1], NBD_REP_ACK)
        t = self.client_context().wrap_socket(s, server_hostname='localhost')
        self.addCleanup(t.close)
        send_option(t, NBD_OPT_EXTENDED_HEADERS)
        self.assertEqual(read_reply(t), (NBD_OPT_EXTENDED_HEADERS,
                                         NBD_REP_ACK, b''))
        self.assertEqual(self.go_and_flush(t, extended=True),
                         (NBD_EXTENDED_REPLY_MAGIC, 0, 77))

    def test_abort_before_tls(self):
        # the NBD spec exempts ABORT from TLS_REQD (qsd answers TLS_REQD)
        _, sock, _ = self.start(self.x509_server())
        s = self.connect(sock)
        send_option(s, NBD_OPT_ABORT)
        self.assertEqual(read_reply(s), (NBD_OPT_ABORT, NBD_REP_ACK, b''))
        self.assertTrue(at_eof(s))

    def test_starttls_without_tls(self):
        for qsd in (False, True):
            with self.subTest(qsd=qsd):
                _, sock, _ = self.start(None, qsd=qsd)
                s = self.connect(sock)
                send_option(s, NBD_OPT_STARTTLS)
                self.assertEqual(read_reply(s),
                                 (NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                                  b'TLS not configured'))


class Errors(TlsCase):
    """object-add and nbd-server-start refusals, compared with qsd."""

    def qmp_pair(self):
        """QMP clients of a blockd and a qsd with a client-endpoint x509
        object 'tlsc', a server one 'tlss' and an iothread 'io0'."""
        out = []
        for qsd in (False, True):
            sock = os.path.join(self.tmpdir, f'{qsd}.qmp')
            args = ['--chardev', f'socket,id=m,path={sock},server=on,'
                    'wait=off', '--monitor', 'chardev=m',
                    '--object', f'tls-creds-x509,id=tlsc,dir={self.tls.client},'
                    'endpoint=client',
                    '--object', f'tls-creds-x509,id=tlss,dir={self.tls.server},'
                    'endpoint=server',
                    '--object', 'iothread,id=io0']
            d = self.start_qsd(args) if qsd else self.start_daemon(args)
            d.wait_for_socket_file(sock)
            out.append(self.qmp(sock))
        return out

    def assert_same_error(self, clients, cmd, args):
        replies = [c.execute(cmd, args) for c in clients]
        self.assertIn('error', replies[1], replies[1])
        self.assertEqual(replies[0], replies[1], args)

    def test_object_add(self):
        clients = self.qmp_pair()
        t = self.tls
        cases = [
            {'qom-type': 'tls-creds-x509', 'endpoint': 'server'},
            {'qom-type': 'tls-creds-x509', 'dir': t.empty,
             'endpoint': 'server'},
            {'qom-type': 'tls-creds-x509', 'dir': t.root + '/nonexistent'},
            {'qom-type': 'tls-creds-x509', 'dir': t.client,
             'endpoint': 'server'},
            {'qom-type': 'tls-creds-x509', 'dir': t.server,
             'endpoint': 'bogus'},
            {'qom-type': 'tls-creds-x509', 'dir': t.server,
             'endpoint': 'server', 'loaded': True},
            {'qom-type': 'tls-creds-x509', 'dir': t.server,
             'endpoint': 'server', 'passwordid': 'nosuch'},
            {'qom-type': 'tls-creds-x509', 'dir': t.server,
             'endpoint': 'server', 'passwordid': 'io0'},
            {'qom-type': 'tls-creds-psk', 'dir': t.empty,
             'endpoint': 'server'},
            {'qom-type': 'tls-creds-psk', 'dir': t.psk,
             'endpoint': 'server', 'username': 'alice'},
            {'qom-type': 'tls-creds-psk', 'dir': t.psk},
            {'qom-type': 'tls-creds-psk', 'dir': t.psk, 'username': 'bob'},
        ]
        for args in cases:
            with self.subTest(args=args):
                self.assert_same_error(clients, 'object-add',
                                       dict(args, id='x'))

    def test_nbd_server_start(self):
        clients = self.qmp_pair()
        for c in clients:
            types = c.command('qom-list-types', {'implements': 'tls-creds'})
            self.assertLessEqual({('tls-creds-anon', 'tls-creds'),
                                  ('tls-creds-psk', 'tls-creds'),
                                  ('tls-creds-x509', 'tls-creds')},
                                 {(t['name'], t.get('parent'))
                                  for t in types})
        addr = {'type': 'unix',
                'data': {'path': os.path.join(self.tmpdir, 'n.sock')}}
        for creds in ('nosuch', 'io0', 'tlsc'):
            with self.subTest(creds=creds):
                self.assert_same_error(clients, 'nbd-server-start',
                                       {'addr': addr, 'tls-creds': creds})
        self.assertFalse(os.path.exists(addr['data']['path']))
        # a client-endpoint object, the same on the command line
        for binary in (h.BLOCKD, h.find_qsd()):
            with self.subTest(binary=binary):
                res = self.run_command(
                    [binary, '--object', f'tls-creds-x509,id=tlsc,'
                     f'dir={self.tls.client},endpoint=client',
                     '--nbd-server', 'addr.type=unix,addr.path='
                     f'{self.tmpdir}/c.sock,tls-creds=tlsc'])
                self.assertNotEqual(res.returncode, 0)
                self.assertIn(': Expected TLS credentials for a server '
                              'endpoint', res.stderr)


if __name__ == '__main__':
    h.main()
