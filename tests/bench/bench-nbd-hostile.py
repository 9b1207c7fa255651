#!/usr/bin/python3
"""What hostile NBD clients cost the others: blockd against qemu-storage-daemon.

Run by hand (never from meson):  /usr/bin/python3 bench-nbd-hostile.py

Cases (each with a fresh daemon exporting a small raw image over a UNIX
socket):

- stalled-N: N connections send two bytes of the NBD handshake and stall;
  then a fresh qemu-io reads 4 KiB.  Reported: the seconds until qemu-io
  is served (or that it still waits at the cap), and the seconds until
  the server has closed every stalled connection.
- tls-N: the same with TLS (PSK credentials) where the N connections do
  STARTTLS, send five bytes of a TLS record and stall; the fresh client is
  nbdinfo over TLS.
- emfile: the daemon runs with RLIMIT_NOFILE 64 and max-connections=0;
  100 stalled connections exhaust its descriptors.  Reported: the daemon's
  CPU time (user + system, /proc/PID/stat) over 3 s of wall time while
  exhausted, the share of it the main loop was runnable (ran or waited
  for a CPU: /proc/PID/schedstat), whether a new QMP client gets the greeting meanwhile, and
  the seconds until it gets it once the stalled connections are closed.

Options: --blockd PATH (default build/core/blockd), --plugin-dir DIR
(default: the plugins beside it in the build tree), --qsd (also run
qemu-storage-daemon), --cap SECONDS (how long to wait for a fresh client,
default 30), --handshake-max-seconds N (passed to blockd; 0 leaves the
option out, for builds that do not know it), --only CASE,... (e.g.
--only stalled-100,emfile).

Only the Python standard library is used.  Sockets, images and logs live
in a private directory (mkdtemp, mode 0700) removed at the end; every
daemon is killed by its pid.
"""

import argparse
import os
import resource
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

sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
from nbd_stallers import Stallers  # noqa: E402

def runnable_ns(pid):
    """Time the main thread (the main loop) ran or waited to run: near
    the wall time for a loop that spins, whatever other load the CPUs
    have."""
    with open(f'/proc/{pid}/schedstat') as f:
        run, wait, _ = f.read().split()
    return int(run) + int(wait)


def cpu_ticks(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Bench:

    def __init__(self, args, workdir):
        self.args = args
        self.dir = workdir
        self.img = os.path.join(workdir, 'img.raw')
        with open(self.img, 'wb') as f:
            f.truncate(1 << 20)
        self.psk = os.path.join(workdir, 'psk')
        os.mkdir(self.psk, 0o700)
        subprocess.run(['psktool', '-u', 'alice', '-p',
                        os.path.join(self.psk, 'keys.psk')], check=True,
                       capture_output=True)
        self.procs = []
        self.n = 0

    def start(self, kind, max_conn=None, tls=False, nofile=None,
              handshake=True):
        self.n += 1
        sock = os.path.join(self.dir, f'{kind}-{self.n}.nbd')
        qmp = os.path.join(self.dir, f'{kind}-{self.n}.qmp')
        server = f'addr.type=unix,addr.path={sock}'
        if max_conn is not None:
            server += f',max-connections={max_conn}'
        if tls:
            server += ',tls-creds=tls0'
        if kind == 'blockd' and handshake and \
                self.args.handshake_max_seconds is not None:
            server += (',handshake-max-seconds='
                       f'{self.args.handshake_max_seconds}')
        argv = ['--chardev', f'socket,id=m,path={qmp},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f,filename={self.img}']
        if tls:
            argv += ['--object', f'tls-creds-psk,id=tls0,dir={self.psk},'
                     'endpoint=server']
        argv += ['--nbd-server', server,
                 '--export', 'type=nbd,id=e,node-name=f,name=disk']
        env = dict(os.environ)
        if kind == 'blockd':
            argv = [self.args.blockd, '--plugin-dir', self.args.plugin_dir] \
                + argv
        else:
            argv = ['qemu-storage-daemon'] + argv

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        log = open(os.path.join(self.dir, f'{kind}-{self.n}.log'), 'wb')
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log, env=env, preexec_fn=limit)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while not (os.path.exists(sock) and os.path.exists(qmp)):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'{kind} did not start: {argv}')
            time.sleep(0.02)
        return p, sock, qmp

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def fresh_client(self, sock, tls, stallers):
        """Seconds until a fresh client is served, or None at the cap."""
        if tls:
            argv = ['nbdinfo', '--size',
                    f'nbds+unix://alice@/disk?socket={sock}'
                    f'&tls-psk-file={self.psk}/keys.psk']
        else:
            argv = ['qemu-io', '-r', '-f', 'raw', '-c', 'read 0 4k',
                    f'nbd+unix:///disk?socket={sock}']
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        while p.poll() is None and time.monotonic() - t0 < self.args.cap:
            stallers.pump(0.05)
        if p.poll() is None:
            p.kill()
            p.wait()
            return None, 'still waiting'
        took = time.monotonic() - t0
        if p.returncode != 0:
            return took, 'failed: ' + p.stderr.read().decode()[-200:]
        return took, 'served'

    def stalled_case(self, kind, count, tls, max_conn):
        p, sock, _ = self.start(kind, max_conn=max_conn, tls=tls)
        t0 = time.monotonic()
        st = Stallers(sock, count, tls=tls)
        # what gets in before the limit (100 by default, 0: none) bites
        limit = count if max_conn == 0 else min(count, max_conn or 100)
        st.pump_until(lambda: st.stalled >= limit, 20)
        st.pump(0.2)
        took, what = self.fresh_client(sock, tls, st)
        st.pump_until(lambda: st.open_count() == 0,
                      max(0, self.args.cap - (time.monotonic() - t0)))
        all_closed = time.monotonic() - t0 \
            if st.open_count() == 0 else None
        res = {'fresh': took, 'fresh_state': what, 'stalled': st.stalled,
               'closed_by_server': st.closed, 'all_closed_after': all_closed}
        st.close()
        self.stop(p)
        return res

    def emfile_case(self, kind):
        p, sock, qmp = self.start(kind, max_conn=0, nofile=64,
                                  handshake=False)
        if kind == 'blockd' and self.args.handshake_max_seconds is not None:
            # no deadline: the exhaustion must last for the measurement
            self.stop(p)
            saved = self.args.handshake_max_seconds
            self.args.handshake_max_seconds = 0
            try:
                p, sock, qmp = self.start(kind, max_conn=0, nofile=64)
            finally:
                self.args.handshake_max_seconds = saved
        st = Stallers(sock, 100)
        st.pump_until(lambda: st.greeted >= 40, 5)
        st.pump(1.0)
        q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        q.connect(qmp)
        q.settimeout(0.05)
        t0, c0, r0 = time.monotonic(), cpu_ticks(p.pid), runnable_ns(p.pid)
        greeting_while_exhausted = False
        while time.monotonic() - t0 < 3:
            st.pump(0.05)
            try:
                if q.recv(4096):
                    greeting_while_exhausted = True
            except socket.timeout:
                pass
        wall = time.monotonic() - t0
        cpu = (cpu_ticks(p.pid) - c0) / CLK_TCK / wall
        runnable = (runnable_ns(p.pid) - r0) / 1e9 / wall
        held = st.greeted
        st.close()
        t1 = time.monotonic()
        q.settimeout(self.args.cap)
        try:
            got = q.recv(4096)
            qmp_back = time.monotonic() - t1 if got else None
        except socket.timeout:
            qmp_back = None
        q.close()
        self.stop(p)
        return {'cpu_share': cpu, 'main_thread_runnable_share': runnable,
                'connections_accepted': held,
                'qmp_greeting_while_exhausted': greeting_while_exhausted,
                'qmp_greeting_after_release': qmp_back}

    def cleanup(self):
        for p in self.procs:
            self.stop(p)


def fmt(v):
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.2f}'
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--blockd', default=os.path.join(REPO, 'build', 'core',
                                                     'blockd'))
    ap.add_argument('--plugin-dir')
    ap.add_argument('--qsd', action='store_true')
    ap.add_argument('--cap', type=float, default=30)
    ap.add_argument('--handshake-max-seconds', type=int)
    ap.add_argument('--only')
    args = ap.parse_args()
    if not args.plugin_dir:
        args.plugin_dir = os.path.join(
            os.path.dirname(os.path.dirname(args.blockd)), 'plugins')
        if not os.path.isdir(args.plugin_dir):
            args.plugin_dir = os.path.join(os.path.dirname(args.blockd),
                                           'plugins')
    if args.handshake_max_seconds == 0:
        args.handshake_max_seconds = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)),
                                                hard))

    cases = {
        'stalled-100': lambda b, k: b.stalled_case(k, 100, False, None),
        'stalled-1000-max0': lambda b, k: b.stalled_case(k, 1000, False, 0),
        'stalled-1000': lambda b, k: b.stalled_case(k, 1000, False, None),
        'tls-100': lambda b, k: b.stalled_case(k, 100, True, None),
        'tls-1000-max0': lambda b, k: b.stalled_case(k, 1000, True, 0),
        'emfile': lambda b, k: b.emfile_case(k),
    }
    only = args.only.split(',') if args.only else list(cases)
    kinds = ['blockd'] + (['qsd'] if args.qsd else [])
    workdir = tempfile.mkdtemp(prefix='blockd-bench-')
    bench = Bench(args, workdir)
    try:
        for name in only:
            for kind in kinds:
                print(f'{name} {kind}: ...', file=sys.stderr, flush=True)
                res = cases[name](bench, kind)
                print(f'{name:18} {kind:7} ' +
                      ' '.join(f'{k}={fmt(v)}' for k, v in res.items()),
                      flush=True)
    finally:
        bench.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
