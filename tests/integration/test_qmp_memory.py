"""Repeated QMP queries must not make the daemon grow.

Each block query is called 10,000 times on one connection; the daemon's
resident memory (VmRSS from /proc/PID/status) after a warm-up and after
the 10,000 calls must stay flat.  A reply leaked per call (about 5 KiB
for query-named-block-nodes with two nodes) adds tens of MiB here, far
above the allowance for allocator noise.  qemu-storage-daemon 7.2 runs
the same calls side by side and must stay flat as well.

Under AddressSanitizer the freed-memory quarantine would look like
growth, so the daemon runs with it turned off (leaks there are caught
anyway by LeakSanitizer at exit, see blockd_harness)."""

import json
import os

import blockd_harness as h

CALLS = 10000
WARMUP = 1000
BATCH = 100
# Allocator noise allowed over 10,000 calls; a leak of even 105 bytes per
# call exceeds it.
ALLOWED_GROWTH = 1 << 20
# AddressSanitizer's allocator (size-class regions, its stack depot) moves
# VmRSS by more than glibc's even without the quarantine: measured 1.3 MiB
# over 10,000 calls of a query that glibc runs flat.  4 MiB still catches
# the leak this test is about (tens of MiB), and LeakSanitizer catches
# smaller ones at exit.
ALLOWED_GROWTH_ASAN = 4 << 20

QUERIES = [
    ('query-named-block-nodes', None),
    ('query-named-block-nodes', {'flat': True}),
    ('query-blockstats', None),
    ('query-blockstats', {'query-nodes': True}),
    ('query-block', None),
]


def uses_asan(pid):
    """Whether `pid` runs with AddressSanitizer's runtime mapped."""
    with open(f'/proc/{pid}/maps', encoding='ascii', errors='replace') as maps:
        return 'libasan' in maps.read()


def vm_rss(pid):
    """The resident set size of `pid`, in bytes."""
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise AssertionError(f'no VmRSS for pid {pid}')


class QueryMemory(h.TestCase):

    def start(self, binary):
        image = os.path.join(self.tmpdir, 'disk.raw')
        with open(image, 'wb') as f:
            f.truncate(1 << 20)
        sock = os.path.join(self.tmpdir, f'{os.path.basename(binary)}.sock')
        args = ['--blockdev',
                f'driver=file,node-name=file0,filename={image}',
                '--blockdev', 'driver=raw,node-name=fmt0,file=file0',
                '--blockdev', 'driver=null-co,node-name=null0',
                '--chardev', f'socket,id=m,path={sock},server=on,wait=off',
                '--monitor', 'm']
        env = None
        if binary == h.BLOCKD:
            env = h.child_env(ASAN_OPTIONS=os.environ.get('ASAN_OPTIONS', '')
                              + ':quarantine_size_mb=0')
            daemon = self.start_daemon(args, env=env)
        else:
            daemon = self.start_qsd(args)
        daemon.wait_for_socket_file(sock)
        return daemon, self.qmp(sock, timeout=60)

    def call_many(self, client, name, arguments, count):
        """`count` calls, sent BATCH at a time; every reply must be a
        success carrying its id, in order."""
        cmd = {'execute': name}
        if arguments is not None:
            cmd['arguments'] = arguments
        done = 0
        while done < count:
            n = min(BATCH, count - done)
            client.send_raw(b''.join(
                json.dumps(dict(cmd, id=done + i)).encode() + b'\n'
                for i in range(n)))
            for i in range(n):
                reply = client.receive()
                while 'event' in reply:
                    reply = client.receive()
                self.assertIn('return', reply, reply)
                self.assertEqual(reply['id'], done + i)
            done += n

    def growth(self, binary):
        """{(query, arguments): bytes of growth over CALLS calls}."""
        daemon, client = self.start(binary)
        result = {}
        self.allowed = (ALLOWED_GROWTH_ASAN if uses_asan(daemon.pid)
                        else ALLOWED_GROWTH)
        for name, arguments in QUERIES:
            self.call_many(client, name, arguments, WARMUP)
            before = vm_rss(daemon.pid)
            self.call_many(client, name, arguments, CALLS)
            after = vm_rss(daemon.pid)
            result[(name, json.dumps(arguments))] = after - before
        return result

    def check_flat(self, binary, label):
        growth = self.growth(binary)
        for (name, arguments), grown in growth.items():
            print(f'{label}: {name} {arguments}: VmRSS grew by '
                  f'{grown / 1024:.0f} KiB over {CALLS} calls')
        for (name, arguments), grown in growth.items():
            with self.subTest(query=name, arguments=arguments):
                self.assertLess(grown, self.allowed,
                                f'{label} grew {grown} bytes over {CALLS} '
                                f'calls of {name} {arguments}')

    def test_blockd_flat(self):
        self.check_flat(h.BLOCKD, 'blockd')

    def test_qsd_flat(self):
        """The peer, for comparison: the same calls leave it flat."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        self.check_flat(qsd, 'qemu-storage-daemon')


if __name__ == '__main__':
    h.main()
