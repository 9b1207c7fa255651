#!/usr/bin/python3
"""blockd's vhost-user-blk export against qemu-storage-daemon 7.2, with the
project's own front end (bench-vhost-user-blk: memfd guest memory, N
virtqueues, each driven by one thread at a fixed depth).

Run by hand (never from meson):
    /usr/bin/python3 tests/bench/bench-vhost-user-blk.py [--runtime S]

Cases: 4 KiB random reads at QD32 on one queue, on a null-co node (in the
main loop, and in one IOThread) and on a raw file on tmpfs; 4 KiB random writes QD32 on the raw file; 1 MiB
sequential reads QD8 on the raw file; two queues (QD32 each) on null-co,
blockd with each queue in its own IOThread ('iothread': ['io0', 'io1'])
and qsd with the export in one IOThread (it serves every queue there).
For each: IOPS, MiB/s and the daemon's CPU time per I/O (utime + stime
from /proc/PID/stat around the run).  Every file lives in private
directories (the image under /dev/shm); daemons are killed by pid.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CLK_TCK = os.sysconf('SC_CLK_TCK')
GIB = 1 << 30


def cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run_case(daemon, sock, tmp, node_args, export_extra, client_args,
             runtime, blockd, blockd_plugins):
    args = list(node_args)
    if daemon == 'blockd':
        argv = [blockd, '--plugin-dir', blockd_plugins]
    else:
        argv = ['qemu-storage-daemon']
    if 'iothread' in export_extra:
        args += ['--object', 'iothread,id=io0', '--object', 'iothread,id=io1']
    exp = 'type=vhost-user-blk,id=v,node-name=n,writable=on,' \
          'addr.type=unix,addr.path=%s%s' % (sock, export_extra)
    if daemon == 'qsd':
        exp = exp.replace(',iothread.0=io0,iothread.1=io1', ',iothread=io0')
    log = open(os.path.join(tmp, daemon + '.log'), 'w')
    p = subprocess.Popen(argv + args + ['--export', exp], stdout=log,
                         stderr=log)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        t0 = cpu_ticks(p.pid)
        out = subprocess.run([os.path.join(REPO, 'build', 'tests', 'bench',
                                           'bench-vhost-user-blk'), sock,
                              '-t', str(runtime)] + client_args,
                             capture_output=True, text=True, check=True)
        t1 = cpu_ticks(p.pid)
    finally:
        p.kill()
        p.wait()
        log.close()
        if os.path.exists(sock):
            os.unlink(sock)
    f = out.stdout.split()
    iops, mibps = float(f[1]), float(f[3])
    ios = iops * runtime
    us_per_io = (t1 - t0) / CLK_TCK / ios * 1e6 if ios else 0
    return iops, mibps, us_per_io


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runtime', type=int, default=5)
    ap.add_argument('--blockd', default=os.path.join(REPO, 'build', 'core',
                                                     'blockd'))
    a = ap.parse_args()
    plugins = os.path.join(os.path.dirname(os.path.dirname(a.blockd)),
                           'plugins')
    tmp = tempfile.mkdtemp(prefix='bench-vub-')
    shm = tempfile.mkdtemp(prefix='bench-vub-', dir='/dev/shm')
    try:
        img = os.path.join(shm, 'disk.raw')
        with open(img, 'wb') as f:
            f.truncate(GIB)
        subprocess.run(['dd', 'if=/dev/zero', 'of=' + img, 'bs=1M',
                        'count=1024', 'conv=notrunc'], check=True,
                       capture_output=True)
        null = ['--blockdev', 'null-co,node-name=n,size=%d' % GIB]
        raw = ['--blockdev', 'driver=file,node-name=f,filename=%s,'
               'cache.direct=off' % img,
               '--blockdev', 'driver=raw,node-name=n,file=f']
        cases = [
            ('randread-4k-qd32 null-co', null, '', ['-d', '32']),
            ('randread-4k-qd32 null-co iothread', null, ',iothread=io0',
             ['-d', '32']),
            ('randread-4k-qd32 raw/tmpfs', raw, '', ['-d', '32']),
            ('randwrite-4k-qd32 raw/tmpfs', raw, '',
             ['-d', '32', '-w', 'randwrite']),
            ('read-1m-qd8 raw/tmpfs', raw, '',
             ['-d', '8', '-b', str(1 << 20), '-w', 'read']),
            ('randread-4k-qd32 null-co 2 queues', null,
             ',num-queues=2,iothread.0=io0,iothread.1=io1',
             ['-d', '32', '-q', '2']),
        ]
        print('%-36s %-7s %10s %9s %10s' % ('case', 'daemon', 'IOPS',
                                            'MiB/s', 'CPU us/IO'))
        for name, node, extra, client in cases:
            for daemon in ('blockd', 'qsd'):
                sock = os.path.join(tmp, 's')
                iops, mibps, us = run_case(daemon, sock, tmp, node, extra,
                                           client, a.runtime, a.blockd,
                                           plugins)
                print('%-36s %-7s %10.0f %9.1f %10.2f' % (name, daemon, iops,
                                                         mibps, us))
                sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == '__main__':
    main()
