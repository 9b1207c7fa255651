#!/usr/bin/python3
"""A hostile vhost-user front end against the vhost-user-blk export: a raw
client (vhost_user_frontend.py) sends malformed messages and bad
descriptor chains.  Each must end that connection with a line on stderr
naming the fault, never the daemon; afterwards a well-behaved client is
served (GET_ID, a read checked against the image, a write).

The same raw client also compares, with qemu-storage-daemon 7.2, the
status and used length of every kind of virtio-blk request (misaligned,
partial, past the end, unknown; discard and write-zeroes flags) on a
writable and a read-only export, and the export's life cycle with a
front end connected (block-export-del safe and hard, SIGTERM).
"""

import os
import random
import struct

import blockd_harness as h
import vhost_user_frontend as vu

MiB = 1 << 20


def u64(v):
    return struct.pack('<Q', v)


def state(i, n):
    return struct.pack('<II', i, n)


class HostileTest(h.TestCase):

    def setUp(self):
        super().setUp()
        self.img = os.path.join(self.tmpdir, 'disk.raw')
        self.content = random.Random(1).randbytes(4 * MiB)
        with open(self.img, 'wb') as f:
            f.write(self.content)
        self.sock = os.path.join(self.tmpdir, 'vub.sock')
        self.d = self.start_daemon([
            '--blockdev', 'driver=file,node-name=disk,filename=' + self.img,
            '--export', 'type=vhost-user-blk,id=vub,node-name=disk,'
            'writable=on,num-queues=2,addr.type=unix,addr.path=' + self.sock])
        self.d.wait_for_socket_file(self.sock)

    def client(self):
        c = vu.Frontend(self.sock)
        self.addCleanup(c.close)
        return c

    def check_served(self):
        """A well-behaved front end gets correct answers."""
        c = self.client()
        c.setup()
        st, ln, data = c.blk_request(vu.T_GET_ID, 0, 20)
        self.assertEqual((st, ln), (0, 21))
        self.assertEqual(data.rstrip(b'\0'), b'vhost_user_blk')
        st, ln, data = c.blk_request(vu.T_IN, 8, 65536)
        self.assertEqual((st, ln), (0, 65537))
        self.assertEqual(data, self.content[4096:4096 + 65536])
        new = random.randbytes(4096)
        st, ln, _ = c.blk_request(vu.T_OUT, 16, 4096, new)
        self.assertEqual((st, ln), (0, 1))
        self.content = self.content[:8192] + new + self.content[12288:]
        st, ln, data = c.blk_request(vu.T_IN, 16, 4096)
        self.assertEqual(data, new)
        # past the end: an I/O error status, not a crash
        st, ln, _ = c.blk_request(vu.T_IN, 4 * MiB // 512, 512)
        self.assertEqual(st, 1)
        c.close()

    def expect_drop(self, c, what):
        self.assertTrue(c.is_closed(), 'the connection survived ' + what)
        self.d.wait_until(lambda: what in self.d.stderr(),
                          'the log line for ' + what)
        self.assertTrue(self.d.running())
        c.close()
        self.check_served()

    def test_bad_header(self):
        c = self.client()
        c.send(vu.GET_FEATURES, flags=2)
        self.expect_drop(c, 'protocol version 2')
        c = self.client()
        c.send(vu.GET_FEATURES, flags=1 | 4)
        self.expect_drop(c, 'a reply from the front end')
        c = self.client()
        c.send(vu.SET_FEATURES, size=1 << 20)
        self.expect_drop(c, 'payload of 1048576 bytes')

    def test_bad_requests(self):
        cases = [
            (99, b'', (), 'unknown request 99'),
            (vu.SET_FEATURES, b'\0' * 4, (),
             'VHOST_USER_SET_FEATURES with a payload of 4 bytes'),
            (vu.SET_FEATURES, u64(1 << 63), (), 'that were not offered'),
            (vu.SET_VRING_NUM, state(7, 16), (), 'for vring 7'),
            (vu.SET_VRING_NUM, state(0, 17), (), 'of 17 descriptors'),
            (vu.SET_VRING_KICK, u64(0x100), (), 'polling is not supported'),
            (vu.SET_VRING_KICK, u64(0x1000), (), 'unknown bits'),
            (vu.SET_VRING_CALL, u64(0), (),
             'with 0 file descriptors (expected 1)'),
            (vu.SET_MEM_TABLE, struct.pack('<II', 9, 0) + b'\0' * 288, (),
             'VHOST_USER_SET_MEM_TABLE: payload of 296 bytes (at most 268)'),
            (vu.SET_MEM_TABLE, struct.pack('<II', 2, 0) + b'\0' * 32, (),
             'VHOST_USER_SET_MEM_TABLE with 2 regions in 40 bytes'),
            (vu.SET_MEM_TABLE, struct.pack('<II', 1, 0) + b'\0' * 32, (),
             'VHOST_USER_SET_MEM_TABLE with 0 file descriptors (expected 1)'),
            (vu.GET_CONFIG, struct.pack('<III', 0, 300, 0), (),
             'VHOST_USER_GET_CONFIG with a payload of 12 bytes'),
            (vu.SET_CONFIG, struct.pack('<III', 0, 4, 0) + b'\0' * 4, (),
             'is refused'),
            (6, u64(0), (), 'VHOST_USER_SET_LOG_BASE is not supported'),
            (31, struct.pack('<QQHHI', 0, 0, 1, 128, 0), (),
             'VHOST_USER_GET_INFLIGHT_FD without the INFLIGHT_SHMFD'),
        ]
        for req, payload, fds, what in cases:
            with self.subTest(what=what):
                c = self.client()
                c.send(req, payload, fds)
                self.expect_drop(c, what)

    def test_bad_memory(self):
        # a region larger than its file
        c = self.client()
        fd = os.memfd_create('small')
        os.ftruncate(fd, 4096)
        c.send(vu.SET_MEM_TABLE, struct.pack('<II', 1, 0) +
               struct.pack('<QQQQ', 0, 1 << 20, 0, 0), fds=[fd])
        os.close(fd)
        self.expect_drop(c, 'is not a file of at least')
        # a region that wraps
        c = self.client()
        fd = os.memfd_create('m')
        os.ftruncate(fd, 4096)
        c.send(vu.SET_MEM_TABLE, struct.pack('<II', 1, 0) +
               struct.pack('<QQQQ', 2 ** 64 - 4096, 8192, 0, 0), fds=[fd])
        os.close(fd)
        self.expect_drop(c, 'is empty or wraps')
        # the descriptor is not a file at all
        c = self.client()
        r, w = os.pipe()
        c.send(vu.SET_MEM_TABLE, struct.pack('<II', 1, 0) +
               struct.pack('<QQQQ', 0, 4096, 0, 0), fds=[r])
        os.close(r)
        os.close(w)
        self.expect_drop(c, 'is not a file of at least')
        # rings outside guest memory
        c = self.client()
        c.setup()
        c.send(vu.GET_VRING_BASE, state(0, 0))
        c.reply(vu.GET_VRING_BASE)
        c.send(vu.SET_VRING_ADDR, struct.pack('<IIQQQQ', 0, 0, 0x1000,
                                              0x2000, 0x3000, 0))
        c.send(vu.SET_VRING_KICK, u64(0), fds=[c.kick])
        self.expect_drop(c, 'is misaligned or outside guest memory')

    def test_bad_chains(self):
        def loop(c):
            c.put_desc(0, vu.HDR, 16, vu.DESC_F_NEXT, 1)
            c.put_desc(1, vu.DATA, 512, vu.DESC_F_NEXT, 0)
            c.submit(0)

        def outside(c):
            c.put_desc(0, vu.HDR, 16, vu.DESC_F_NEXT, 1)
            c.put_desc(1, vu.MEM_SIZE - 512, 4096, vu.DESC_F_WRITE)
            c.submit(0)

        def next_out_of_range(c):
            c.put_desc(0, vu.HDR, 16, vu.DESC_F_NEXT, 200)
            c.submit(0)

        def head_out_of_range(c):
            c.submit(40)

        def avail_jump(c):
            c.avail_idx = 1000
            c.submit(0)

        def nested_indirect(c):
            c.put_desc(0, 0x20000, 32, vu.DESC_F_INDIRECT)
            c.put_desc(0, 0x30000, 16, vu.DESC_F_INDIRECT, table=0x20000)
            c.submit(0)

        def indirect_not_negotiated(c):
            c.put_desc(0, 0x20000, 32, vu.DESC_F_INDIRECT)
            c.submit(0)

        def readable_after_writable(c):
            c.put_desc(0, vu.STATUS, 1, vu.DESC_F_NEXT | vu.DESC_F_WRITE, 1)
            c.put_desc(1, vu.HDR, 16, 0)
            c.submit(0)

        cases = [
            (loop, vu.F_VERSION_1 | vu.F_PROTOCOL_FEATURES, 'a loop'),
            (outside, vu.F_VERSION_1 | vu.F_PROTOCOL_FEATURES,
             'is outside guest memory'),
            (next_out_of_range, vu.F_VERSION_1 | vu.F_PROTOCOL_FEATURES,
             'next descriptor 200'),
            (head_out_of_range, vu.F_VERSION_1 | vu.F_PROTOCOL_FEATURES,
             'head descriptor 40'),
            (avail_jump, vu.F_VERSION_1 | vu.F_PROTOCOL_FEATURES,
             'the available index moved'),
            (nested_indirect, vu.F_VERSION_1 | vu.F_PROTOCOL_FEATURES |
             vu.F_INDIRECT, 'inside an indirect table'),
            (indirect_not_negotiated, vu.F_VERSION_1 |
             vu.F_PROTOCOL_FEATURES, 'not negotiated'),
            (readable_after_writable, vu.F_VERSION_1 |
             vu.F_PROTOCOL_FEATURES, 'a device-readable buffer after'),
        ]
        for fn, features, what in cases:
            with self.subTest(what=what):
                c = self.client()
                c.setup(features=features)
                fn(c)
                self.expect_drop(c, what)

    def test_truncated_message(self):
        c = self.client()
        c.sock.send(struct.pack('<III', vu.SET_FEATURES, 1, 8) + b'\0\0')
        c.sock.shutdown(2)
        self.expect_drop(c, 'in the middle of a message')

    def test_second_queue_and_config(self):
        """GET_QUEUE_NUM, the config space, and I/O on the second queue."""
        c = self.client()
        c.setup()
        self.assertEqual(c.get_u64(vu.GET_QUEUE_NUM), 2)
        c.send(vu.GET_CONFIG, struct.pack('<III', 0, 60, 0) + bytes(60))
        cfg = c.reply(vu.GET_CONFIG)[12:]
        capacity, = struct.unpack_from('<Q', cfg, 0)
        self.assertEqual(capacity, 4 * MiB // 512)
        self.assertEqual(struct.unpack_from('<H', cfg, 34)[0], 2)
        c.close()
        c = self.client()
        c.setup(queue=1)
        st, ln, data = c.blk_request(vu.T_IN, 0, 4096)
        self.assertEqual((st, data), (0, self.content[:4096]))


class RequestStatusTest(h.TestCase):
    """The status of each virtio-blk request, as qemu-storage-daemon
    7.2 gives it, on a writable and a read-only export."""

    def statuses(self, qsd, writable):
        img = os.path.join(self.tmpdir, 'd-%d-%d.raw' % (qsd, writable))
        with open(img, 'wb') as f:
            f.truncate(1 * MiB)
        sock = os.path.join(self.tmpdir, 's-%d-%d' % (qsd, writable))
        args = ['--blockdev', 'driver=file,node-name=disk,filename=' + img,
                '--export', 'type=vhost-user-blk,id=vub,node-name=disk,'
                'writable=%s,logical-block-size=4096,addr.type=unix,'
                'addr.path=%s' % ('on' if writable else 'off', sock)]
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(sock)
        c = vu.Frontend(sock)
        self.addCleanup(c.close)
        c.setup()
        seg = struct.pack('<QII', 8, 8, 0)
        out = []
        for rtype, sector, length, data in [
                (vu.T_IN, 0, 4096, None),
                (vu.T_IN, 1, 4096, None),            # misaligned (4 KiB)
                (vu.T_IN, 0, 1000, None),            # not whole blocks
                (vu.T_IN, 2048, 4096, None),         # past the end
                (vu.T_OUT, 8, 4096, b'\x11' * 4096),
                (vu.T_FLUSH, 0, 0, None),
                (vu.T_DISCARD, 0, 16, seg),
                (vu.T_WRITE_ZEROES, 0, 16, seg),
                (vu.T_WRITE_ZEROES, 0, 16, struct.pack('<QII', 8, 8, 1)),
                (vu.T_WRITE_ZEROES, 0, 16, struct.pack('<QII', 8, 8, 2)),
                (vu.T_DISCARD, 0, 16, struct.pack('<QII', 8, 8, 1)),
                (99, 0, 0, None)]:
            st, ln, _ = c.blk_request(rtype, sector, length, data)
            out.append((rtype, sector, st, ln))
        c.close()
        d.stop()
        return out

    def test_same_as_qsd(self):
        for writable in (True, False):
            with self.subTest(writable=writable):
                self.assertEqual(self.statuses(False, writable),
                                 self.statuses(True, writable))


class LifecycleTest(h.TestCase):
    """block-export-add/-del over QMP and daemon exit with a front end
    connected, side by side with qemu-storage-daemon where it can be."""

    def start(self, qsd):
        mon = os.path.join(self.tmpdir, 'qmp-%d-%d.sock'
                           % (qsd, len(os.listdir(self.tmpdir))))
        args = ['--blockdev', 'null-co,node-name=n,size=4194304',
                '--chardev', 'socket,id=m,path=%s,server=on,wait=off' % mon,
                '--monitor', 'chardev=m']
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(mon)
        return d, self.qmp(mon)

    def test_export_del_with_client(self):
        for qsd, mode in ((False, None), (True, None), (False, 'hard'),
                          (True, 'hard')):
            with self.subTest(qsd=qsd, mode=mode):
                d, q = self.start(qsd)
                sock = os.path.join(self.tmpdir, 'vub-%d-%s.sock'
                                    % (qsd, mode))
                q.command('block-export-add', {
                    'type': 'vhost-user-blk', 'id': 'vub', 'node-name': 'n',
                    'addr': {'type': 'unix', 'path': sock}})
                exports = q.command('query-block-exports')
                self.assertEqual(exports, [{'type': 'vhost-user-blk',
                                            'id': 'vub', 'node-name': 'n',
                                            'shutting-down': False}])
                c = vu.Frontend(sock)
                self.addCleanup(c.close)
                c.setup()
                st, ln, data = c.blk_request(vu.T_GET_ID, 0, 20)
                self.assertEqual(data.rstrip(b'\0'), b'vhost_user_blk')
                # As qsd: a connected front end does not make a 'safe'
                # delete fail; it is disconnected (mode hard: the same).
                q.command('block-export-del',
                          {'id': 'vub', 'mode': mode} if mode else
                          {'id': 'vub'})
                q.wait_event('BLOCK_EXPORT_DELETED')
                self.assertTrue(c.is_closed())
                self.assertEqual(q.command('query-block-exports'), [])
                self.assertFalse(os.path.exists(sock))
                d.stop()
                self.assertEqual(d.returncode, 0)

    def test_exit_with_client(self):
        """SIGTERM with a front end connected and a queue running."""
        d, q = self.start(False)
        sock = os.path.join(self.tmpdir, 'vub.sock')
        q.command('block-export-add', {
            'type': 'vhost-user-blk', 'id': 'vub', 'node-name': 'n',
            'num-queues': 2, 'addr': {'type': 'unix', 'path': sock}})
        c = vu.Frontend(sock)
        self.addCleanup(c.close)
        c.setup(queue=1)
        st, _, _ = c.blk_request(vu.T_IN, 0, 4096)
        self.assertEqual(st, 0)
        self.assertEqual(d.stop(), 0)
        self.assertTrue(c.is_closed())


if __name__ == '__main__':
    h.main()
