#!/usr/bin/python3
"""Compare blockd's NBD and FUSE exports with qemu-storage-daemon and nbdkit.

Run by hand as root (never from meson):  /usr/bin/python3 bench-exports.py

Every server exports the same raw image, kept on tmpfs so the numbers
measure the daemons rather than a disk.  The same fio jobs run against each
server; for each job the table shows IOPS, MiB/s, mean completion latency
and the CPU time the daemon spent per I/O (utime + stime of the daemon
process from /proc/PID/stat, sampled around the fio run, divided by the
I/O count fio reports).  Reading the image file directly with fio gives the
reference the exports are measured against.

Only the Python standard library is used.  Every file lives in private
directories made with mkdtemp (the image in one under /dev/shm), every
daemon is killed by its pid and every FUSE mount is lazily unmounted at the
end, even after an error.
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
MIB = 1024 * 1024

# name -> fio options
NBD_JOBS = [
    ('randread-4k-qd1', ['--rw=randread', '--bs=4k', '--iodepth=1']),
    ('randread-4k-qd32', ['--rw=randread', '--bs=4k', '--iodepth=32']),
    ('randwrite-4k-qd32', ['--rw=randwrite', '--bs=4k', '--iodepth=32']),
    ('seqread-1m-qd8', ['--rw=read', '--bs=1m', '--iodepth=8']),
]
FUSE_JOBS = [
    ('psync-randread-4k-qd1',
     ['--ioengine=psync', '--rw=randread', '--bs=4k', '--iodepth=1']),
    ('uring-randread-4k-qd1',
     ['--ioengine=io_uring', '--rw=randread', '--bs=4k', '--iodepth=1']),
    ('uring-randread-4k-qd32',
     ['--ioengine=io_uring', '--rw=randread', '--bs=4k', '--iodepth=32']),
    ('uring-seqread-1m-qd8',
     ['--ioengine=io_uring', '--rw=read', '--bs=1m', '--iodepth=8']),
    ('uring-randwrite-4k-qd32',
     ['--ioengine=io_uring', '--rw=randwrite', '--bs=4k', '--iodepth=32']),
    ('uring-seqwrite-1m-qd8',
     ['--ioengine=io_uring', '--rw=write', '--bs=1m', '--iodepth=8']),
]
FILE_REF_JOBS = [
    ('file psync seqread-1m', ['--ioengine=psync', '--rw=read', '--bs=1m',
                               '--iodepth=1']),
    ('file libaio seqread-1m-qd8', ['--ioengine=libaio', '--rw=read',
                                    '--bs=1m', '--iodepth=8',
                                    '--direct=1']),
]


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.procs = []
        self.mounts = []
        self.workdir = tempfile.mkdtemp(prefix='blockd-bench-')
        self.shmdir = tempfile.mkdtemp(prefix='blockd-bench-', dir='/dev/shm')
        self.image = os.path.join(self.shmdir, 'image.raw')
        self.counter = 0

    # ---- setup and cleanup -------------------------------------------

    def make_image(self):
        # Real data everywhere, so no server can answer a read from a hole.
        chunk = os.urandom(MIB)
        with open(self.image, 'wb') as f:
            for _ in range(self.opts.size_mib):
                f.write(chunk)

    def cleanup(self):
        for mp in self.mounts:
            subprocess.run(['fusermount3', '-u', '-z', mp],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        for p in self.procs:
            self.stop(p)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.shmdir, ignore_errors=True)

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

    def path(self, name):
        self.counter += 1
        return os.path.join(self.workdir, f'{name}-{self.counter}')

    # ---- daemons -------------------------------------------------------

    def spawn(self, argv, ready, what):
        log = open(self.path('log'), 'w+b')
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if ready():
                log.close()
                return proc
            time.sleep(0.02)
        self.stop(proc)
        log.seek(0)
        out = log.read().decode(errors='replace').strip()
        log.close()
        raise RuntimeError(f'{what} did not start: {out}')

    @staticmethod
    def free_port():
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            return s.getsockname()[1]

    @staticmethod
    def can_connect(family, addr):
        with socket.socket(family) as s:
            try:
                s.connect(addr)
                return True
            except OSError:
                return False

    def listen_addr(self, transport):
        if transport == 'unix':
            sock = self.path('nbd.sock')
            return ({'key': f'addr.type=unix,addr.path={sock}',
                     'uri': f'nbd+unix:///e?socket={sock}',
                     'ready': lambda: self.can_connect(socket.AF_UNIX, sock),
                     'unix': sock})
        port = self.free_port()
        return ({'key': f'addr.type=inet,addr.host=127.0.0.1,'
                        f'addr.port={port}',
                 'uri': f'nbd://127.0.0.1:{port}/e',
                 'ready': lambda: self.can_connect(socket.AF_INET,
                                                   ('127.0.0.1', port)),
                 'port': port})

    def blockdev_args(self, direct):
        extra = ',cache.direct=on,aio=native' if direct else ''
        return ['--blockdev',
                f'driver=file,node-name=f,filename={self.image}{extra}',
                '--blockdev', 'driver=raw,node-name=r,file=f']

    def qemu_like(self, server):
        if server.startswith('blockd'):
            return [self.opts.blockd], False
        return ['qemu-storage-daemon'], server == 'qsd-direct'

    # blockd variants of --iothreads: the export served by IOThreads
    IOTHREAD_VARIANTS = {'blockd-io1': ['io0'], 'blockd-io2': ['io0', 'io1']}

    def nbd_export_args(self, server):
        threads = self.IOTHREAD_VARIANTS.get(server)
        if not threads:
            return ['--export',
                    'type=nbd,id=e,node-name=r,name=e,writable=on']
        objs = []
        for t in threads:
            objs += ['--object', f'iothread,id={t}']
        spec = json.dumps({'type': 'nbd', 'id': 'e', 'node-name': 'r',
                           'name': 'e', 'writable': True,
                           'iothread': threads})
        return objs + ['--export', spec]

    def start_nbd(self, server, transport):
        addr = self.listen_addr(transport)
        if server == 'nbdkit':
            argv = ['nbdkit', '-f', '--exit-with-parent']
            if transport == 'unix':
                argv += ['-U', addr['unix']]
            else:
                argv += ['-i', '127.0.0.1', '-p', str(addr['port'])]
            argv += ['file', self.image]
        else:
            prog, direct = self.qemu_like(server)
            argv = prog + self.blockdev_args(direct) + [
                '--nbd-server', addr['key']] + self.nbd_export_args(server)
        proc = self.spawn(argv, addr['ready'], f'{server} ({transport})')
        return proc, addr['uri']

    def start_fuse(self, server):
        mp = self.path('fuse-mp')
        open(mp, 'wb').close()
        prog, direct = self.qemu_like(server)
        argv = prog + self.blockdev_args(direct) + [
            '--export',
            f'type=fuse,id=e,node-name=r,mountpoint={mp},writable=on']
        self.mounts.append(mp)

        def mounted():
            return os.stat(mp).st_size == self.opts.size_mib * MIB

        proc = self.spawn(argv, mounted, f'{server} (fuse)')
        return proc, mp

    def stop_fuse(self, proc, mp):
        self.stop(proc)
        subprocess.run(['fusermount3', '-u', '-z', mp],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        self.mounts.remove(mp)

    # ---- fio -----------------------------------------------------------

    @staticmethod
    def cpu_ticks(pid):
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
        # The command name may hold spaces: fields follow the last ')'.
        fields = stat[stat.rindex(')') + 2:].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    def fio(self, target, job, numjobs=1, pid=None):
        argv = ['fio', '--name=bench', '--output-format=json',
                '--time_based', f'--runtime={self.opts.runtime}',
                '--ramp_time=0', f'--numjobs={numjobs}',
                '--group_reporting', '--randrepeat=0'] + target + job
        before = self.cpu_ticks(pid) if pid else None
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        after = self.cpu_ticks(pid) if pid else None
        out = r.stdout.decode(errors='replace')
        if r.returncode != 0 or '{' not in out:
            err = (r.stderr.decode(errors='replace') + out).strip()
            raise RuntimeError(f'fio failed: {err[-400:]}')
        # The nbd engine prints "connected to NBD server" before the JSON.
        data = json.loads(out[out.index('{'):])
        j = data['jobs'][0]
        ios = iops = bw = 0
        lat_sum = 0.0
        for d in ('read', 'write'):
            n = j[d]['total_ios']
            ios += n
            iops += j[d]['iops']
            bw += j[d]['bw_bytes']
            lat_sum += j[d]['clat_ns']['mean'] * n
        res = {'iops': iops, 'mibs': bw / MIB,
               'lat': lat_sum / ios / 1000 if ios else None, 'cpu': None}
        if pid and ios:
            res['cpu'] = (after - before) * 1e6 / CLK_TCK / ios
        return res

    def run_case(self, results, case, server, fn):
        try:
            results.setdefault(case, {})[server] = fn()
        except RuntimeError as e:
            results.setdefault(case, {})[server] = None
            print(f'  {case} / {server}: {e}', file=sys.stderr)
        r = results[case][server]
        if r:
            print(f'  {case:44} {server:10} {r["iops"]:10.0f} IOPS',
                  file=sys.stderr)

    # ---- suites --------------------------------------------------------

    def nbd_suite(self):
        servers = ['blockd', 'qsd', 'qsd-direct', 'nbdkit']
        if self.opts.iothreads:
            servers[1:1] = list(self.IOTHREAD_VARIANTS)
        transports = ['unix'] if self.opts.quick else ['unix', 'tcp']
        conns = [1] if self.opts.quick else [1, 2]
        jobs = NBD_JOBS
        results = {}
        for name, job in FILE_REF_JOBS:
            self.run_case(results, name, 'file',
                          lambda job=job: self.fio(
                              [f'--filename={self.image}'], job))
        for transport in transports:
            for server in servers:
                try:
                    proc, uri = self.start_nbd(server, transport)
                except RuntimeError as e:
                    print(f'  {server} ({transport}): {e}', file=sys.stderr)
                    continue
                try:
                    for c in conns:
                        for name, job in jobs:
                            case = f'nbd {transport} {c}conn {name}'
                            self.run_case(
                                results, case, server,
                                lambda job=job, c=c: self.fio(
                                    ['--ioengine=nbd', f'--uri={uri}'], job,
                                    numjobs=c, pid=proc.pid))
                finally:
                    self.stop(proc)
        return servers, results

    def fuse_suite(self):
        servers = ['blockd', 'qsd', 'qsd-direct']
        results = {}
        for name, job in FUSE_JOBS:
            case = f'fuse {name}'
            self.run_case(results, case, 'file',
                          lambda job=job: self.fio(
                              [f'--filename={self.image}', '--direct=1'],
                              job))
        for server in servers:
            try:
                proc, mp = self.start_fuse(server)
            except RuntimeError as e:
                print(f'  {server} (fuse): {e}', file=sys.stderr)
                continue
            try:
                for name, job in FUSE_JOBS:
                    self.run_case(
                        results, f'fuse {name}', server,
                        lambda job=job: self.fio(
                            [f'--filename={mp}', '--direct=1'], job,
                            pid=proc.pid))
            finally:
                self.stop_fuse(proc, mp)
        return servers + ['file'], results


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


def print_table(title, servers, results, refs):
    """One sub-table per metric: servers side by side, then ratios of
    blockd to each server named in refs."""
    cases = [c for c in results if any(s in results[c] for s in servers)]
    if not cases:
        return
    width = max(len(c) for c in cases)
    for key, label, spec in METRICS:
        print(f'\n== {title}: {label}')
        head = f'{"case":{width}}' + ''.join(f' {s:>11}' for s in servers)
        head += ''.join(f' {"b/" + r:>11}' for r in refs)
        print(head)
        for c in cases:
            row = results[c]
            vals = {s: (row[s][key] if row.get(s) else None)
                    for s in servers}
            line = f'{c:{width}}'
            line += ''.join(f' {fmt(vals[s], spec):>11}' for s in servers)
            line += ''.join(f' {ratio(vals["blockd"], vals[r]):>11}'
                            for r in refs)
            print(line)


def print_file_reference(results):
    ref = [results[n]['file'] for n, _ in FILE_REF_JOBS
           if results.get(n, {}).get('file')]
    if not ref:
        return
    print('\n== reference: 1 MiB sequential read of the image file')
    for n, _ in FILE_REF_JOBS:
        r = results.get(n, {}).get('file')
        if r:
            print(f'{n:30} {r["mibs"]:10.1f} MiB/s {r["iops"]:10.0f} IOPS')
    best = max(r['mibs'] for r in ref)
    print(f'blockd NBD 1 MiB sequential read as % of the best file rate '
          f'({best:.1f} MiB/s; target >= 90%):')
    for c, row in results.items():
        if c.endswith('seqread-1m-qd8') and c.startswith('nbd'):
            pcts = []
            for s in ['blockd'] + list(Bench.IOTHREAD_VARIANTS):
                b = row.get(s)
                if s in row:
                    pcts.append(f'{s} {b["mibs"] * 100 / best:.0f}%' if b
                                else f'{s} -')
            print(f'  {c:40} {", ".join(pcts)}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runtime', type=int, default=5,
                    help='seconds per fio job (default 5)')
    ap.add_argument('--quick', action='store_true',
                    help='1 s jobs, UNIX socket and one connection only')
    ap.add_argument('--only', choices=['nbd', 'fuse'],
                    help='run only the NBD or only the FUSE cases')
    ap.add_argument('--blockd', default=os.path.join(REPO, 'build', 'core',
                                                     'blockd'),
                    help='blockd binary (default: build/core/blockd)')
    ap.add_argument('--iothreads', action='store_true',
                    help='also run blockd with the NBD export in one '
                    'IOThread (blockd-io1) and in two (blockd-io2)')
    ap.add_argument('--size-mib', type=int, default=1024,
                    help='image size in MiB (default 1024)')
    opts = ap.parse_args()
    if opts.quick:
        opts.runtime = 1
    if os.geteuid() != 0:
        sys.exit('bench-exports.py must run as root (FUSE mounts, O_DIRECT)')
    if not os.access(opts.blockd, os.X_OK):
        sys.exit(f'{opts.blockd} is not built: run ninja -C build')
    for tool in ('fio', 'qemu-storage-daemon', 'nbdkit', 'fusermount3'):
        if not shutil.which(tool):
            sys.exit(f'{tool} is not installed')

    bench = Bench(opts)
    try:
        print(f'writing a {opts.size_mib} MiB image on tmpfs...',
              file=sys.stderr)
        bench.make_image()
        print(f'fio runtime {opts.runtime} s per job; blockd {opts.blockd}')
        print(f'image: raw, {opts.size_mib} MiB, tmpfs; '
              f'{os.cpu_count()} CPUs; qsd-direct = qsd with '
              'cache.direct=on,aio=native')
        print('b/X = blockd / X (higher is better for IOPS and MiB/s, '
              'lower for latency and CPU)')
        if opts.only in (None, 'nbd'):
            servers, results = bench.nbd_suite()
            print_file_reference(results)
            nbd = {c: r for c, r in results.items() if c.startswith('nbd')}
            print_table('NBD', servers, nbd, ['qsd', 'qsd-direct', 'nbdkit'])
        if opts.only in (None, 'fuse'):
            servers, results = bench.fuse_suite()
            print_table('FUSE (fio --direct=1 on the mount-point file; '
                        'file = same job on the image)', servers, results,
                        ['qsd', 'qsd-direct', 'file'])
    finally:
        bench.cleanup()


if __name__ == '__main__':
    main()
