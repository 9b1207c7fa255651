#!/usr/bin/python3
"""The NBD protocol corners of plugins/export-nbd, spoken by a raw-socket
client written here (libnbd 1.14 cannot negotiate extended headers):

- NBD_OPT_EXTENDED_HEADERS: negotiation and its interplay with
  NBD_OPT_STRUCTURED_REPLY; 32-byte requests with 64-bit lengths; every
  reply an extended 32-byte header (NBD_REPLY_TYPE_NONE for a success
  without data, OFFSET_DATA / OFFSET_HOLE for reads, BLOCK_STATUS_EXT with
  64-bit extents, error chunks); payload-length rules;
- qemu:allocation-depth: the contexts listed and selected, and the maps
  nbdinfo prints, byte for byte as qemu-storage-daemon 7.2 for raw-on-file
  and null-co nodes;
- NBD_INFO_BLOCK_SIZE from the node's alignment (cache.direct on and off),
  as qsd 7.2;
- nbd-server-add / block-export-add on a read-only node, as qsd 7.2;
- hostile clients (long and unknown options, oversized writes, requests
  past the end, a flood of requests, a disconnect mid-request): each ends
  at most its own connection and a second client keeps working.
"""

import json
import os
import socket
import struct

import blockd_harness as h
from blockd_harness import recv_exact

SIZE = 16 << 20

INIT_MAGIC = 0x4e42444d41474943
OPTS_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x3e889045565a9
REQUEST_MAGIC = 0x25609513
EXT_REQUEST_MAGIC = 0x21e41c71
SIMPLE_MAGIC = 0x67446698
CHUNK_MAGIC = 0x668e33ef
EXT_REPLY_MAGIC = 0x6e8a278c

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
OPT_STRUCTURED_REPLY, OPT_LIST_META, OPT_SET_META = 8, 9, 10
OPT_EXTENDED_HEADERS = 11
REP_ACK, REP_INFO, REP_META_CONTEXT = 1, 3, 4
REP_ERR_UNSUP = (1 << 31) + 1
REP_ERR_INVALID = (1 << 31) + 3
REP_ERR_TOO_BIG = (1 << 31) + 9
REP_ERR_EXT_HEADER_REQD = (1 << 31) + 10
INFO_EXPORT, INFO_BLOCK_SIZE = 0, 3

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_WRITE_ZEROES, CMD_BLOCK_STATUS = 6, 7
FLAG_FUA, FLAG_REQ_ONE, FLAG_PAYLOAD_LEN = 1, 8, 32
REPLY_FLAG_DONE = 1
TYPE_NONE, TYPE_OFFSET_DATA, TYPE_OFFSET_HOLE = 0, 1, 2
TYPE_BLOCK_STATUS, TYPE_BLOCK_STATUS_EXT = 5, 6
TYPE_ERROR = (1 << 15) + 1
EINVAL, EPERM = 22, 1
MAX_PAYLOAD = 32 << 20


def closed_by_peer(s, timeout=10):
    """True once the server hangs up (reads return EOF or a reset)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Client:
    """A raw NBD client: handshake helpers and one request at a time."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(20)
        self.s.connect(path)
        magic, opts, flags = struct.unpack('>QQH', recv_exact(self.s, 18))
        assert (magic, opts) == (INIT_MAGIC, OPTS_MAGIC)
        self.s.sendall(struct.pack('>I', 3))    # FIXED_NEWSTYLE, NO_ZEROES
        self.extended = False
        self.structured = False

    def close(self):
        self.s.close()

    def option(self, opt, data=b''):
        self.s.sendall(struct.pack('>QII', OPTS_MAGIC, opt, len(data)) + data)

    def reply(self):
        magic, opt, rtype, length = struct.unpack('>QIII',
                                                  recv_exact(self.s, 20))
        assert magic == REP_MAGIC, hex(magic)
        return opt, rtype, recv_exact(self.s, length)

    def replies(self, opt, data=b''):
        """Send an option; its replies up to the final one."""
        self.option(opt, data)
        out = []
        while True:
            o, rtype, payload = self.reply()
            assert o == opt
            out.append((rtype, payload))
            if rtype == REP_ACK or rtype & (1 << 31):
                return out

    def meta(self, opt, name, queries):
        data = struct.pack('>I', len(name)) + name.encode()
        data += struct.pack('>I', len(queries))
        for q in queries:
            data += struct.pack('>I', len(q)) + q.encode()
        reps = self.replies(opt, data)
        assert reps[-1][0] == REP_ACK, reps
        return [(struct.unpack('>I', p[:4])[0], p[4:].decode())
                for t, p in reps[:-1]]

    def go(self, name='disk', block_size=True, opt=OPT_GO):
        """NBD_OPT_GO: (size, flags, block sizes or None)."""
        infos = [INFO_BLOCK_SIZE] if block_size else []
        data = struct.pack('>I', len(name)) + name.encode()
        data += struct.pack(f'>H{len(infos)}H', len(infos), *infos)
        size = flags = sizes = None
        for rtype, p in self.replies(opt, data):
            if rtype == REP_INFO:
                itype = struct.unpack('>H', p[:2])[0]
                if itype == INFO_EXPORT:
                    size, flags = struct.unpack('>QH', p[2:])
                elif itype == INFO_BLOCK_SIZE:
                    sizes = struct.unpack('>III', p[2:])
            elif rtype != REP_ACK:
                raise AssertionError(f'{opt} failed: {rtype:#x} {p!r}')
        return size, flags, sizes

    def negotiate(self, extended=True, contexts=('base:allocation',)):
        if extended:
            assert self.replies(OPT_EXTENDED_HEADERS)[-1][0] == REP_ACK
            self.extended = self.structured = True
        else:
            assert self.replies(OPT_STRUCTURED_REPLY)[-1][0] == REP_ACK
            self.structured = True
        ids = {}
        if contexts:
            ids = {name: cid for cid, name in
                   self.meta(OPT_SET_META, 'disk', list(contexts))}
        self.go()
        return ids

    # --- transmission ---

    def send_request(self, cmd, offset=0, length=0, flags=0, cookie=1,
                     payload=b''):
        if self.extended:
            hdr = struct.pack('>IHHQQQ', EXT_REQUEST_MAGIC, flags, cmd,
                              cookie, offset, length)
        else:
            hdr = struct.pack('>IHHQQI', REQUEST_MAGIC, flags, cmd, cookie,
                              offset, length)
        self.s.sendall(hdr + payload)

    def read_chunk(self):
        """One reply message: (kind, flags, type, cookie, offset, payload);
        a simple reply has type None and its error in flags."""
        magic = struct.unpack('>I', recv_exact(self.s, 4))[0]
        if magic == EXT_REPLY_MAGIC:
            flags, rtype, cookie, offset, length = struct.unpack(
                '>HHQQQ', recv_exact(self.s, 28))
            return ('ext', flags, rtype, cookie, offset,
                    recv_exact(self.s, length))
        if magic == CHUNK_MAGIC:
            flags, rtype, cookie, length = struct.unpack(
                '>HHQI', recv_exact(self.s, 16))
            return ('chunk', flags, rtype, cookie, None,
                    recv_exact(self.s, length))
        if magic == SIMPLE_MAGIC:
            error, cookie = struct.unpack('>IQ', recv_exact(self.s, 12))
            return ('simple', error, None, cookie, None, b'')
        raise AssertionError(f'bad reply magic {magic:#x}')

    def chunks(self, cookie=1):
        """All messages of one reply, up to the final chunk."""
        out = []
        while True:
            c = self.read_chunk()
            assert c[3] == cookie, (c, cookie)
            out.append(c)
            if c[0] == 'simple' or c[1] & REPLY_FLAG_DONE:
                return out

    def request(self, *args, **kwargs):
        self.send_request(*args, **kwargs)
        return self.chunks(kwargs.get('cookie', 1))


def error_of(chunks):
    """The NBD error of a reply (0 on success)."""
    for kind, flags, rtype, _, _, payload in chunks:
        if kind == 'simple':
            return flags
        if rtype & (1 << 15):
            return struct.unpack('>I', payload[:4])[0]
    return 0


def read_data(chunks, off, length):
    """The bytes a structured read reply carries (holes as zeroes)."""
    got = bytearray(length)
    for _, _, rtype, _, _, p in chunks:
        if rtype == TYPE_OFFSET_HOLE:
            o, n = struct.unpack('>QI', p)
            got[o - off:o - off + n] = bytes(n)
        else:
            assert rtype == TYPE_OFFSET_DATA, rtype
            o = struct.unpack('>Q', p[:8])[0]
            got[o - off:o - off + len(p) - 8] = p[8:]
    return bytes(got)


class ProtocolCase(h.TestCase):

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(SIZE)
            f.seek(4 << 20)
            f.write(os.urandom(1 << 20))

    def start(self, blockdevs, exports, qsd=False, extra=()):
        name = 'qsd' if qsd else 'blockd'
        nbd_sock = os.path.join(self.tmpdir, f'{name}.nbd')
        qmp_sock = os.path.join(self.tmpdir, f'{name}.qmp')
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m', '--nbd-server',
                f'addr.type=unix,addr.path={nbd_sock}']
        for b in blockdevs:
            args += ['--blockdev', b]
        for e in exports:
            args += ['--export', e]
        args += list(extra)
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        # accepting, not just bound (the file appears before listen())
        d.wait_for_socket(nbd_sock)
        self.daemon = d
        return nbd_sock, qmp_sock

    def start_disk(self, writable=True, extra_opts=''):
        sock, _ = self.start(
            [f'driver=file,node-name=f,filename={self.img}'],
            ['type=nbd,id=e,node-name=f,name=disk,'
             f'writable={"on" if writable else "off"}{extra_opts}'])
        return sock

    def client(self, sock):
        c = Client(sock)
        self.addCleanup(c.close)
        return c

    def assert_serving(self, sock):
        """A fresh client still gets correct data from the daemon."""
        self.assertTrue(self.daemon.running())
        c = self.client(sock)
        c.negotiate(extended=False, contexts=())
        with open(self.img, 'rb') as f:
            f.seek(4 << 20)
            want = f.read(4096)
        chunks = c.request(CMD_READ, 4 << 20, 4096, flags=4)   # DF
        self.assertEqual(chunks[0][2], TYPE_OFFSET_DATA)
        self.assertEqual(chunks[0][5][8:], want)
        c.send_request(CMD_DISC)


class ExtendedHeadersTest(ProtocolCase):

    def test_negotiation_rules(self):
        sock = self.start_disk()
        c = self.client(sock)
        # a payload on an option that takes none
        self.assertEqual(c.replies(OPT_EXTENDED_HEADERS, b'x')[-1][0],
                         REP_ERR_INVALID)
        # structured first, then extended headers: both accepted
        self.assertEqual(c.replies(OPT_STRUCTURED_REPLY)[-1][0], REP_ACK)
        self.assertEqual(c.replies(OPT_EXTENDED_HEADERS)[-1][0], REP_ACK)
        # once extended: a second time is invalid, structured needs them
        self.assertEqual(c.replies(OPT_EXTENDED_HEADERS)[-1][0],
                         REP_ERR_INVALID)
        self.assertEqual(c.replies(OPT_STRUCTURED_REPLY)[-1][0],
                         REP_ERR_EXT_HEADER_REQD)
        # metadata contexts need no structured reply of their own
        self.assertEqual(c.meta(OPT_SET_META, 'disk', ['base:allocation']),
                         [(0, 'base:allocation')])
        size, flags, _ = c.go()
        self.assertEqual(size, SIZE)
        self.assertTrue(flags & (1 << 7))            # SEND_DF
        self.assertFalse(flags & (1 << 12))          # no BLOCK_STAT_PAYLOAD
        c.extended = c.structured = True
        chunks = c.request(CMD_FLUSH)
        self.assertEqual([(k, f, t) for k, f, t, *_ in chunks],
                         [('ext', REPLY_FLAG_DONE, TYPE_NONE)])

        # extended headers first, then structured reply is refused
        c2 = self.client(sock)
        self.assertEqual(c2.replies(OPT_EXTENDED_HEADERS)[-1][0], REP_ACK)
        self.assertEqual(c2.replies(OPT_STRUCTURED_REPLY)[-1][0],
                         REP_ERR_EXT_HEADER_REQD)
        self.assertEqual(c2.replies(OPT_ABORT)[-1][0], REP_ACK)

        # NBD_OPT_EXPORT_NAME is forbidden once extended headers are on
        # and cannot be answered with an error: the server hangs up
        c3 = self.client(sock)
        self.assertEqual(c3.replies(OPT_EXTENDED_HEADERS)[-1][0], REP_ACK)
        c3.option(OPT_EXPORT_NAME, b'disk')
        self.assertTrue(closed_by_peer(c3.s))
        # ... while with structured replies only it enters transmission
        c4 = self.client(sock)
        self.assertEqual(c4.replies(OPT_STRUCTURED_REPLY)[-1][0], REP_ACK)
        c4.option(OPT_EXPORT_NAME, b'disk')
        size, flags = struct.unpack('>QH', recv_exact(c4.s, 10))
        self.assertEqual(size, SIZE)
        c4.structured = True
        self.assertEqual([ch[0] for ch in c4.request(CMD_FLUSH)],
                         ['simple'])
        self.assert_serving(sock)

    def test_transmission(self):
        sock = self.start_disk()
        c = self.client(sock)
        ids = c.negotiate(contexts=('base:allocation',))
        base = ids['base:allocation']

        # a read: its chunks in extended headers echoing the request's
        # offset (holes are in test_large_lengths)
        with open(self.img, 'rb') as f:
            f.seek(4 << 20)
            data = f.read(1 << 20)
        off = (4 << 20) - 8192
        chunks = c.request(CMD_READ, off, 8192 + 4096, cookie=7)
        self.assertTrue(all(ch[0] == 'ext' and ch[4] == off
                            for ch in chunks), chunks)
        self.assertEqual(chunks[-1][1], REPLY_FLAG_DONE)
        self.assertEqual(read_data(chunks, off, 8192 + 4096),
                         bytes(8192) + data[:4096])

        # a write: with extended headers it must carry PAYLOAD_LEN, and
        # the payload follows the 32-byte header; NONE on success
        payload = os.urandom(65536)
        chunks = c.request(CMD_WRITE, 1 << 20, len(payload),
                           flags=FLAG_FUA | FLAG_PAYLOAD_LEN,
                           payload=payload)
        self.assertEqual([(t, f) for _, f, t, *_ in chunks],
                         [(TYPE_NONE, REPLY_FLAG_DONE)])
        # a non-compliant write without the flag is tolerated, its length
        # taken as the payload's (as QEMU 8.2's server does)
        chunks = c.request(CMD_WRITE, 2 << 20, 512, payload=b'\xaa' * 512)
        self.assertEqual(error_of(chunks), 0)
        self.assertEqual(error_of(c.request(CMD_FLUSH)), 0)
        with open(self.img, 'rb') as f:
            f.seek(1 << 20)
            self.assertEqual(f.read(len(payload)), payload)
            f.seek(2 << 20)
            self.assertEqual(f.read(512), b'\xaa' * 512)

        # block status over the whole export with a 64-bit length field:
        # BLOCK_STATUS_EXT, a count, then 64-bit (length, flags) extents
        chunks = c.request(CMD_BLOCK_STATUS, 0, SIZE)
        self.assertEqual(len(chunks), 1)
        kind, flags, rtype, _, offset, p = chunks[0]
        self.assertEqual((kind, flags, rtype, offset),
                         ('ext', REPLY_FLAG_DONE, TYPE_BLOCK_STATUS_EXT, 0))
        cid, count = struct.unpack('>II', p[:8])
        self.assertEqual(cid, base)
        self.assertEqual(len(p), 8 + 16 * count)
        extents = [struct.unpack('>QQ', p[8 + 16 * i:24 + 16 * i])
                   for i in range(count)]
        self.assertEqual(sum(n for n, _ in extents), SIZE)
        pos = 0
        for n, fl in extents:
            if pos <= 4 << 20 < pos + n:
                self.assertEqual(fl, 0)      # data at 4 MiB
            pos += n
        # REQ_ONE: a single extent
        chunks = c.request(CMD_BLOCK_STATUS, 0, SIZE, flags=FLAG_REQ_ONE)
        self.assertEqual(struct.unpack('>II', chunks[0][5][:8])[1], 1)

        # PAYLOAD_LEN on block status (BLOCK_STAT_PAYLOAD not offered):
        # the payload is skipped and the request refused
        c.send_request(CMD_BLOCK_STATUS, 0, 16, flags=FLAG_PAYLOAD_LEN,
                       payload=b'\0' * 16)
        self.assertEqual(error_of(c.chunks()), EINVAL)

        # past the end: EINVAL, as an extended error chunk
        chunks = c.request(CMD_READ, SIZE - 512, 1024)
        self.assertEqual(chunks[0][0], 'ext')
        self.assertEqual(error_of(chunks), EINVAL)
        chunks = c.request(CMD_WRITE_ZEROES, 0, 1 << 40)
        self.assertEqual(error_of(chunks), EINVAL)
        # a read above the payload limit is refused, the stream goes on
        self.assertEqual(error_of(c.request(CMD_READ, 0, MAX_PAYLOAD + 1)),
                         EINVAL)
        self.assertEqual(error_of(c.request(CMD_FLUSH)), 0)

        # a write payload above the limit: an error, then the hang-up
        c.send_request(CMD_WRITE, 0, 1 << 33, flags=FLAG_PAYLOAD_LEN,
                       cookie=9)
        self.assertEqual(error_of(c.chunks(cookie=9)), EINVAL)
        self.assertTrue(closed_by_peer(c.s))
        # the same for a payload announced on another command
        c2 = self.client(sock)
        c2.negotiate(contexts=('base:allocation',))
        c2.send_request(CMD_BLOCK_STATUS, 0, MAX_PAYLOAD + 1,
                        flags=FLAG_PAYLOAD_LEN, cookie=3)
        self.assertEqual(error_of(c2.chunks(cookie=3)), EINVAL)
        self.assertTrue(closed_by_peer(c2.s))
        self.assert_serving(sock)

    def test_large_lengths(self):
        # an 8 GiB null-co export: 64-bit effect lengths in one request
        big = 8 << 30
        sock, _ = self.start(
            [f'driver=null-co,node-name=n,size={big},read-zeroes=on'],
            ['type=nbd,id=e,node-name=n,name=disk,writable=on,'
             'allocation-depth=on'])
        c = self.client(sock)
        ids = c.negotiate(contexts=('base:allocation',
                                    'qemu:allocation-depth'))
        self.assertEqual(error_of(c.request(CMD_WRITE_ZEROES, 0, big)), 0)
        # a read of a zero range: one OFFSET_HOLE chunk
        chunks = c.request(CMD_READ, 1 << 32, 1 << 20)
        self.assertEqual(chunks, [('ext', REPLY_FLAG_DONE, TYPE_OFFSET_HOLE,
                                   1, 1 << 32,
                                   struct.pack('>QI', 1 << 32, 1 << 20))])
        self.assertEqual(error_of(c.request(CMD_TRIM, 4096, big - 4096)), 0)
        chunks = c.request(CMD_BLOCK_STATUS, 0, big)
        self.assertEqual([ch[1] for ch in chunks], [0, REPLY_FLAG_DONE])
        got = {}
        for ch in chunks:
            self.assertEqual(ch[2], TYPE_BLOCK_STATUS_EXT)
            cid, count = struct.unpack('>II', ch[5][:8])
            got[cid] = [struct.unpack('>QQ', ch[5][8 + 16 * i:24 + 16 * i])
                        for i in range(count)]
        # one extent longer than 32 bits can say
        self.assertEqual(got[ids['base:allocation']], [(big, 3)])
        self.assertEqual(got[ids['qemu:allocation-depth']], [(big, 1)])
        # the same without extended headers: 32-bit extents
        c2 = self.client(sock)
        ids = c2.negotiate(extended=False, contexts=('base:allocation',))
        chunks = c2.request(CMD_BLOCK_STATUS, 0, 0xffffffff)
        self.assertEqual(chunks[0][:3], ('chunk', REPLY_FLAG_DONE,
                                         TYPE_BLOCK_STATUS))
        self.assertEqual(chunks[0][5], struct.pack('>III', 0, 0xffffffff, 3))


class HostileTest(ProtocolCase):

    def test_options(self):
        sock = self.start_disk()
        c = self.client(sock)
        # unknown options, with a payload to skip
        self.assertEqual(c.replies(77, b'x' * 1000)[-1][0], REP_ERR_UNSUP)
        self.assertEqual(c.replies(0x7fffffff)[-1][0], REP_ERR_UNSUP)
        # INFO / GO and meta context payloads longer than any valid one:
        # skipped unread, answered with an error
        self.assertEqual(c.replies(OPT_INFO, b'\0' * (1 << 20))[-1][0],
                         REP_ERR_INVALID)
        c.replies(OPT_STRUCTURED_REPLY)
        self.assertEqual(c.replies(OPT_LIST_META, b'\0' * (1 << 20))[-1][0],
                         REP_ERR_TOO_BIG)
        # a query count the payload cannot hold
        data = struct.pack('>I', 4) + b'disk' + struct.pack('>I', 1 << 30)
        self.assertEqual(c.replies(OPT_LIST_META, data)[-1][0],
                         REP_ERR_INVALID)
        # the connection is still good
        self.assertEqual(c.go()[0], SIZE)
        c.send_request(CMD_DISC)

        # an option length above the server's limit: hang up at once
        c2 = self.client(sock)
        c2.s.sendall(struct.pack('>QII', OPTS_MAGIC, OPT_GO, 0xffffffff))
        self.assertTrue(closed_by_peer(c2.s))
        # an export name longer than the spec allows
        c3 = self.client(sock)
        c3.option(OPT_EXPORT_NAME, b'a' * 5000)
        self.assertTrue(closed_by_peer(c3.s))
        self.assert_serving(sock)

    def test_requests(self):
        sock = self.start_disk()
        c = self.client(sock)
        c.negotiate(extended=False, contexts=())
        # past the end, and wrapping around
        self.assertEqual(error_of(c.request(CMD_READ, SIZE, 1)), EINVAL)
        self.assertEqual(error_of(c.request(CMD_WRITE, SIZE - 1, 2,
                                            payload=b'ab')), EINVAL)
        self.assertEqual(error_of(c.request(CMD_TRIM, 2 ** 64 - 512, 1024)),
                         EINVAL)
        # block status without a selected context
        self.assertEqual(error_of(c.request(CMD_BLOCK_STATUS, 0, 512)),
                         EINVAL)
        # extended-only flag without extended headers
        self.assertEqual(error_of(c.request(CMD_WRITE, 0, 1, payload=b'x',
                                            flags=FLAG_PAYLOAD_LEN)), EINVAL)
        # unknown command
        self.assertEqual(error_of(c.request(99)), EINVAL)

        # a flood: many requests sent without reading a reply; the server
        # stops reading while its queue is full, then answers them all
        n = 400
        c.s.sendall(b''.join(
            struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_READ, i, 0, 65536)
            for i in range(n)))
        seen = set()
        for _ in range(n):
            ch = c.read_chunk()
            while not ch[1] & REPLY_FLAG_DONE:
                ch = c.read_chunk()
            seen.add(ch[3])
        self.assertEqual(seen, set(range(n)))

        # too large a write: error, then the connection is dropped
        c.send_request(CMD_WRITE, 0, MAX_PAYLOAD + 1, cookie=5)
        self.assertEqual(error_of(c.chunks(cookie=5)), EINVAL)
        self.assertTrue(closed_by_peer(c.s))

        # a client that goes away in the middle of a write's payload, and
        # one in the middle of a request header
        c2 = self.client(sock)
        c2.negotiate(extended=True, contexts=())
        c2.send_request(CMD_WRITE, 0, 1 << 20, flags=FLAG_PAYLOAD_LEN,
                        payload=b'x' * 1000)
        c2.close()
        c3 = self.client(sock)
        c3.negotiate(extended=True, contexts=())
        c3.s.sendall(struct.pack('>IHH', EXT_REQUEST_MAGIC, 0, CMD_READ))
        c3.close()
        # a bad magic ends that connection only
        c4 = self.client(sock)
        c4.negotiate(extended=True, contexts=())
        c4.s.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_READ, 1,
                                 0, 512) + bytes(4))  # compact after extended
        self.assertTrue(closed_by_peer(c4.s))
        self.assert_serving(sock)


class QsdComparisonTest(ProtocolCase):
    """What qemu-storage-daemon 7.2 answers, blockd answers too."""

    def both(self, blockdevs, exports, probe, extra=()):
        """probe(sock, qmp) on blockd and on qsd: their results."""
        out = []
        for qsd in (False, True):
            if qsd and not h.find_qsd():
                self.skipTest('qemu-storage-daemon is not installed')
            sock, qmp = self.start(blockdevs, exports, qsd=qsd, extra=extra)
            out.append(probe(sock, qmp))
            self.daemon.stop()
        return out

    def nbdinfo(self, *args):
        return self.run_command(['nbdinfo'] + list(args)).stdout

    def test_allocation_depth_maps(self):
        devs = [f'driver=file,node-name=f,filename={self.img}',
                'driver=raw,node-name=r,file=f',
                'driver=null-co,node-name=n,size=1048576',
                'driver=null-co,node-name=z,size=1048576,read-zeroes=on']
        exps = [f'type=nbd,id={n},node-name={n},name={n},allocation-depth=on'
                for n in ('f', 'r', 'n', 'z')]
        exps.append('type=nbd,id=plain,node-name=f,name=plain')

        def probe(sock, qmp):
            res = {}
            for name in ('f', 'r', 'n', 'z'):
                uri = f'nbd+unix:///{name}?socket={sock}'
                res[name] = (self.nbdinfo('--map=qemu:allocation-depth', uri),
                             self.nbdinfo('--map', uri))
            listing = json.loads(self.nbdinfo(
                '--list', '--json', f'nbd+unix:///?socket={sock}'))
            for e in listing['exports']:
                del e['uri']        # names each daemon's own socket
            res['list'] = listing
            # the contexts each query selects, listed and set
            for exp in ('f', 'plain'):
                for queries in ([], ['qemu:'], ['base:'],
                                ['qemu:allocation-depth'], ['qemu:nope'],
                                ['qemu:allocation-depth', 'base:allocation']):
                    c = Client(sock)
                    try:
                        c.replies(OPT_STRUCTURED_REPLY)
                        for opt in (OPT_LIST_META, OPT_SET_META):
                            res[exp, opt, tuple(queries)] = c.meta(
                                opt, exp, queries)
                    finally:
                        c.close()
            return res

        mine, theirs = self.both(devs, exps, probe)
        for name in ('f', 'r', 'n', 'z'):
            self.assertEqual(mine[name], theirs[name], name)
        self.assertEqual(mine['f'][0].split(),
                         ['0', str(SIZE), '1', 'local'])
        self.assertEqual(mine['n'][0].split(),
                         ['0', '1048576', '0', 'absent'])
        for key in theirs:
            self.assertEqual(mine[key], theirs[key], key)
        self.assertEqual(mine.keys(), theirs.keys())

    def test_block_sizes(self):
        shm = '/dev/shm'
        tmpfs_dir = None
        if os.path.isdir(shm):
            tmpfs_dir = os.path.join(shm, f'blockd-test-{os.getpid()}')
            os.mkdir(tmpfs_dir, 0o700)
            self.addCleanup(os.rmdir, tmpfs_dir)
            tmpfs_img = os.path.join(tmpfs_dir, 'img.raw')
            with open(tmpfs_img, 'wb') as f:
                f.truncate(SIZE)
            self.addCleanup(os.unlink, tmpfs_img)
        cases = [('disk-direct', f'filename={self.img},cache.direct=on'),
                 ('disk', f'filename={self.img}')]
        if tmpfs_dir:
            cases.append(('tmpfs-direct',
                          f'filename={tmpfs_img},cache.direct=on'))
        devs = [f'driver=file,node-name={n},{opts}' for n, opts in cases]
        exps = [f'type=nbd,id={n},node-name={n},name={n}' for n, _ in cases]

        def probe(sock, qmp):
            res = {}
            for n, _ in cases:
                info = json.loads(self.nbdinfo(
                    '--json', f'nbd+unix:///{n}?socket={sock}'))
                res[n] = [info['exports'][0][k] for k in
                          ('block_size_minimum', 'block_size_preferred',
                           'block_size_maximum')]
                # the raw protocol: GO without the block size request
                c = Client(sock)
                try:
                    res[n, 'info'] = c.replies(
                        OPT_INFO, struct.pack('>I', len(n)) + n.encode() +
                        struct.pack('>H', 0))
                    res[n, 'no-request'] = c.go(n, block_size=False)[2]
                finally:
                    c.close()
            return res

        mine, theirs = self.both(devs, exps, probe)
        self.assertEqual(mine, theirs)
        self.assertEqual(mine['disk'], [1, 4096, 32 << 20])
        self.assertGreater(mine['disk-direct'][0], 1)

    def test_read_only_node(self):
        devs = [f'driver=file,node-name=f,filename={self.img},read-only=on']

        def probe(sock, qmp):
            res = []
            with self.qmp(qmp) as q:
                for cmd, args in [
                        ('block-export-add', {'type': 'nbd', 'id': 'a',
                                              'node-name': 'f',
                                              'writable': True}),
                        ('block-export-add', {'type': 'nbd', 'id': 'b',
                                              'node-name': 'f', 'name': 'b',
                                              'writable': False}),
                        ('nbd-server-add', {'device': 'f',
                                            'writable': True}),
                        ('nbd-server-add', {'device': 'nope'}),
                        ('query-block-exports', {})]:
                    res.append(q.execute(cmd, args))
            info = json.loads(self.nbdinfo(
                '--json', f'nbd+unix:///f?socket={sock}'))
            res.append(info['exports'][0]['is_read_only'])
            return res

        mine, theirs = self.both(devs, [], probe)
        self.assertEqual(mine, theirs)
        self.assertEqual(mine[0]['error']['desc'],
                         'Cannot export read-only node as writable')
        self.assertTrue(mine[-1])


if __name__ == '__main__':
    h.main()
