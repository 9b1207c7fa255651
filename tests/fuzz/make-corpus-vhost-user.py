#!/usr/bin/env python3
"""Write the seed corpus of fuzz-vhost-user (see fuzz-vhost-user.c for
the record format): a front end's set-up as QEMU sends it, then
requests in guest memory (direct, chained, indirect; with and without
EVENT_IDX), and a few broken variants.

    make-corpus-vhost-user.py DIR
"""
import os
import struct
import sys

UVA = 0x7f0000000000
DESC, AVAIL, USED = 0x0, 0x1000, 0x2000
F_VERSION_1, F_PROTO, F_INDIRECT, F_EVENT_IDX = 1 << 32, 1 << 30, 1 << 28, \
    1 << 29


def msg(req, payload=b'', flags=1, extra_fd=False, less_fd=False):
    kind = 0 | (4 if extra_fd else 0) | (8 if less_fd else 0)
    return bytes([kind]) + struct.pack('<III', req, flags, len(payload)) + \
        payload


def mem(off, data):
    out = b''
    while data:
        chunk, data = data[:255], data[255:]
        out += bytes([1]) + struct.pack('<HB', off, len(chunk)) + chunk
        off += len(chunk)
    return out


def kick(q=0):
    return bytes([2 | (q << 2)])


def setup(features=F_VERSION_1 | F_PROTO, q=0, qsize=8, inflight=False):
    s = msg(1) + msg(2, struct.pack('<Q', features)) + msg(15) + \
        msg(16, struct.pack('<Q', 1 | (1 << 3) | (1 << 9) | (1 << 12))) + \
        msg(3)
    if inflight:
        # the buffer is the guest memory file, from offset 0xc000
        s += msg(31, struct.pack('<QQHHI', 0, 0, 2, qsize, 0))
        s += msg(32, struct.pack('<QQHHI', 0x1000, 0xc000, 2, qsize, 0))
    s += msg(5, struct.pack('<II', 1, 0) +
             struct.pack('<QQQQ', 0, 0x10000, UVA, 0))
    s += msg(8, struct.pack('<II', q, qsize))
    s += msg(10, struct.pack('<II', q, 0))
    s += msg(9, struct.pack('<IIQQQQ', q, 0, UVA + DESC, UVA + USED,
                            UVA + AVAIL, 0))
    s += msg(13, struct.pack('<Q', q)) + msg(12, struct.pack('<Q', q))
    s += msg(18, struct.pack('<II', q, 1))
    return s


def desc(i, addr, ln, flags, nxt=0, table=DESC):
    return mem(table + 16 * i, struct.pack('<QIHH', addr, ln, flags, nxt))


def avail(idx, heads):
    ring = b''.join(struct.pack('<H', h) for h in heads)
    return mem(AVAIL + 4, ring) + mem(AVAIL + 2, struct.pack('<H', idx))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    chain = desc(0, 0x4000, 16, 1, 1) + desc(1, 0x5000, 512, 3, 2) + \
        desc(2, 0x6000, 1, 2)
    seeds['setup-read'] = setup() + chain + avail(1, [0]) + kick() + \
        bytes([3]) + kick()
    seeds['event-idx'] = setup(F_VERSION_1 | F_PROTO | F_EVENT_IDX) + \
        chain + avail(1, [0]) + kick() + avail(2, [0, 0]) + kick()
    seeds['indirect'] = setup(F_VERSION_1 | F_PROTO | F_INDIRECT) + \
        desc(0, 0x8000, 48, 4) + desc(0, 0x4000, 16, 1, 1, table=0x8000) + \
        desc(1, 0x5000, 4096, 3, 2, table=0x8000) + \
        desc(2, 0x6000, 1, 2, table=0x8000) + avail(1, [0]) + kick()
    region = struct.pack('<QHHHH', 0, 1, 8, 0, 0) + \
        struct.pack('<B5xHQ', 1, 0, 5) + bytes(16) + \
        struct.pack('<B5xHQ', 1, 0, 3)
    seeds['inflight'] = setup(inflight=True) + chain + \
        desc(2, 0x4000, 16, 1, 3) + desc(3, 0x6000, 1, 2) + \
        mem(0xc000, region) + mem(USED + 2, struct.pack('<H', 0)) + \
        avail(1, [0]) + kick() + kick()
    # found by the fuzzer: an in-flight buffer at an odd offset
    seeds['regress-inflight-misaligned'] = setup() + \
        msg(32, struct.pack('<QQHHI', 0x1000, 0xc001, 2, 8, 0)) + \
        msg(12, struct.pack('<Q', 0))
    seeds['queue1'] = setup(q=1) + msg(17) + chain + avail(1, [0]) + kick(1)
    seeds['loop'] = setup() + desc(0, 0x4000, 16, 1, 1) + \
        desc(1, 0x4000, 16, 1, 0) + avail(1, [0]) + kick()
    seeds['config'] = msg(1) + msg(24, struct.pack('<III', 0, 60, 0) +
                                   bytes(60)) + \
        msg(25, struct.pack('<III', 32, 1, 0) + b'\x01')
    seeds['mem-regions'] = msg(5, struct.pack('<II', 2, 0) +
                               struct.pack('<QQQQ', 0, 0x8000, UVA, 0) +
                               struct.pack('<QQQQ', 0x8000, 0x8000,
                                           UVA + 0x8000, 0x8000)) + \
        msg(37, struct.pack('<Q', 0) +
            struct.pack('<QQQQ', 0x100000, 0x1000, 0x200000, 0)) + \
        msg(38, struct.pack('<Q', 0) +
            struct.pack('<QQQQ', 0x100000, 0x1000, 0x200000, 0))
    seeds['reset'] = setup() + msg(11, struct.pack('<II', 0, 0)) + \
        msg(34) + setup()
    seeds['bad-fds'] = msg(5, struct.pack('<II', 1, 0) +
                           struct.pack('<QQQQ', 0, 0x1000, 0, 0),
                           extra_fd=True)
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
