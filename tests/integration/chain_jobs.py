"""Helpers for the chain job tests (block-stream, block-commit): a backing
chain made with qemu-img/qemu-io, and one QMP sequence run against blockd
and qemu-storage-daemon 7.2 with every reply and event recorded.

A sequence is a list of steps:
- (command, arguments): executed, its reply recorded;
- ('WAIT', event, data): wait until an event of that name whose data
  holds every member of `data` has arrived (collected in order).
Strings in arguments have DIR replaced by the session's directory, and
DIR goes back in replies and events, so the two daemons compare.
"""
import json
import os
import re

import blockd_harness as h

MiB = 1024 * 1024

# (image, backing, writes: (pattern, offset, length))
CHAIN = [
    ('base.qcow2', None, [(0x11, 0, MiB), (0x12, 4 * MiB, 2 * MiB),
                          (0x13, 15 * MiB, MiB)]),
    ('mid.qcow2', 'base.qcow2', [(0x21, 512 * 1024, MiB),
                                 (0x22, 8 * MiB, 3 * MiB)]),
    ('top.qcow2', 'mid.qcow2', [(0x31, 2 * MiB, 64 * 1024),
                                (0x32, 8 * MiB + 4096, 8192)]),
]
SIZE = 16 * MiB


def substitute(value, old, new):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: substitute(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, old, new) for v in value]
    return value


def matches(event, name, data):
    return event['event'] == name and all(
        event['data'].get(k) == v for k, v in data.items())


class ChainCase(h.TestCase):

    def make_chain(self, d, chain=CHAIN, size=SIZE):
        """Create the images of `chain` in `d`, with relative backing
        names (as libvirt's are not, but as qemu-img's usually are)."""
        for name, backing, writes in chain:
            path = os.path.join(d, name)
            cmd = ['qemu-img', 'create', '-q', '-f', 'qcow2']
            if backing:
                # absolute, as libvirt records them: with a relative name
                # QEMU counts a backing given by node-name as overridden
                # and names the node "json:{...}"
                cmd += ['-b', os.path.join(d, backing), '-F', 'qcow2']
            self.run_command(cmd + [path, str(size)])
            for pattern, off, length in writes:
                r = self.run_command(['qemu-io', '-f', 'qcow2', '-c',
                                      'write -q -P %d %d %d' %
                                      (pattern, off, length), path])
                self.assertEqual(r.returncode, 0, r.stderr)

    def reference(self, d, top, out):
        """What the guest sees through `top` now, as a raw image."""
        r = self.run_command(['qemu-img', 'convert', '-O', 'raw',
                              os.path.join(d, top), os.path.join(d, out)])
        self.assertEqual(r.returncode, 0, r.stderr)

    def check_image(self, path):
        r = self.run_command(['qemu-img', 'check', '-q', path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def compare(self, a, b, fa='qcow2', fb='raw'):
        r = self.run_command(['qemu-img', 'compare', '-f', fa, '-F', fb,
                              a, b])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def info(self, path):
        r = self.run_command(['qemu-img', 'info', '--output=json',
                              '--backing-chain', '-U', path])
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def blockdev_chain(self, chain=CHAIN):
        """blockdev-add commands for the chain, bottom first, each node
        named after its image's stem, its backing given by node name."""
        cmds = []
        for name, backing, _ in chain:
            opts = {'driver': 'qcow2',
                    'node-name': os.path.basename(name).split('.')[0],
                    'file': {'driver': 'file',
                             'filename': 'DIR/' + name}}
            opts['backing'] = (os.path.basename(backing).split('.')[0]
                               if backing else None)
            cmds.append(('blockdev-add', opts))
        return cmds

    def run_session(self, qsd, steps, setup=None, extra_args=()):
        """Start a daemon in a fresh directory (setup(d) prepares it), run
        `steps`; returns (replies, events, d) with the daemon stopped."""
        d = self.make_tmpdir()
        if setup:
            setup(d)
        sock = os.path.join(d, 'qmp.sock')
        args = ['--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
                '--monitor', 'chardev=m'] + list(extra_args)
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        replies, events = [], []
        for step in steps:
            if callable(step):
                step(d, qmp)
                events += qmp.take_events()
                continue
            if step[0] == 'WAIT':
                _, name, data = step
                data = substitute(data, 'DIR', d)
                while True:
                    events += qmp.take_events()
                    if any(matches(e, name, data) for e in events):
                        break
                    qmp.events.append(qmp.wait_event(name))
                continue
            cmd, args = step
            reply = qmp.execute(cmd, substitute(args, 'DIR', d))
            events += qmp.take_events()
            replies.append(substitute(reply, d, 'DIR'))
        qmp.close()
        daemon.stop()
        for e in events:
            e.pop('timestamp', None)
        return replies, substitute(events, d, 'DIR'), d

    def side_by_side(self, steps, setup=None, drop=()):
        """run_session() on blockd and on qsd; the replies and events
        must be the same (members in `drop` of job events aside, e.g.
        offsets of a job cancelled at a moment that differs)."""
        ours = self.run_session(False, steps, setup)
        theirs = self.run_session(True, steps, setup)
        self.assertEqual(self._norm(ours[0], drop), self._norm(theirs[0],
                                                                drop))
        self.assertEqual(self._norm(ours[1], drop), self._norm(theirs[1],
                                                                drop))
        return ours, theirs

    @staticmethod
    def _norm(items, drop):
        def strip(v):
            if isinstance(v, dict):
                return {k: strip(x) for k, x in v.items() if k not in drop}
            if isinstance(v, list):
                return [strip(x) for x in v]
            return v
        # generated node names differ from run to run
        return [strip(json.loads(re.sub(r'#block\d+', '#blockN',
                                        json.dumps(it))))
                for it in items]


def nbd_random_writes(case, d, qmp, top_ref, job_id, seed,
                      statuses=('running',), limit=None):
    """While the job `job_id` is in one of `statuses`, write random
    patterns at random offsets of the NBD export 'e' (socket d/nbd.sock)
    and apply the same writes to the bytearray `top_ref`; returns how many
    writes happened meanwhile.  Stops once the job is in none of them
    (or after `limit` writes)."""
    import random

    import nbd

    rnd = random.Random(seed)
    handle = nbd.NBD()
    handle.connect_uri('nbd+unix:///e?socket=%s' % os.path.join(d,
                                                                 'nbd.sock'))
    during = 0
    try:
        while True:
            jobs = qmp.command('query-jobs')
            if not any(j['id'] == job_id and j['status'] in statuses
                       for j in jobs):
                break
            if limit is not None and during >= limit:
                break
            for _ in range(8):
                length = rnd.choice([512, 4096, 65536, 100000])
                offset = rnd.randrange(0, len(top_ref) - length)
                data = bytes([rnd.randrange(1, 256)]) * length
                handle.pwrite(data, offset)
                top_ref[offset:offset + length] = data
                during += 1
        handle.flush()
    finally:
        handle.shutdown()
    return during
