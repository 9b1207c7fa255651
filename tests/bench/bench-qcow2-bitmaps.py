#!/usr/bin/python3
"""What enabled persistent dirty bitmaps cost qcow2 writes, in blockd and
in qemu-storage-daemon 7.2.

Run by hand (never from meson):  /usr/bin/python3 bench-qcow2-bitmaps.py

For each server, a fully allocated qcow2 image (64 KiB clusters) is
exported over NBD on a UNIX socket and fio's nbd engine runs 4 KiB random
writes at queue depth 32 (and 1), first with no bitmap, then with 8
enabled persistent bitmaps (granularities 512 B to 64 KiB, added with
block-dirty-bitmap-add persistent: true), alternating for --rounds
rounds; the median IOPS of each, the server's CPU time per write, and
the costs in percent are printed.
Then the time `quit` takes to store the 8 bitmaps (the daemon's exit),
after writes all over the disk.

Images live in a private directory under /dev/shm, sockets in a second
private directory; every daemon is stopped by pid and both directories
are removed at the end.  Standard library only.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MIB = 1024 * 1024
CLK_TCK = os.sysconf('SC_CLK_TCK')
GRANULARITIES = [512, 1024, 4096, 8192, 16384, 32768, 65536, 65536]


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.f = self.sock.makefile('rw')
        json.loads(self.f.readline())
        self.cmd('qmp_capabilities')

    def cmd(self, name, args=None):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.f.write(json.dumps(msg) + '\n')
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if 'event' in r:
                continue
            if 'error' in r:
                raise RuntimeError(f'{name}: {r["error"]["desc"]}')
            return r['return']

    def close(self):
        self.f.close()
        self.sock.close()


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.workdir = tempfile.mkdtemp(prefix='blockd-bench-')
        self.shmdir = tempfile.mkdtemp(prefix='blockd-bench-', dir='/dev/shm')
        self.procs = []
        self.n = 0

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.shmdir, ignore_errors=True)

    def image(self):
        path = os.path.join(self.shmdir, 'img.qcow2')
        if os.path.exists(path):
            os.unlink(path)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                        'cluster_size=65536,preallocation=falloc', path,
                        f'{self.opts.size_mib}M'], check=True)
        return path

    def start(self, server, img):
        self.n += 1
        qmp = os.path.join(self.workdir, f'qmp-{self.n}')
        nbd = os.path.join(self.workdir, f'nbd-{self.n}')
        binary = (self.opts.blockd if server == 'blockd'
                  else 'qemu-storage-daemon')
        argv = [binary, '--chardev',
                f'socket,id=m,path={qmp},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f0,filename={img}',
                '--blockdev', 'driver=qcow2,node-name=q0,file=f0',
                '--nbd-server', f'addr.type=unix,addr.path={nbd}',
                '--export', 'type=nbd,id=e,node-name=q0,name=exp,'
                'writable=on']
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        self.procs.append(p)
        for _ in range(500):
            if os.path.exists(qmp) and os.path.exists(nbd):
                break
            time.sleep(0.01)
        return p, Qmp(qmp), f'nbd+unix:///exp?socket={nbd}'

    @staticmethod
    def cpu_ticks(pid):
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def fio(self, uri, depth, pid):
        """(IOPS, the server's CPU microseconds per write)"""
        argv = ['fio', '--name=bench', '--output-format=json',
                '--ioengine=nbd', f'--uri={uri}', '--rw=randwrite',
                '--bs=4k', f'--iodepth={depth}', '--time_based',
                f'--runtime={self.opts.runtime}', '--randrepeat=0']
        before = self.cpu_ticks(pid)
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        ticks = self.cpu_ticks(pid) - before
        if r.returncode != 0 or '{' not in r.stdout:
            raise RuntimeError(f'fio: {(r.stderr + r.stdout)[-400:]}')
        w = json.loads(r.stdout[r.stdout.index('{'):])['jobs'][0]['write']
        return w['iops'], ticks / CLK_TCK * 1e6 / max(w['total_ios'], 1)

    def run(self, server, depth):
        """{0: [(iops, cpu)...], 8: [(iops, cpu)...]}"""
        out = {0: [], 8: []}
        for _ in range(self.opts.rounds):
            for nb in (0, 8):
                img = self.image()
                p, q, uri = self.start(server, img)
                for i in range(nb):
                    q.cmd('block-dirty-bitmap-add', {
                        'node': 'q0', 'name': f'b{i}', 'persistent': True,
                        'granularity': GRANULARITIES[i]})
                out[nb].append(self.fio(uri, depth, p.pid))
                q.cmd('quit')
                q.close()
                p.wait(timeout=60)
        return out

    def store_time(self, server):
        """Seconds from quit to exit with 8 bitmaps dirty all over."""
        img = self.image()
        p, q, uri = self.start(server, img)
        for i in range(8):
            q.cmd('block-dirty-bitmap-add', {
                'node': 'q0', 'name': f'b{i}', 'persistent': True,
                'granularity': GRANULARITIES[i]})
        subprocess.run(['fio', '--name=fill', '--ioengine=nbd',
                        f'--uri={uri}', '--rw=write', '--bs=1M',
                        '--iodepth=8', '--output-format=json'],
                       capture_output=True, check=True)
        t = time.monotonic()
        q.cmd('quit')
        q.close()
        p.wait(timeout=120)
        dt = time.monotonic() - t
        info = subprocess.run(['qemu-img', 'info', '--output=json', img],
                              capture_output=True, text=True, check=True)
        nb = len(json.loads(info.stdout)['format-specific']['data'].get(
            'bitmaps', []))
        if nb != 8:
            raise RuntimeError(f'{server}: {nb} bitmaps stored, not 8')
        return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--blockd', default=os.path.join(REPO, 'build', 'core',
                                                     'blockd'))
    ap.add_argument('--runtime', type=int, default=5)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--size-mib', type=int, default=1024)
    ap.add_argument('--no-qsd', action='store_true')
    ap.add_argument('--depths', default='32,1',
                    help='fio queue depths, comma separated (default 32,1)')
    opts = ap.parse_args()
    servers = ['blockd'] + ([] if opts.no_qsd else ['qsd'])
    b = Bench(opts)
    try:
        print(f'4 KiB random writes, fio nbd engine, {opts.size_mib} MiB '
              f'preallocated qcow2 on tmpfs, {opts.runtime} s x '
              f'{opts.rounds} rounds (median IOPS)')
        print('IOPS are wall-clock figures (other load on the machine moves '
              'them); CPU is the\nserver\'s user+system time per write, '
              'which it moves less.')
        print(f'{"server":8} {"depth":>5} {"no bitmap":>10} '
              f'{"8 bitmaps":>10} {"cost":>7} {"CPU us/w":>9} '
              f'{"8 bitmaps":>9} {"cost":>7}')
        for server in servers:
            for depth in [int(d) for d in opts.depths.split(',')]:
                r = b.run(server, depth)
                a = statistics.median(x[0] for x in r[0])
                c = statistics.median(x[0] for x in r[8])
                ca = statistics.median(x[1] for x in r[0])
                cc = statistics.median(x[1] for x in r[8])
                print(f'{server:8} {depth:5} {a:10.0f} {c:10.0f} '
                      f'{(a - c) / a * 100:6.1f}% {ca:9.2f} {cc:9.2f} '
                      f'{(cc - ca) / ca * 100:6.1f}%', flush=True)
        for server in servers:
            print(f'{server}: quit with 8 bitmaps dirty over '
                  f'{opts.size_mib} MiB: {b.store_time(server):.3f} s')
    finally:
        b.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
