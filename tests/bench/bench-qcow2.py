#!/usr/bin/python3
"""blockd's qcow2 driver against qemu-storage-daemon 7.2 and blockd's raw.

Run by hand (never from meson):  /usr/bin/python3 bench-qcow2.py

In one run, the same fio jobs (fio's nbd engine over a UNIX socket) go to
three servers exporting the same guest data:

  blockd      blockd, qcow2 node on the image file
  qsd         qemu-storage-daemon 7.2 with the same command line
  blockd-raw  blockd, raw node on a raw file holding the same data

Cases: 4 KiB random read and write at queue depth 1 and 32 on a fully
allocated image; 4 KiB random writes that allocate (an empty image with
64 KiB clusters, each write in a cluster of its own); the same over a
backing file (a fully allocated qcow2), without and with extended_l2
(copy-on-write of a whole cluster against one 2 KiB subcluster); 1 MiB
sequential read of the allocated image and of compressed images (zlib,
zstd).  Then the daemons' memory (VmRSS) with a 1 TiB sparse image, after
start-up and after reads over the whole disk.

Images live in a private directory under /dev/shm (the daemons are
measured, not a disk); sockets and logs in a second private directory.
Each allocating case gets fresh images for every server.  Every daemon
is stopped by pid and both directories are removed at the end, even
after an error.  Standard library only.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CLK_TCK = os.sysconf('SC_CLK_TCK')
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
SERVERS = ['blockd', 'qsd', 'blockd-raw']


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.size = opts.size_mib * MIB
        self.procs = []
        self.workdir = tempfile.mkdtemp(prefix='blockd-bench-')
        self.shmdir = tempfile.mkdtemp(prefix='blockd-bench-', dir='/dev/shm')
        self.counter = 0

    # ---- files ---------------------------------------------------------

    def shm(self, name):
        return os.path.join(self.shmdir, name)

    def path(self, name):
        self.counter += 1
        return os.path.join(self.workdir, f'{name}-{self.counter}')

    @staticmethod
    def run(*argv):
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        if r.returncode != 0:
            raise RuntimeError(f'{argv}: {r.stderr.decode().strip()}')

    def make_images(self):
        """The fixed images: full.raw/.qcow2 (random data everywhere),
        comp-zlib/zstd.qcow2 and comp.raw (compressible data)."""
        full = self.shm('full.raw')
        chunk = os.urandom(MIB)
        with open(full, 'wb') as f:
            for i in range(self.opts.size_mib):
                # differ per MiB so that no cluster equals another
                f.write(i.to_bytes(8, 'little') + chunk[8:])
        self.run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                 full, self.shm('full.qcow2'))
        comp = self.shm('comp.raw')
        words = [os.urandom(16).hex().encode() for _ in range(512)]
        with open(comp, 'wb') as f:
            for i in range(self.opts.size_mib):
                # text-like: compresses about 3:1
                out = bytearray()
                j = i
                while len(out) < MIB:
                    out += words[j % 512] + b' '
                    j = j * 7 + 3
                f.write(bytes(out[:MIB]))
        for ctype in ('zlib', 'zstd'):
            self.run('qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2',
                     '-o', f'compression_type={ctype}', comp,
                     self.shm(f'comp-{ctype}.qcow2'))

    def fresh(self, kind, server):
        """A new image for an allocating case; returns (path, format)."""
        name = f'{kind}-{server}'
        for f in os.listdir(self.shmdir):
            if f.startswith(f'{kind}-'):
                os.unlink(self.shm(f))
        path = self.shm(name)
        if server == 'blockd-raw':
            # raw has nothing to allocate but the file's own blocks;
            # over a backing file it is the full image's copy
            if kind.startswith('backing'):
                shutil.copyfile(self.shm('full.raw'), path)
            else:
                with open(path, 'wb') as f:
                    f.truncate(self.size)
            return path, 'raw'
        argv = ['qemu-img', 'create', '-f', 'qcow2', '-o',
                'cluster_size=65536']
        if kind == 'backing-extl2':
            argv[-1] += ',extended_l2=on'
        if kind.startswith('backing'):
            argv += ['-b', self.shm('full.qcow2'), '-F', 'qcow2']
        self.run(*argv, path, str(self.size))
        return path, 'qcow2'

    # ---- daemons -------------------------------------------------------

    def stop(self, proc):
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def cleanup(self):
        for p in list(self.procs):
            self.stop(p)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.shmdir, ignore_errors=True)

    @staticmethod
    def can_connect(path):
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
                return True
            except OSError:
                return False

    def start(self, server, image, fmt):
        sock = self.path('nbd.sock')
        prog = 'qemu-storage-daemon' if server == 'qsd' else self.opts.blockd
        argv = [prog,
                '--blockdev', f'driver=file,node-name=f,filename={image}',
                '--blockdev', f'driver={fmt},node-name=n,file=f',
                '--nbd-server', f'addr.type=unix,addr.path={sock}',
                '--export', 'type=nbd,id=e,node-name=n,name=e,writable=on']
        log = open(self.path('log'), 'w+b')
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if self.can_connect(sock):
                log.close()
                return proc, f'nbd+unix:///e?socket={sock}'
            time.sleep(0.02)
        self.stop(proc)
        log.seek(0)
        out = log.read().decode(errors='replace').strip()
        log.close()
        raise RuntimeError(f'{server} did not start: {out}')

    # ---- measuring -----------------------------------------------------

    @staticmethod
    def cpu_ticks(pid):
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
        fields = stat[stat.rindex(')') + 2:].split()
        return int(fields[11]) + int(fields[12])

    @staticmethod
    def rss_kib(pid):
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        return None

    def fio(self, uri, job, pid, timed=True):
        argv = ['fio', '--name=bench', '--output-format=json',
                '--ioengine=nbd', f'--uri={uri}', '--randrepeat=0']
        if timed:
            argv += ['--time_based', f'--runtime={self.opts.runtime}']
        before = self.cpu_ticks(pid)
        r = subprocess.run(argv + job, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        after = self.cpu_ticks(pid)
        out = r.stdout.decode(errors='replace')
        if r.returncode != 0 or '{' not in out:
            err = (r.stderr.decode(errors='replace') + out).strip()
            raise RuntimeError(f'fio failed: {err[-400:]}')
        j = json.loads(out[out.index('{'):])['jobs'][0]
        ios = iops = bw = 0
        lat = 0.0
        for d in ('read', 'write'):
            n = j[d]['total_ios']
            ios += n
            iops += j[d]['iops']
            bw += j[d]['bw_bytes']
            lat += j[d]['clat_ns']['mean'] * n
        return {'iops': iops, 'mibs': bw / MIB,
                'lat': lat / ios / 1000 if ios else None,
                'cpu': (after - before) * 1e6 / CLK_TCK / ios if ios
                else None, 'ios': ios}

    # ---- cases -----------------------------------------------------------

    def alloc_job(self, depth):
        """One 4 KiB write per 64 KiB cluster, in random order: every
        write allocates (fio's random map never repeats a block, and
        blockalign keeps each one at the start of a cluster)."""
        n = self.size // (64 * KIB)
        return ['--rw=randwrite', '--bs=4k', '--blockalign=64k',
                f'--number_ios={n}', f'--iodepth={depth}']

    def cases(self):
        """(case, image kind, fio job, time based)"""
        full = [
            ('randread-4k-qd1', ['--rw=randread', '--bs=4k',
                                 '--iodepth=1']),
            ('randread-4k-qd32', ['--rw=randread', '--bs=4k',
                                  '--iodepth=32']),
            ('randwrite-4k-qd1', ['--rw=randwrite', '--bs=4k',
                                  '--iodepth=1']),
            ('randwrite-4k-qd32', ['--rw=randwrite', '--bs=4k',
                                   '--iodepth=32']),
            ('seqread-1m-qd8', ['--rw=read', '--bs=1m', '--iodepth=8']),
        ]
        for name, job in full:
            yield f'full {name}', 'full', job, True
        yield 'empty alloc-randwrite-4k-qd1', 'empty', self.alloc_job(1), \
            False
        yield 'empty alloc-randwrite-4k-qd32', 'empty', \
            self.alloc_job(32), False
        yield 'backing alloc-randwrite-4k-qd32', 'backing', \
            self.alloc_job(32), False
        yield 'backing-extl2 alloc-randwrite-4k-qd32', 'backing-extl2', \
            self.alloc_job(32), False
        for ctype in ('zlib', 'zstd'):
            yield f'compressed-{ctype} seqread-1m-qd8', f'comp-{ctype}', \
                ['--rw=read', '--bs=1m', '--iodepth=8'], True

    def image_for(self, kind, server):
        if kind == 'full':
            return ((self.shm('full.raw'), 'raw') if server == 'blockd-raw'
                    else (self.shm('full.qcow2'), 'qcow2'))
        if kind.startswith('comp-'):
            return ((self.shm('comp.raw'), 'raw') if server == 'blockd-raw'
                    else (self.shm(f'{kind}.qcow2'), 'qcow2'))
        return self.fresh(kind, server)

    def io_suite(self):
        results = {}
        for case, kind, job, timed in self.cases():
            for server in SERVERS:
                proc = None
                try:
                    image, fmt = self.image_for(kind, server)
                    proc, uri = self.start(server, image, fmt)
                    r = self.fio(uri, job, proc.pid, timed)
                    results.setdefault(case, {})[server] = r
                    print(f'  {case:42} {server:10} {r["iops"]:9.0f} IOPS '
                          f'{r["mibs"]:8.1f} MiB/s', file=sys.stderr)
                except RuntimeError as e:
                    results.setdefault(case, {})[server] = None
                    print(f'  {case} / {server}: {e}', file=sys.stderr)
                finally:
                    if proc:
                        self.stop(proc)
        return results

    def memory_suite(self):
        """VmRSS of each daemon serving a 1 TiB sparse image with a 4 KiB
        write every 512 MiB (so that every L2 table of a 64 KiB-cluster
        image exists): after start-up, after nbdinfo --map of the whole
        disk, after random 4 KiB reads over the whole disk."""
        tib = 1024 * GIB
        q = self.shm('tib.qcow2')
        r = self.shm('tib.raw')
        self.run('qemu-img', 'create', '-f', 'qcow2', q, str(tib))
        with open(r, 'wb') as f:
            f.truncate(tib)
        # one write per L2 table (64 KiB clusters: 512 MiB each)
        cmds = []
        for off in range(0, tib, 512 * MIB):
            cmds += ['-c', f'write -P 0x5a {off} 4k']
        for img, fmt in ((q, 'qcow2'), (r, 'raw')):
            for i in range(0, len(cmds), 400):
                self.run('qemu-io', '-f', fmt, *cmds[i:i + 400], img)
        results = {}
        for server in SERVERS:
            img, fmt = (r, 'raw') if server == 'blockd-raw' else (q, 'qcow2')
            proc = None
            try:
                proc, uri = self.start(server, img, fmt)
                res = {'start': self.rss_kib(proc.pid)}
                subprocess.run(['nbdinfo', '--map', uri],
                               stdout=subprocess.DEVNULL, check=True)
                res['map'] = self.rss_kib(proc.pid)
                self.fio(uri, ['--rw=randread', '--bs=4k', '--iodepth=32'],
                         proc.pid)
                res['randread'] = self.rss_kib(proc.pid)
                results[server] = res
                print(f'  memory {server:10} {res}', file=sys.stderr)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                results[server] = None
                print(f'  memory / {server}: {e}', file=sys.stderr)
            finally:
                if proc:
                    self.stop(proc)
        os.unlink(q)
        os.unlink(r)
        return results


# ---- report ------------------------------------------------------------

METRICS = [('iops', 'IOPS', '{:.0f}'), ('mibs', 'MiB/s', '{:.1f}'),
           ('lat', 'mean completion latency (us)', '{:.1f}'),
           ('cpu', 'daemon CPU per I/O (us)', '{:.2f}')]


def fmt(value, spec):
    return '-' if value is None else spec.format(value)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return '-'
    return f'{a / b:.2f}'


def print_tables(results):
    width = max(len(c) for c in results)
    for key, label, spec in METRICS:
        print(f'\n== {label}')
        print(f'{"case":{width}}' + ''.join(f' {s:>11}' for s in SERVERS) +
              f' {"b/qsd":>7} {"b/raw":>7}')
        for case, row in results.items():
            vals = {s: row[s][key] if row.get(s) else None for s in SERVERS}
            print(f'{case:{width}}' +
                  ''.join(f' {fmt(vals[s], spec):>11}' for s in SERVERS) +
                  f' {ratio(vals["blockd"], vals["qsd"]):>7}'
                  f' {ratio(vals["blockd"], vals["blockd-raw"]):>7}')


def print_memory(mem):
    print('\n== VmRSS (MiB), 1 TiB sparse image, a 4 KiB write every '
          '512 MiB')
    print(f'{"server":12} {"start":>8} {"map":>8} {"randread":>9}')
    for server in SERVERS:
        r = mem.get(server)
        if not r:
            print(f'{server:12} {"-":>8} {"-":>8} {"-":>9}')
            continue
        print(f'{server:12} {r["start"] / 1024:8.1f} {r["map"] / 1024:8.1f} '
              f'{r["randread"] / 1024:9.1f}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runtime', type=int, default=5,
                    help='seconds per time-based fio job (default 5)')
    ap.add_argument('--quick', action='store_true',
                    help='1 s jobs and a 256 MiB image')
    ap.add_argument('--size-mib', type=int, default=512,
                    help='image size in MiB (default 512)')
    ap.add_argument('--blockd', default=os.path.join(REPO, 'build', 'core',
                                                     'blockd'),
                    help='blockd binary (default: build/core/blockd)')
    ap.add_argument('--no-memory', action='store_true',
                    help='skip the 1 TiB memory measurement')
    opts = ap.parse_args()
    if opts.quick:
        opts.runtime = 1
        opts.size_mib = 256
    if not os.access(opts.blockd, os.X_OK):
        sys.exit(f'{opts.blockd} is not built')
    for tool in ('fio', 'qemu-storage-daemon', 'qemu-img', 'qemu-io',
                 'nbdinfo'):
        if not shutil.which(tool):
            sys.exit(f'{tool} is not installed')
    bench = Bench(opts)
    try:
        print(f'making {opts.size_mib} MiB images on tmpfs...',
              file=sys.stderr)
        bench.make_images()
        print(f'blockd {opts.blockd}; {os.cpu_count()} CPUs; images '
              f'{opts.size_mib} MiB on tmpfs, 64 KiB clusters; fio nbd '
              f'engine over a UNIX socket, {opts.runtime} s per timed job; '
              f'alloc-* jobs: one 4 KiB write per cluster of the image')
        print('b/qsd, b/raw = blockd (qcow2) / qsd (qcow2), / blockd-raw')
        results = bench.io_suite()
        print_tables(results)
        if not opts.no_memory:
            print_memory(bench.memory_suite())
    finally:
        bench.cleanup()


if __name__ == '__main__':
    main()
