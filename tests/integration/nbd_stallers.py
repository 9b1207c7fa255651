"""Connections that start the NBD handshake and stall, for the tests and
the benchmark of a server's defences against them (test_nbd_stalled.py,
tests/bench/bench-nbd-hostile.py)."""

import selectors
import socket
import struct
import time

NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_OPT_STARTTLS = 5
GREETING_LEN = 18
OPTION_REPLY_LEN = 20


class Stallers:
    """@count connections to the UNIX socket @path that start the NBD
    handshake and stall, driven by one selector.  Plain: two bytes of
    the client's flags, sent at once.  TLS: the flags and NBD_OPT_STARTTLS
    after the greeting, then after the server's ACK the first five bytes
    of a TLS record whose rest never comes.  What the server sends is
    read and dropped, so that its closing a connection is seen."""

    def __init__(self, path, count, tls=False):
        self.path = path
        self.tls = tls
        self.sel = selectors.DefaultSelector()
        self.pending = count        # not connected yet (backlog full)
        self.greeted = 0            # got the server's greeting
        self.stalled = 0            # sent all they will ever send
        self.closed = 0             # closed by the server
        self.lifetimes = []         # seconds from connect to close, each
        self.pump(0)

    def _connect_more(self):
        while self.pending:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(self.path)
            except (BlockingIOError, InterruptedError):
                s.close()
                return
            self.pending -= 1
            st = {'sock': s, 'buf': b'', 'state': 'greeting',
                  'connected_at': time.monotonic()}
            if not self.tls:
                s.send(b'\x00\x00')
            self.sel.register(s, selectors.EVENT_READ, st)

    def _on_data(self, st, data):
        st['buf'] += data
        s = st['sock']
        if st['state'] == 'greeting' and len(st['buf']) >= GREETING_LEN:
            self.greeted += 1
            st['buf'] = st['buf'][GREETING_LEN:]
            if self.tls:
                s.send(struct.pack('>IQII', 3, NBD_OPTS_MAGIC,
                                   NBD_OPT_STARTTLS, 0))
                st['state'] = 'starttls'
            else:
                st['state'] = 'stalled'
                self.stalled += 1
        if st['state'] == 'starttls' and len(st['buf']) >= OPTION_REPLY_LEN:
            s.send(b'\x16\x03\x01\x02\x00')
            st['state'] = 'stalled'
            self.stalled += 1
        if st['state'] == 'stalled':
            st['buf'] = b''

    def pump(self, seconds):
        """Connect, read and answer for @seconds (0: what is ready)."""
        deadline = time.monotonic() + seconds
        while True:
            self._connect_more()
            left = deadline - time.monotonic()
            for key, _ in self.sel.select(max(0.0, min(left, 0.05))):
                st = key.data
                try:
                    data = st['sock'].recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b''
                if not data:
                    self.sel.unregister(st['sock'])
                    st['sock'].close()
                    self.closed += 1
                    self.lifetimes.append(time.monotonic() -
                                          st['connected_at'])
                    continue
                self._on_data(st, data)
            if time.monotonic() >= deadline:
                return

    def pump_until(self, predicate, timeout):
        """Pump until predicate() holds (True) or @timeout (False)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            self.pump(0.05)
        return True

    def open_count(self):
        return len(self.sel.get_map()) + self.pending

    def close(self):
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()
