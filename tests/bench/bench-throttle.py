#!/usr/bin/python3
"""How well a throttle group's limit holds: fio 4 KiB random reads over
NBD on a throttled file node (a 64 MiB image full of data, in the page
cache: an image of zeroes would be answered from block status without
reads, in qemu-storage-daemon as in blockd), at iops-total 1k, 10k and 100k, in
blockd and in qemu-storage-daemon 7.2, and the same export unthrottled
(what the machine can do at all: a limit above it cannot be reached).
Prints figures; never fails on a speed.

  /usr/bin/python3 tests/bench/bench-throttle.py [--runtime S]
      [--blockd build/core/blockd] [--limits 1000,10000,100000]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def wait_for(path, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f'{path} did not appear')
        time.sleep(0.05)


def run_case(argv0, extra, workdir, limit, runtime, depth):
    sock = os.path.join(workdir, 'nbd.sock')
    if os.path.exists(sock):
        os.unlink(sock)
    img = os.path.join(workdir, 'img')
    args = extra + [
        '--blockdev', f'driver=file,node-name=n0,filename={img}']
    node = 'n0'
    if limit:
        args += ['--object', f'throttle-group,id=g0,limits.iops-total={limit}',
                 '--blockdev', 'driver=throttle,node-name=t0,'
                 'throttle-group=g0,file=n0']
        node = 't0'
    args += ['--nbd-server', f'addr.type=unix,addr.path={sock}',
             '--export', f'type=nbd,id=e0,node-name={node},name=e0']
    proc = subprocess.Popen([argv0] + args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_for(sock, proc)
        r = subprocess.run(
            ['fio', '--name=bench', '--output-format=json', '--ioengine=nbd',
             f'--uri=nbd+unix:///e0?socket={sock}', '--rw=randread',
             '--bs=4k', f'--iodepth={depth}', '--time_based',
             f'--runtime={runtime}', '--size=64m'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        out = r.stdout.decode(errors='replace')
        if r.returncode or '{' not in out:
            raise RuntimeError('fio failed: ' +
                               (r.stderr.decode(errors='replace') + out)[-400:])
        return json.loads(out[out.index('{'):])['jobs'][0]['read']['iops']
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runtime', type=int, default=5)
    ap.add_argument('--depth', type=int, default=32)
    ap.add_argument('--blockd', default=os.path.join(ROOT, 'build', 'core',
                                                     'blockd'))
    ap.add_argument('--limits', default='1000,10000,100000')
    opts = ap.parse_args()
    limits = [int(x) for x in opts.limits.split(',')]
    daemons = [('blockd', opts.blockd,
                ['--plugin-dir', os.path.join(os.path.dirname(
                    os.path.dirname(opts.blockd)), 'plugins')])]
    qsd = shutil.which('qemu-storage-daemon')
    if qsd:
        daemons.append(('qsd', qsd, []))
    else:
        print('qemu-storage-daemon not found: blockd only', file=sys.stderr)
    print(f'fio 4k randread, iodepth {opts.depth}, {opts.runtime} s per '
          'case, a file node behind the throttle node')
    print(f'{"daemon":8} {"limit":>8} {"IOPS":>10} {"of limit":>9}')
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, 'img'), 'wb') as f:
            f.write(b'\xa5' * (64 << 20))
        for name, argv0, extra in daemons:
            for limit in [0] + limits:
                iops = run_case(argv0, extra, workdir, limit, opts.runtime,
                                opts.depth)
                share = f'{100 * iops / limit:8.1f}%' if limit else '       -'
                print(f'{name:8} {limit or "none":>8} {iops:10.0f} {share}',
                      flush=True)


if __name__ == '__main__':
    main()
