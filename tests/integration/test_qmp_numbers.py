"""Integers at the ends of QMP's range, side by side with
qemu-storage-daemon 7.2: uint64 members take everything up to 2^64-1
(in QMP and in keyval options), int64 members refuse what is above
2^63-1, and numbers beyond 2^64 are doubles.  An id too large for a
double is echoed as valid JSON (qsd writes "inf", which is not)."""

import json
import os
import socket
import time

import blockd_harness as h

U64_MAX = 2**64 - 1


def raw_exchange(sock_path, lines):
    """Send each line (bytes) on a fresh QMP connection and return the
    raw reply lines, so that what is not JSON shows as it is."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(h.START_TIMEOUT)
        # the socket file exists from bind() on, but refuses connections
        # until listen()
        deadline = time.monotonic() + h.START_TIMEOUT
        while True:
            try:
                s.connect(sock_path)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        f = s.makefile('rb')
        f.readline()
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        f.readline()
        replies = []
        for line in lines:
            s.sendall(line + b'\n')
            replies.append(f.readline().rstrip(b'\r\n'))
        return replies


class Numbers(h.TestCase):

    def start_both(self, extra=()):
        """blockd and qsd with one null-co node 'n0' (and `extra`
        arguments); returns {name: (daemon, socket path)}."""
        out = {}
        for name in ('blockd', 'qsd'):
            sock = os.path.join(self.tmpdir, f'{name}.sock')
            args = ['--blockdev', 'driver=null-co,node-name=n0',
                    *extra,
                    '--chardev', f'socket,id=m,path={sock},server=on,'
                    'wait=off', '--monitor', 'm']
            daemon = (self.start_daemon(args) if name == 'blockd'
                      else self.start_qsd(args))
            daemon.wait_for_socket_file(sock)
            out[name] = sock
        return out

    def both(self, commands, extra=(), socks=None):
        socks = socks or self.start_both(extra)
        return {name: raw_exchange(sock, [json.dumps(c).encode()
                                          if not isinstance(c, bytes)
                                          else c for c in commands])
                for name, sock in socks.items()}

    def test_write_threshold_extremes(self):
        """block-set-write-threshold takes 0 .. 2^64-1 (and negative
        numbers, wrapped, as QEMU does), refuses 2^64 with qsd's error;
        query-named-block-nodes reports the value as qsd does."""
        cmds = []
        for value in (U64_MAX, 2**63, 2**63 - 1, 2**64, -1, -2**63,
                      -2**63 - 1, 1e300):
            cmds.append(b'{"execute": "block-set-write-threshold", '
                        b'"arguments": {"node-name": "n0", '
                        b'"write-threshold": ' + repr(value).encode() +
                        b'}}')
            cmds.append({'execute': 'query-named-block-nodes'})
        replies = self.both(cmds)
        self.assertEqual(replies['blockd'], replies['qsd'])
        # the first really was accepted
        self.assertEqual(json.loads(replies['blockd'][0]), {'return': {}})

    def test_int64_member_extremes(self):
        """int members take -2^63 .. 2^63-1 and refuse 2^63 .. 2^64-1
        and beyond with qsd's errors; a uint64 member takes 2^64-1.
        (qsd 7.2 aborts on a negative null-co size, so the driver-level
        checks of size are left out.)"""
        cmds = []
        for i, value in enumerate((2**63 - 1, -2**63, 2**63, U64_MAX,
                                   2**64, -2**63 - 1)):
            cmds.append(
                b'{"execute": "object-add", "arguments": {"qom-type": '
                b'"iothread", "id": "t%d", "poll-max-ns": %d}}' % (i, value))
        for i, (member, value) in enumerate((
                ('size', 2**63), ('size', U64_MAX), ('size', 2**64),
                ('size', -2**63 - 1), ('latency-ns', U64_MAX),
                ('latency-ns', 2**64), ('latency-ns', -1),
                ('latency-ns', 2**63 - 1))):
            cmds.append(
                b'{"execute": "blockdev-add", "arguments": '
                b'{"driver": "null-co", "node-name": "x%d", "%s": %d}}'
                % (i, member.encode(), value))
        cmds.append({'execute': 'query-named-block-nodes'})
        replies = self.both(cmds)
        self.assertEqual(replies['blockd'], replies['qsd'])
        self.assertEqual(json.loads(replies['blockd'][0]), {'return': {}})
        # 2^64-1 passed the schema and reached the driver, which keeps
        # latency-ns in an int64 (in QEMU too) and refuses it
        self.assertEqual(json.loads(replies['blockd'][10])['error']['desc'],
                         'latency-ns is invalid')
        self.assertEqual(json.loads(replies['blockd'][13]), {'return': {}})

    def test_keyval_uint64(self):
        """A keyval uint64 member (null-co's latency-ns) at 2^63-1 starts
        both daemons alike and shows the same value in
        query-named-block-nodes."""
        replies = self.both(
            [{'execute': 'query-named-block-nodes'}],
            extra=['--blockdev', 'driver=null-co,node-name=big,'
                   f'latency-ns={2**63 - 1}'])
        self.assertEqual(replies['blockd'], replies['qsd'])
        self.assertIn(b'"node-name": "big"', replies['blockd'][0])

    def test_keyval_uint64_extremes(self):
        """2^64-1 passes the schema in both and reaches the driver
        (which, in QEMU as in blockd, keeps latency-ns in an int64 and
        refuses it); 2^64 and beyond fail in the schema alike."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        for value, message in ((U64_MAX, 'latency-ns is invalid'),
                               (2**64, None), (-1, None),
                               ('0x' + 'f' * 16, None)):
            results = []
            for binary in (h.BLOCKD, qsd):
                res = self.run_command([binary, '--blockdev',
                                        'driver=null-co,node-name=big,'
                                        f'latency-ns={value}'])
                results.append((res.returncode,
                                res.stderr.split(':', 1)[1]))
            with self.subTest(value=value):
                self.assertEqual(results[0], results[1])
                self.assertEqual(results[0][0], 1)
                if message:
                    self.assertTrue(results[0][1].endswith(
                        f': {message}\n'), results[0][1])

    def test_id_echo(self):
        """Ids at the ends of the range come back as qsd sends them; one
        too large for a double comes back as valid JSON, where qsd writes
        'inf'."""
        ids = [b'18446744073709551615', b'9223372036854775808',
               b'-9223372036854775808', b'-9223372036854775809',
               b'18446744073709551616', b'1.5', b'[0.1, -1e308]']
        cmds = [b'{"execute": "query-block", "id": %s}' % i for i in ids]
        socks = self.start_both()
        replies = self.both(cmds, socks=socks)
        self.assertEqual(replies['blockd'], replies['qsd'])
        self.assertIn(b'"id": 18446744073709551615', replies['blockd'][0])

        sock = socks['blockd']
        for text, value in ((b'1e400', float('inf')),
                            (b'-1e400', float('-inf')),
                            (b'[1e400, {"a": -1e999}]',
                             [float('inf'), {'a': float('-inf')}])):
            line, = raw_exchange(
                sock, [b'{"execute": "query-block", "id": %s}' % text])

            def strict(token):
                raise ValueError(f'not JSON: {token} in {line!r}')
            reply = json.loads(line, parse_constant=strict)
            self.assertEqual(reply['id'], value)


if __name__ == '__main__':
    h.main()
