#!/usr/bin/python3
"""Clients that start the NBD handshake and stall (issue #21).

Stalled connections must not shut the other clients out, nor be held for
ever:

- 100 connections that send two bytes of the handshake and stall (the
  default max-connections is 100), 1000 with max-connections=0 and 1000
  at the default limit, the same stalled inside the TLS handshake (after
  STARTTLS): a fresh qemu-io (nbdinfo over TLS) is still served, and the
  server closes the stalled connections, none before a tenth of its
  handshake-max-seconds (when it makes room for a newcomer) nor all
  before the deadline;
- at max-connections, a connection that has been negotiating for a while
  makes room for a newcomer even with no deadline at all, but a client
  in the transmission phase never does;
- the default deadline is qemu-storage-daemon 7.2.22's 10 s (side by
  side), and handshake-max-seconds=0 means none;
- handshake-max-seconds is a blockd extension: qsd 7.2 refuses it as an
  unexpected parameter; blockd takes it as later QEMU does (uint32), and
  refuses bad values with the messages qsd gives for max-connections,
  the other uint32 member.

1000 connections need more descriptors than the usual 1024: the test
raises its RLIMIT_NOFILE, which the daemons inherit.
"""

import os
import resource
import shutil
import subprocess
import tempfile
import time

import nbd

import blockd_harness as h
from nbd_stallers import Stallers

# the descriptors 1000 stalled connections and the rest take, in this
# process and in the daemon
NOFILE_NEEDED = 2300
# how long a client gets to be served, or stalled connections to be
# closed, when something is expected to happen: far above the 2 s
# deadlines used here, so that a slow machine does not fail the test
LIVENESS = 30.0


class StalledCase(h.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard == resource.RLIM_INFINITY else min(hard, 8192)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        cls.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if not shutil.which('psktool'):
            raise RuntimeError('psktool (gnutls-bin) is not installed')
        cls.psk = tempfile.mkdtemp(prefix='blockd-psk-')
        res = subprocess.run(['psktool', '-u', 'alice', '-p',
                              os.path.join(cls.psk, 'keys.psk')],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f'psktool: {res.stderr}')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.psk, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(1 << 20)

    def need_descriptors(self):
        if self.nofile != resource.RLIM_INFINITY and \
                self.nofile < NOFILE_NEEDED:
            self.skipTest(f'RLIMIT_NOFILE is {self.nofile}, below '
                          f'{NOFILE_NEEDED} even raised')

    def start(self, qsd=False, tls=False, server_opts=''):
        """A daemon exporting self.img read-only as 'disk' on a UNIX
        socket; returns (daemon, socket path)."""
        name = 'qsd' if qsd else 'blockd'
        stamp = time.monotonic_ns()
        sock = os.path.join(self.tmpdir, f'{name}-{stamp}.nbd')
        args = ['--blockdev',
                f'driver=file,node-name=f,filename={self.img}']
        if tls:
            args += ['--object', f'tls-creds-psk,id=tls0,dir={self.psk},'
                     'endpoint=server']
        args += ['--nbd-server', f'addr.type=unix,addr.path={sock}' +
                 (',tls-creds=tls0' if tls else '') + server_opts,
                 '--export', 'type=nbd,id=e,node-name=f,name=disk']
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        # the file appears at bind(), before listen(): wait for a
        # connection to be taken
        d.wait_for_socket(sock)
        return d, sock

    def serve_fresh_client(self, sock, stallers, tls=False):
        """Run a fresh client against @sock while the stallers keep
        stalling; returns the seconds until it was served (it must be)."""
        if tls:
            argv = ['nbdinfo', '--size',
                    f'nbds+unix://alice@/disk?socket={sock}'
                    f'&tls-psk-file={self.psk}/keys.psk']
        else:
            argv = ['qemu-io', '-r', '-f', 'raw', '-c', 'read 0 4k',
                    f'nbd+unix:///disk?socket={sock}']
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.tmpdir)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        while proc.poll() is None and time.monotonic() - t0 < LIVENESS:
            stallers.pump(0.05)
        if proc.poll() is None:
            self.fail(f'{argv[0]} not served within {LIVENESS} s while '
                      f'{stallers.open_count()} connections stall')
        took = time.monotonic() - t0
        out = proc.stdout.read().decode(errors='replace')
        self.assertEqual(proc.returncode, 0, f'{argv}: {out}')
        print(f'\n  fresh {argv[0]} served after {took:.2f} s', end=' ')
        return took

    def stallers(self, sock, count, tls=False, in_place=None):
        """@count Stallers, once @in_place of them (default all) stall."""
        st = Stallers(sock, count, tls=tls)
        self.addCleanup(st.close)
        in_place = count if in_place is None else in_place
        self.assertTrue(st.pump_until(lambda: st.stalled >= in_place, 20),
                        f'only {st.stalled} of {in_place} connections got '
                        'as far as stalling')
        return st

    def assert_all_closed(self, st):
        self.assertTrue(st.pump_until(lambda: st.open_count() == 0,
                                      LIVENESS),
                        f'{st.open_count()} stalled connections still open '
                        f'after {LIVENESS} s')

    def stalled_case(self, count, tls, server_opts):
        _, sock = self.start(tls=tls, server_opts=server_opts)
        # at max-connections (100 by default) only that many get in now
        in_place = 100 if 'max-connections=0' not in server_opts else count
        st = self.stallers(sock, count, tls=tls, in_place=min(count,
                                                              in_place))
        self.serve_fresh_client(sock, st, tls=tls)
        self.assert_all_closed(st)
        # none before it had a tenth of the 2 s deadline to make
        # progress, when a newcomer wanted its place
        self.assertGreaterEqual(min(st.lifetimes), 0.18)
        # and the last ones by the deadline
        self.assertGreaterEqual(max(st.lifetimes), 1.9)


class Stalled(StalledCase):

    def test_100_plain_at_the_default_limit(self):
        self.stalled_case(100, False, ',handshake-max-seconds=2')

    def test_1000_plain_without_limit(self):
        self.need_descriptors()
        self.stalled_case(1000, False,
                          ',max-connections=0,handshake-max-seconds=2')

    def test_1000_plain_at_the_default_limit(self):
        # 100 at a time make way, each group after a tenth of the deadline
        self.need_descriptors()
        self.stalled_case(1000, False, ',handshake-max-seconds=2')

    def test_100_in_tls_handshake_at_the_default_limit(self):
        self.stalled_case(100, True, ',handshake-max-seconds=2')

    def test_1000_in_tls_handshake_without_limit(self):
        self.need_descriptors()
        self.stalled_case(1000, True,
                          ',max-connections=0,handshake-max-seconds=2')

    def test_stalled_clients_make_room_without_a_deadline(self):
        # no deadline: only giving a stalled connection's slot away lets
        # the fresh client in
        _, sock = self.start(server_opts=',handshake-max-seconds=0')
        st = self.stallers(sock, 100)
        self.serve_fresh_client(sock, st)
        self.assertGreaterEqual(st.closed, 1)
        self.assertGreater(st.open_count(), 0, 'with no deadline, stalled '
                           'connections that were not in the way stay')

    def test_a_negotiated_client_keeps_its_slot(self):
        # max-connections=1 held by a client in the transmission phase: a
        # newcomer waits without a greeting, as with qsd, however long
        _, sock = self.start(server_opts=',max-connections=1,'
                             'handshake-max-seconds=0')
        client = nbd.NBD()
        client.connect_uri(f'nbd+unix:///disk?socket={sock}')
        st = Stallers(sock, 1)
        self.addCleanup(st.close)
        st.pump(2.5)
        self.assertEqual(st.greeted, 0, 'the newcomer was let in')
        self.assertEqual(client.pread(4096, 0), b'\0' * 4096)
        client.shutdown()
        self.assertTrue(st.pump_until(lambda: st.greeted == 1, LIVENESS),
                        'the newcomer was not let in after the client left')


class DefaultDeadline(StalledCase):

    def test_default_is_10_s_as_qsd_and_0_is_none(self):
        _, blockd_sock = self.start()
        _, qsd_sock = self.start(qsd=True)
        _, none_sock = self.start(server_opts=',handshake-max-seconds=0')
        t0 = time.monotonic()
        blockd = self.stallers(blockd_sock, 1)
        qsd = self.stallers(qsd_sock, 1)
        none = self.stallers(none_sock, 1)
        everyone = (blockd, qsd, none)

        def pump(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for st in everyone:
                    st.pump(0.02)

        pump(5 - (time.monotonic() - t0))
        self.assertEqual([st.closed for st in everyone], [0, 0, 0],
                         'closed before 5 s (blockd, qsd, no deadline)')
        end = t0 + LIVENESS
        while (blockd.closed == 0 or qsd.closed == 0) and \
                time.monotonic() < end:
            pump(0.1)
        took = time.monotonic() - t0
        self.assertEqual((blockd.closed, qsd.closed), (1, 1),
                         f'stalled clients not closed after {took:.1f} s')
        print(f'\n  both closed {took:.1f} s after connecting', end=' ')
        self.assertGreaterEqual(took, 9.0)
        self.assertEqual(none.closed, 0,
                         'handshake-max-seconds=0 closed a stalled client')


class Option(StalledCase):
    """handshake-max-seconds on --nbd-server and nbd-server-start."""

    def cli_error(self, qsd, opts):
        binary = h.find_qsd() if qsd else h.BLOCKD
        if binary is None:
            self.skipTest('qemu-storage-daemon is not installed')
        sock = os.path.join(self.tmpdir, 'nbd.sock')
        res = self.run_command([binary, '--nbd-server',
                                f'addr.type=unix,addr.path={sock},{opts}'],
                               timeout=20)
        self.assertNotEqual(res.returncode, 0, f'{opts} accepted')
        # the message after the program's name and the option
        return res.stderr.strip().rsplit(': ', 1)[-1]

    def qmp_start(self, qsd, extra):
        name = 'qsd' if qsd else 'blockd'
        stamp = time.monotonic_ns()
        qmp_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.qmp')
        args = ['--chardev',
                f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m']
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        q = self.qmp(qmp_sock)
        args = {'addr': {'type': 'unix', 'data': {
            'path': os.path.join(self.tmpdir, f'{name}-{stamp}.nbd')}}}
        args.update(extra)
        return q.execute('nbd-server-start', args)

    def test_qsd_7_2_does_not_know_it(self):
        self.assertEqual(self.cli_error(True, 'handshake-max-seconds=5'),
                         "Parameter 'handshake-max-seconds' is unexpected")
        reply = self.qmp_start(True, {'handshake-max-seconds': 5})
        self.assertEqual(reply['error'],
                         {'class': 'GenericError',
                          'desc': "Parameter 'handshake-max-seconds' is "
                                  "unexpected"})

    def test_blockd_takes_uint32_values(self):
        for value in (0, 1, 4294967295):
            with self.subTest(value=value):
                reply = self.qmp_start(False,
                                       {'handshake-max-seconds': value})
                self.assertEqual(reply, {'return': {}})
                _, sock = self.start(
                    server_opts=f',handshake-max-seconds={value}')
                res = self.run_command(
                    ['nbdinfo', '--size',
                     f'nbd+unix:///disk?socket={sock}'])
                self.assertEqual(res.stdout.strip(), str(1 << 20),
                                 res.stderr)

    def test_bad_values_as_qsd_refuses_them_for_max_connections(self):
        for value in ('-1', '4294967296', 'abc', ''):
            with self.subTest(cli=value):
                want = self.cli_error(True, f'max-connections={value}')
                got = self.cli_error(
                    False, f'handshake-max-seconds={value}')
                self.assertEqual(got, want.replace('max-connections',
                                                   'handshake-max-seconds'))
        for value in (-1, 4294967296, 'abc', 1.5, True, None):
            with self.subTest(qmp=value):
                want = self.qmp_start(True, {'max-connections': value})
                got = self.qmp_start(False,
                                     {'handshake-max-seconds': value})
                want['error']['desc'] = want['error']['desc'].replace(
                    'max-connections', 'handshake-max-seconds')
                self.assertEqual(got, want)


if __name__ == '__main__':
    h.main()
