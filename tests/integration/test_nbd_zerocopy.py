#!/usr/bin/python3
"""Zero-copy NBD reads: on UNIX sockets, reads of 64 KiB and more go from
the image to the socket inside the kernel (sendfile) when the image is in
memory.  The image here is on tmpfs (a private directory under /dev/shm)
with data and holes, exported through raw with and without an offset:

- nbdcopy and qemu-img compare see the image's bytes over a unix socket
  (zero-copy) and TCP (copied, as TLS and cache.direct=on below); which
  path the data took shows in the daemon's /proc/PID/io (sendfile counts
  as written bytes, sendmsg does not);
- python3-libnbd reads with structured replies (holes as OFFSET_HOLE,
  data zero-copy), with the DF flag (one data chunk) and with simple
  replies, at offsets and lengths that are not aligned;
- over TLS (PSK) the data goes through the TLS session: same bytes;
- with cache.direct=on the file node falls back to normal reads: same
  bytes.

A read error in the middle of a zero-copy reply drops the connection
(nbd-requests.c); it is not provoked here: the path is only taken for
data that is in memory, which does not fail to read.
"""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

import nbd

import blockd_harness as h

SIZE = 48 << 20
RAW_OFFSET = 1 << 20


def written_by(pid):
    """Bytes the process wrote through write-like calls (/proc/PID/io's
    wchar): sendfile counts there, sendmsg on a socket does not, so a
    zero-copy read shows and a copied one does not."""
    with open(f'/proc/{pid}/io') as f:
        for line in f:
            if line.startswith('wchar:'):
                return int(line.split()[1])
    raise AssertionError(f'no wchar in /proc/{pid}/io')


class NbdZeroCopy(h.TestCase):

    def setUp(self):
        super().setUp()
        for tool in ('nbdcopy', 'qemu-img', 'psktool'):
            if not shutil.which(tool):
                self.skipTest(f'{tool} is not installed')
        self.shm = tempfile.mkdtemp(prefix='blockd-test-zc-', dir='/dev/shm')
        self.addCleanup(shutil.rmtree, self.shm, ignore_errors=True)
        self.img = os.path.join(self.shm, 'img.raw')
        rnd = random.Random(6)
        # data runs of odd lengths between holes, one up to the end
        runs = ((0, 3 << 20), ((5 << 20) + 4097, 777777),
                (9 << 20, 12 << 20), (SIZE - (2 << 20) - 5, (2 << 20) + 5))
        # nbdcopy reads the data and skips the holes
        self.data_bytes = sum(length for _, length in runs)
        with open(self.img, 'wb') as f:
            f.truncate(SIZE)
            for start, length in runs:
                f.seek(start)
                f.write(rnd.randbytes(length))
        with open(self.img, 'rb') as f:
            self.data = f.read()

    def start(self, file_extra='', tls=False, tcp=False):
        stamp = time.monotonic_ns()
        self.sock = os.path.join(self.tmpdir, f'nbd-{stamp}.sock')
        args = []
        if tls:
            self.psk = os.path.join(self.tmpdir, 'psk')
            os.mkdir(self.psk, 0o700)
            res = subprocess.run(['psktool', '-u', 'alice', '-p',
                                  f'{self.psk}/keys.psk'],
                                 capture_output=True)
            self.assertEqual(res.returncode, 0, res.stderr)
            args += ['--object', f'tls-creds-psk,id=tls0,dir={self.psk},'
                                 'endpoint=server']
        if tcp:
            self.port = h.free_port()
            addr = f'addr.type=inet,addr.host=127.0.0.1,addr.port={self.port}'
        else:
            addr = f'addr.type=unix,addr.path={self.sock}'
        if tls:
            addr += ',tls-creds=tls0'
        args += [
            '--blockdev',
            f'driver=file,node-name=f,filename={self.img}{file_extra}',
            '--blockdev', 'driver=raw,node-name=r,file=f',
            '--blockdev', f'driver=raw,node-name=w,file=f,offset={RAW_OFFSET}',
            '--nbd-server', addr,
            '--export', 'type=nbd,id=e,node-name=r,name=disk',
            '--export', 'type=nbd,id=e2,node-name=w,name=window']
        d = self.start_daemon(args)
        if tcp:
            d.wait_until(lambda: self.port_open(), 'the NBD port')
        else:
            d.wait_for_socket_file(self.sock)
        return d

    def port_open(self):
        try:
            socket.create_connection(('127.0.0.1', self.port), 1).close()
            return True
        except OSError:
            return False

    def uri(self, name, tls=False, tcp=False):
        scheme = 'nbds' if tls else 'nbd'
        user = 'alice@' if tls else ''
        if tcp:
            base = f'{scheme}://{user}127.0.0.1:{self.port}/{name}'
            sep = '?'
        else:
            base = f'{scheme}+unix://{user}/{name}?socket={self.sock}'
            sep = '&'
        if tls:
            base += f'{sep}tls-psk-file={self.psk}/keys.psk'
        return base

    def copy_and_check(self, name, expected, tls=False, tcp=False):
        out = os.path.join(self.tmpdir, 'copy.raw')
        res = self.run_command(['nbdcopy', self.uri(name, tls, tcp), out])
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(out, 'rb') as f:
            got = f.read()
        os.unlink(out)
        self.assertEqual(len(got), len(expected))
        self.assertTrue(got == expected, 'nbdcopy got other bytes')

    def libnbd_reads(self, name, expected, tls=False, tcp=False):
        """Reads with structured replies, with DF, and simple replies."""
        rnd = random.Random(7)
        ranges = [(0, 1 << 20), (4097, (3 << 20) - 4097),
                  ((5 << 20) - 100, 1 << 20), (9 << 20, 8 << 20)]
        ranges += [(o, rnd.randrange(65536, 4 << 20))
                   for o in (rnd.randrange(0, len(expected) - (4 << 20))
                             for _ in range(8))]
        ranges.append((len(expected) - 300001, 300001))
        for structured in (True, False):
            hdl = nbd.NBD()
            hdl.set_request_structured_replies(structured)
            if tls:
                hdl.set_tls(nbd.TLS_REQUIRE)
                hdl.set_uri_allow_local_file(True)
            hdl.connect_uri(self.uri(name, tls, tcp))
            self.assertEqual(hdl.get_structured_replies_negotiated(),
                             structured)
            try:
                for off, n in ranges:
                    got = hdl.pread(n, off)
                    self.assertTrue(got == expected[off:off + n],
                                    f'read {n} at {off} (structured='
                                    f'{structured}) got other bytes')
                    if structured:
                        self.read_df(hdl, off, n, expected)
            finally:
                hdl.shutdown()

    def read_df(self, hdl, off, n, expected):
        """A read with the DF flag: one OFFSET_DATA chunk, holes included."""
        buf = bytearray(n)
        chunks = []

        def chunk(subbuf, offset, status, err):
            chunks.append((offset, len(subbuf), status))
            buf[offset - off:offset - off + len(subbuf)] = subbuf
            return 0

        hdl.pread_structured(n, off, chunk, flags=nbd.CMD_FLAG_DF)
        self.assertEqual(chunks, [(off, n, nbd.READ_DATA)])
        self.assertTrue(bytes(buf) == expected[off:off + n],
                        f'DF read {n} at {off} got other bytes')

    def check_all(self, file_extra='', tls=False, tcp=False, zerocopy=False):
        d = self.start(file_extra, tls=tls, tcp=tcp)
        before = written_by(d.proc.pid)
        self.copy_and_check('disk', self.data, tls, tcp)
        moved = written_by(d.proc.pid) - before
        if zerocopy:
            self.assertGreaterEqual(moved, self.data_bytes * 3 // 4,
                                    'the data did not go through sendfile')
        else:
            self.assertLess(moved, self.data_bytes // 16,
                            'sendfile was used where it must not be')
        self.copy_and_check('window', self.data[RAW_OFFSET:], tls, tcp)
        self.libnbd_reads('disk', self.data, tls, tcp)
        self.libnbd_reads('window', self.data[RAW_OFFSET:], tls, tcp)
        if not tls:
            res = self.run_command(['qemu-img', 'compare', '-f', 'raw',
                                    '-F', 'raw', self.img,
                                    self.uri('disk', tcp=tcp)])
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertTrue(d.running())

    def test_unix(self):
        self.check_all(zerocopy=True)

    def test_tcp(self):
        self.check_all(tcp=True)

    def test_tls(self):
        self.check_all(tls=True)

    def test_cache_direct(self):
        self.check_all(',cache.direct=on')


if __name__ == '__main__':
    h.main()
