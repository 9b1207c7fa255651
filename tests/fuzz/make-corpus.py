#!/usr/bin/env python3
"""Write the seed corpus of fuzz-nbd-server into corpus-nbd/.

Each file is one input of the fuzz target: a mode byte, then what the
client sends (see the mode bits in fuzz-nbd-server.c).  The
seeds are client transcripts that reach the parts of the server a
mutation should start from: every option of the handshake, every
command of the transmission phase, and the usual ways of getting them
wrong.  Files named regress-* reproduce bugs the fuzzer found; they are
written here too, so the directory can always be regenerated.

Usage: make-corpus.py [OUTPUT_DIR]   (default: corpus-nbd beside this file)
Standard library only; the output is the same on every run.
"""

import os
import struct
import sys

OPTS_MAGIC = 0x49484156454F5054           # IHAVEOPT
REQUEST_MAGIC = 0x25609513
EXTENDED_REQUEST_MAGIC = 0x21E41C71

FLAG_C_FIXED_NEWSTYLE = 1
FLAG_C_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_PEEK_EXPORT = 4
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10
OPT_EXTENDED_HEADERS = 11

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4

# The mode byte (fuzz-nbd-server.c): bit 0 canned handshake, bits 1-2
# which one, bit 3 the read-only export, bits 4-5 the piece size, bits 6-7
# when the writable export is removed (mode=hard) during the conversation
# (3: by a client that does not read replies until it is blocked).
RAW = 0x00
CANNED_STRUCTURED_META = 0x01
CANNED_SIMPLE = 0x03
CANNED_EXPORT_NAME = 0x05
CANNED_ALL_INFO = 0x07
READ_ONLY = 0x08
PIECES_1 = 0x10
PIECES_7 = 0x20
PIECES_61 = 0x30
DELETE_AT_ONCE = 0x40
DELETE_AFTER_4K = 0x80
DELETE_LAZY_READER = 0xC0

EXPORT = b'fz'
EXPORT_SIZE = 64 * 1024 * 1024


def flags(fixed=True, no_zeroes=True):
    return struct.pack('>I', (FLAG_C_FIXED_NEWSTYLE if fixed else 0) |
                       (FLAG_C_NO_ZEROES if no_zeroes else 0))


def option(opt, data=b'', length=None):
    if length is None:
        length = len(data)
    return struct.pack('>QII', OPTS_MAGIC, opt, length) + data


def name_data(name):
    return struct.pack('>I', len(name)) + name


def info_data(name, infos=()):
    return (name_data(name) + struct.pack('>H', len(infos)) +
            b''.join(struct.pack('>H', i) for i in infos))


def meta_data(name, queries):
    return (name_data(name) + struct.pack('>I', len(queries)) +
            b''.join(name_data(q) for q in queries))


def request(cmd, offset=0, length=0, flags_=0, cookie=1, payload=b'',
            magic=REQUEST_MAGIC):
    return struct.pack('>IHHQQI', magic, flags_, cmd, cookie, offset,
                       length) + payload


def go_structured(name=EXPORT):
    """The client half of a full negotiation, written out."""
    return (flags() + option(OPT_STRUCTURED_REPLY) +
            option(OPT_SET_META_CONTEXT,
                   meta_data(name, [b'base:allocation'])) +
            option(OPT_GO, info_data(name, [INFO_BLOCK_SIZE])))


def every_command():
    """One of each command, with the flags a real client uses."""
    data = bytes(range(256)) * 2
    return (request(CMD_WRITE, 4096, len(data), cookie=1, payload=data) +
            request(CMD_READ, 0, 4096, cookie=2) +
            request(CMD_READ, 4096, 512, CMD_FLAG_DF, cookie=3) +
            request(CMD_WRITE, 0, 512, CMD_FLAG_FUA, cookie=4,
                    payload=b'\xaa' * 512) +
            request(CMD_WRITE_ZEROES, 65536, 1 << 20, cookie=5) +
            request(CMD_WRITE_ZEROES, 0, 4096,
                    CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO, cookie=6) +
            request(CMD_TRIM, 1 << 20, 1 << 20, CMD_FLAG_FUA, cookie=7) +
            request(CMD_CACHE, 0, 1 << 16, cookie=8) +
            request(CMD_FLUSH, cookie=9) +
            request(CMD_BLOCK_STATUS, 0, EXPORT_SIZE, cookie=10) +
            request(CMD_BLOCK_STATUS, 512, 4096, CMD_FLAG_REQ_ONE,
                    cookie=11) +
            request(CMD_DISC, cookie=12))


def seeds():
    yield 'go-every-command', bytes([RAW]) + go_structured() + every_command()
    yield 'canned-structured', (bytes([CANNED_STRUCTURED_META]) +
                                every_command())
    yield 'canned-simple', bytes([CANNED_SIMPLE]) + every_command()
    yield 'canned-export-name', bytes([CANNED_EXPORT_NAME]) + every_command()
    yield 'canned-all-info', bytes([CANNED_ALL_INFO]) + every_command()
    yield 'canned-read-only', (bytes([CANNED_STRUCTURED_META | READ_ONLY]) +
                               every_command())
    yield 'sparse-read', bytes([CANNED_STRUCTURED_META]) + (
        request(CMD_WRITE, 4096, 512, payload=b'd' * 512) +
        request(CMD_WRITE, 65536 + 100, 3, payload=b'abc') +
        request(CMD_READ, 0, 1 << 18, cookie=2) +
        request(CMD_BLOCK_STATUS, 0, 1 << 18, cookie=3) +
        request(CMD_WRITE_ZEROES, 4096, 512, cookie=4) +
        request(CMD_READ, 0, 8192, CMD_FLAG_FUA, cookie=5) +
        request(CMD_BLOCK_STATUS, 4096, 1 << 18, CMD_FLAG_REQ_ONE,
                cookie=6))
    yield 'pieces-1', bytes([CANNED_STRUCTURED_META | PIECES_1]) + (
        request(CMD_READ, 0, 1024) + request(CMD_BLOCK_STATUS, 0, 8192) +
        request(CMD_DISC))
    yield 'pieces-7', bytes([RAW | PIECES_7]) + go_structured() + (
        request(CMD_WRITE, 0, 100, payload=b'x' * 100) + request(CMD_DISC))
    yield 'pieces-61', bytes([CANNED_SIMPLE | PIECES_61]) + (
        request(CMD_READ, 0, 70000) + request(CMD_DISC))

    # the export removed under the client, at different points
    yield 'delete-in-flight', bytes([CANNED_STRUCTURED_META |
                                     DELETE_AFTER_4K]) + (
        b''.join(request(CMD_READ, i << 20, 1 << 20, cookie=i)
                 for i in range(20)) + every_command())
    yield 'delete-pieces', bytes([CANNED_SIMPLE | PIECES_61 |
                                  DELETE_AFTER_4K]) + (
        request(CMD_WRITE, 0, 4096, payload=b'p' * 4096) +
        request(CMD_FLUSH) + request(CMD_READ, 0, 4096))
    yield 'delete-lazy-reader', bytes([CANNED_SIMPLE |
                                       DELETE_LAZY_READER]) + (
        b''.join(request(CMD_READ, 0, 1 << 20, cookie=i) for i in range(40)))
    yield 'delete-negotiating', bytes([RAW | PIECES_7 | DELETE_AT_ONCE]) + (
        flags() + option(OPT_LIST) + option(OPT_STRUCTURED_REPLY) +
        option(OPT_SET_META_CONTEXT,
               meta_data(EXPORT, [b'base:allocation'])) +
        option(OPT_INFO, info_data(EXPORT)) +
        option(OPT_GO, info_data(EXPORT)) + request(CMD_READ, 0, 512))

    # the handshake's options one at a time
    yield 'opt-list', bytes([RAW]) + flags() + option(OPT_LIST) + option(
        OPT_LIST, b'xx') + option(OPT_ABORT)
    yield 'opt-info', bytes([RAW]) + flags() + option(
        OPT_INFO, info_data(EXPORT, [INFO_NAME, INFO_DESCRIPTION,
                                     INFO_BLOCK_SIZE, INFO_EXPORT])) + option(
        OPT_INFO, info_data(b'nonesuch')) + option(
        OPT_INFO, b'\x00\x00\x00\x09ro') + option(OPT_ABORT)
    yield 'opt-structured-reply', bytes([RAW]) + flags() + option(
        OPT_STRUCTURED_REPLY) + option(OPT_STRUCTURED_REPLY) + option(
        OPT_STRUCTURED_REPLY, b'\x00') + option(OPT_ABORT)
    yield 'opt-meta-context', bytes([RAW]) + flags() + option(
        OPT_LIST_META_CONTEXT, meta_data(EXPORT, [])) + option(
        OPT_STRUCTURED_REPLY) + option(
        OPT_LIST_META_CONTEXT, meta_data(EXPORT, [])) + option(
        OPT_LIST_META_CONTEXT, meta_data(EXPORT, [b'base:'])) + option(
        OPT_LIST_META_CONTEXT, meta_data(b'ro', [b'qemu:dirty-bitmap:'])) + (
        option(OPT_SET_META_CONTEXT,
               meta_data(b'ro', [b'base:allocation', b'x:y']))) + option(
        OPT_GO, info_data(EXPORT)) + request(CMD_BLOCK_STATUS, 0, 4096) + (
        request(CMD_DISC))
    yield 'opt-export-name', bytes([RAW]) + flags(no_zeroes=False) + option(
        OPT_EXPORT_NAME, EXPORT) + request(CMD_READ, 0, 512) + request(
        CMD_DISC)
    yield 'opt-export-name-unfixed', bytes([RAW]) + flags(
        fixed=False, no_zeroes=False) + option(OPT_EXPORT_NAME, b'ro')
    yield 'opt-export-name-unknown', bytes([RAW]) + flags() + option(
        OPT_EXPORT_NAME, b'nonesuch')
    yield 'opt-unsupported', bytes([RAW]) + flags() + option(
        OPT_STARTTLS) + option(OPT_PEEK_EXPORT) + option(
        OPT_EXTENDED_HEADERS) + option(99, b'abc') + option(OPT_ABORT)

    # the usual ways of getting it wrong
    yield 'bad-client-flags', bytes([RAW]) + struct.pack('>I', 0xFC)
    yield 'bad-option-magic', bytes([RAW]) + flags() + struct.pack(
        '>QII', 0x4E42444D41474943, OPT_LIST, 0)
    yield 'option-too-long', bytes([RAW]) + flags() + option(
        OPT_GO, b'', length=0xFFFFFFFF)
    yield 'option-short', bytes([RAW]) + flags() + option(
        OPT_GO, info_data(EXPORT), length=40)
    yield 'bad-request-magic', bytes([CANNED_SIMPLE]) + request(
        CMD_READ, magic=0x12345678)
    yield 'extended-request', bytes([CANNED_STRUCTURED_META]) + request(
        CMD_READ, 0, 512, magic=EXTENDED_REQUEST_MAGIC)
    yield 'bad-requests', bytes([CANNED_STRUCTURED_META]) + (
        request(CMD_READ, EXPORT_SIZE - 1, 2) +
        request(CMD_READ, 0, 0) +
        request(CMD_READ, 0, 64 << 20) +
        request(CMD_WRITE, 1 << 62, 1, payload=b'z') +
        request(CMD_READ, 0, 512, 0xFFFF) +
        request(CMD_BLOCK_STATUS, 0, 0) +
        request(42, 0, 512) +
        request(CMD_DISC, 0, 512, CMD_FLAG_FUA))
    yield 'write-read-only', bytes([CANNED_SIMPLE | READ_ONLY]) + (
        request(CMD_WRITE, 0, 16, payload=b'w' * 16) +
        request(CMD_TRIM, 0, 4096) + request(CMD_WRITE_ZEROES, 0, 4096) +
        request(CMD_READ, 0, 16))
    yield 'truncated-write', bytes([CANNED_SIMPLE]) + request(
        CMD_WRITE, 0, 4096, payload=b'short')
    # regressions: inputs that once crashed the daemon
    # A client of the read-only export, which lives in an IOThread: the
    # connection moved there by scheduling itself in the IOThread before
    # it had yielded, and was entered twice (abort).
    yield 'regress-iothread-move', bytes([CANNED_SIMPLE | READ_ONLY]) + (
        request(CMD_READ, 0, 512) + request(CMD_DISC))

    yield 'empty', b''
    yield 'mode-only', bytes([CANNED_STRUCTURED_META])


def main():
    out = (sys.argv[1] if len(sys.argv) > 1 else
           os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        'corpus-nbd'))
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
