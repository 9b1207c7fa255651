"""A small vhost-user front end in Python for protocol-level tests: the
messages of specs/vhost-user.rst over a UNIX socket (descriptors passed
with SCM_RIGHTS), guest memory as a memfd, one split virtqueue laid out
in it, and virtio-blk requests put on that queue.  It can also send what
no real front end would (bad messages, bad descriptor chains).
"""
import mmap
import os
import select
import socket
import struct
import time

GET_FEATURES = 1
SET_FEATURES = 2
SET_OWNER = 3
SET_MEM_TABLE = 5
SET_VRING_NUM = 8
SET_VRING_ADDR = 9
SET_VRING_BASE = 10
GET_VRING_BASE = 11
SET_VRING_KICK = 12
SET_VRING_CALL = 13
GET_PROTOCOL_FEATURES = 15
SET_PROTOCOL_FEATURES = 16
GET_QUEUE_NUM = 17
SET_VRING_ENABLE = 18
GET_CONFIG = 24
SET_CONFIG = 25

F_VERSION_1 = 1 << 32
F_PROTOCOL_FEATURES = 1 << 30
F_INDIRECT = 1 << 28
F_EVENT_IDX = 1 << 29
PF_MQ = 1 << 0
PF_REPLY_ACK = 1 << 3
PF_CONFIG = 1 << 9

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4

T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
T_DISCARD, T_WRITE_ZEROES = 11, 13

# Guest memory layout (guest address == offset in the memfd).
MEM_SIZE = 4 << 20
UVA_BASE = 0x7f0000000000      # the "front end's" address of guest memory
DESC, AVAIL, USED = 0x0, 0x4000, 0x8000
HDR, STATUS, DATA = 0x10000, 0x11000, 0x100000


class Closed(Exception):
    pass


class Frontend:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # A busy back end's backlog may be full for a moment: retry.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.mem = None
        self.qsize = 0
        self.avail_idx = 0
        self.used_seen = 0

    def close(self):
        self.sock.close()
        if self.mem is not None:
            self.mem.close()
            os.close(self.memfd)
            os.close(self.kick)
            os.close(self.call)
            self.mem = None

    # --- messages -----------------------------------------------------------

    def send(self, req, payload=b'', fds=(), flags=1, size=None):
        hdr = struct.pack('<III', req, flags,
                          len(payload) if size is None else size)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                struct.pack('%di' % len(fds), *fds))] if fds else []
        self.sock.sendmsg([hdr + payload], anc)

    def recv_exact(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed()
            buf += chunk
        return buf

    def reply(self, req):
        r, flags, size = struct.unpack('<III', self.recv_exact(12))
        assert r == req and flags & 4, (r, flags)
        return self.recv_exact(size)

    def get_u64(self, req):
        self.send(req)
        return struct.unpack('<Q', self.reply(req))[0]

    def is_closed(self, timeout=5):
        """True once the back end has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    # --- a working device -----------------------------------------------------

    def setup(self, qsize=16, features=F_VERSION_1 | F_PROTOCOL_FEATURES,
              queue=0):
        offered = self.get_u64(GET_FEATURES)
        assert offered & features == features, hex(offered)
        self.send(SET_FEATURES, struct.pack('<Q', features))
        pf = self.get_u64(GET_PROTOCOL_FEATURES)
        self.send(SET_PROTOCOL_FEATURES, struct.pack('<Q', pf & (PF_MQ |
                                                                 PF_CONFIG)))
        self.send(SET_OWNER)
        self.memfd = os.memfd_create('guest')
        os.ftruncate(self.memfd, MEM_SIZE)
        self.mem = mmap.mmap(self.memfd, MEM_SIZE)
        self.send(SET_MEM_TABLE,
                  struct.pack('<II', 1, 0) +
                  struct.pack('<QQQQ', 0, MEM_SIZE, UVA_BASE, 0),
                  fds=[self.memfd])
        self.qsize = qsize
        self.queue = queue
        self.send(SET_VRING_NUM, struct.pack('<II', queue, qsize))
        self.send(SET_VRING_BASE, struct.pack('<II', queue, 0))
        self.send(SET_VRING_ADDR, struct.pack('<IIQQQQ', queue, 0,
                                              UVA_BASE + DESC,
                                              UVA_BASE + USED,
                                              UVA_BASE + AVAIL, 0))
        self.kick = os.eventfd(0, os.EFD_NONBLOCK)
        self.call = os.eventfd(0, os.EFD_NONBLOCK)
        self.send(SET_VRING_CALL, struct.pack('<Q', queue), fds=[self.call])
        self.send(SET_VRING_KICK, struct.pack('<Q', queue), fds=[self.kick])
        self.send(SET_VRING_ENABLE, struct.pack('<II', queue, 1))

    def put_desc(self, i, addr, length, flags, nxt=0, table=DESC):
        struct.pack_into('<QIHH', self.mem, table + 16 * i, addr, length,
                         flags, nxt)

    def submit(self, head, kick=True):
        """Make descriptor @head available and kick."""
        slot = self.avail_idx % self.qsize
        struct.pack_into('<H', self.mem, AVAIL + 4 + 2 * slot, head)
        self.avail_idx = (self.avail_idx + 1) & 0xffff
        struct.pack_into('<H', self.mem, AVAIL + 2, self.avail_idx)
        if kick:
            os.eventfd_write(self.kick, 1)

    def used_idx(self):
        return struct.unpack_from('<H', self.mem, USED + 2)[0]

    def wait_used(self, timeout=10):
        """Wait until the used index moves; returns (id, len)."""
        while self.used_idx() == self.used_seen:
            r, _, _ = select.select([self.call], [], [], timeout)
            if not r:
                raise TimeoutError('no completion')
            os.eventfd_read(self.call)
        slot = self.used_seen % self.qsize
        self.used_seen = (self.used_seen + 1) & 0xffff
        return struct.unpack_from('<II', self.mem, USED + 4 + 8 * slot)

    def blk_request(self, rtype, sector, length=0, data=None):
        """One virtio-blk request in three descriptors; returns
        (status, used length, data read)."""
        struct.pack_into('<IIQ', self.mem, HDR, rtype, 0, sector)
        self.mem[STATUS] = 0xff
        self.put_desc(0, HDR, 16, DESC_F_NEXT, 1)
        nxt = 1
        if length:
            if data is not None:
                self.mem[DATA:DATA + length] = data
            self.put_desc(1, DATA, length,
                          DESC_F_NEXT | (DESC_F_WRITE if rtype in
                                         (T_IN, T_GET_ID) else 0), 2)
            nxt = 2
        self.put_desc(nxt, STATUS, 1, DESC_F_WRITE)
        if nxt == 1:
            struct.pack_into('<QIHH', self.mem, DESC, HDR, 16,
                             DESC_F_NEXT, 1)
        self.submit(0)
        _, ln = self.wait_used()
        return self.mem[STATUS], ln, bytes(self.mem[DATA:DATA + length])
