#!/usr/bin/python3
"""Stream and commit throughput on a 1 GiB qcow2 chain: blockd against
qemu-storage-daemon 7.2, and how well 'speed' is held.

Run by hand (never from meson):  /usr/bin/python3 bench-chain-jobs.py

The chain (made with qemu-img and qemu-io in a private directory under
/dev/shm, so the numbers measure the daemons rather than a disk):
base.qcow2 (1 GiB virtual, the first 512 MiB written), mid.qcow2 (256 MiB
written from 256 MiB on), top.qcow2 (16 MiB written).  Each case runs
against a fresh copy of the chain in a fresh daemon:

- stream: block-stream of the whole chain into the top (496 MiB copied);
- commit: block-commit of mid into base (256 MiB copied);
- active: block-commit of the top into base, until READY, then complete
  (272 MiB copied);
- stream-speed: block-stream with speed=S (--speed, default 64 MiB/s) of
  the whole chain; the rate reached is reported against S.

Reported per case and daemon: seconds from the command to the job's
end, MiB/s of data the job copied (the job's offset), and the daemon's
CPU seconds (utime + stime from /proc/PID/stat) over the job.

Options: --blockd PATH (default build/core/blockd), --plugin-dir DIR
(default: build/plugins), --no-qsd, --speed MIB_PER_S.
Every process started is stopped by its pid; the directories go at the
end, even after an error.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CLK_TCK = os.sysconf('SC_CLK_TCK')
MIB = 1024 * 1024
GIB = 1024 * MIB


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b''
        self.events = []
        self.recv()
        self.cmd('qmp_capabilities')

    def recv(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('QMP closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, **args):
        self.sock.sendall(json.dumps({'execute': name,
                                      'arguments': args}).encode() + b'\n')
        while True:
            msg = self.recv()
            if 'event' in msg:
                self.events.append(msg)
                continue
            if 'error' in msg:
                raise RuntimeError('%s: %s' % (name, msg['error']))
            return msg['return']

    def wait(self, event, **data):
        while True:
            for e in self.events:
                if e['event'] == event and all(e['data'].get(k) == v
                                               for k, v in data.items()):
                    self.events.remove(e)
                    return e
            self.events.append(self.recv())


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def make_chain(d):
    run('qemu-img', 'create', '-q', '-f', 'qcow2', d + '/base.qcow2', '1G')
    run('qemu-io', '-f', 'qcow2', '-c', 'write -q -P 0x11 0 512M',
        d + '/base.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', d + '/base.qcow2',
        '-F', 'qcow2', d + '/mid.qcow2')
    run('qemu-io', '-f', 'qcow2', '-c', 'write -q -P 0x22 256M 256M',
        d + '/mid.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', d + '/mid.qcow2',
        '-F', 'qcow2', d + '/top.qcow2')
    run('qemu-io', '-f', 'qcow2', '-c', 'write -q -P 0x33 100M 16M',
        d + '/top.qcow2')


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def case(binary, env, master, work, name, speed):
    d = tempfile.mkdtemp(dir=work)
    for img in ('base', 'mid', 'top'):
        shutil.copy(os.path.join(master, img + '.qcow2'), d)
    # the copies keep the absolute backing names of the master: rebase
    for img, back in (('mid', 'base'), ('top', 'mid')):
        run('qemu-img', 'rebase', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b',
            os.path.join(d, back + '.qcow2'), os.path.join(d, img + '.qcow2'))
    sock = os.path.join(d, 'qmp.sock')
    proc = subprocess.Popen([binary, '--chardev',
                             'socket,id=m,path=%s,server=on,wait=off' % sock,
                             '--monitor', 'chardev=m'], env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        qmp = Qmp(sock)
        for img, back in (('base', None), ('mid', 'base'), ('top', 'mid')):
            qmp.cmd('blockdev-add', driver='qcow2', **{'node-name': img},
                    file={'driver': 'file',
                          'filename': os.path.join(d, img + '.qcow2')},
                    backing=back)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        if name.startswith('stream'):
            args = {'device': 'top', 'job-id': 'j'}
            if speed:
                args['speed'] = speed
            qmp.cmd('block-stream', **args)
        elif name == 'commit':
            qmp.cmd('block-commit', device='top', **{'job-id': 'j',
                                                     'top-node': 'mid'})
        else:
            qmp.cmd('block-commit', device='top', **{'job-id': 'j'})
            qmp.wait('BLOCK_JOB_READY', device='j')
            qmp.cmd('block-job-complete', device='j')
        ev = qmp.wait('BLOCK_JOB_COMPLETED', device='j')
        t1, cpu1 = time.monotonic(), cpu_seconds(proc.pid)
        if 'error' in ev['data']:
            raise RuntimeError('%s: %s' % (name, ev['data']['error']))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
    return t1 - t0, cpu1 - cpu0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--blockd', default=os.path.join(REPO, 'build', 'core',
                                                     'blockd'))
    ap.add_argument('--plugin-dir', default=os.path.join(REPO, 'build',
                                                         'plugins'))
    ap.add_argument('--no-qsd', action='store_true')
    ap.add_argument('--speed', type=int, default=64)
    opts = ap.parse_args()
    env = dict(os.environ, BLOCKD_PLUGIN_DIR=opts.plugin_dir)
    daemons = [('blockd', opts.blockd)]
    qsd = shutil.which('qemu-storage-daemon')
    if qsd and not opts.no_qsd:
        daemons.append(('qsd', qsd))
    work = tempfile.mkdtemp(prefix='blockd-bench-', dir='/dev/shm')
    try:
        master = os.path.join(work, 'master')
        os.mkdir(master)
        make_chain(master)
        # what each job copies: the allocated ranges it moves
        copied = {'stream': 496 * MIB, 'commit': 256 * MIB,
                  'active': 272 * MIB, 'stream-speed': 496 * MIB}
        print('%-13s %-7s %9s %9s %9s' % ('case', 'daemon', 'seconds',
                                          'MiB/s', 'cpu-s'))
        for name in ('stream', 'commit', 'active', 'stream-speed'):
            speed = opts.speed * MIB if name == 'stream-speed' else 0
            for dname, binary in daemons:
                secs, cpu = case(binary, env, master, work, name, speed)
                line = '%-13s %-7s %9.2f %9.1f %9.2f' % (
                    name, dname, secs, copied[name] / MIB / secs, cpu)
                if speed:
                    line += '   (speed %d MiB/s: %.0f%%)' % (
                        opts.speed, 100 * copied[name] / secs / speed)
                print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
