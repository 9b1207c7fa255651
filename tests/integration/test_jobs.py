"""The job manager and blockdev-create, side by side with
qemu-storage-daemon 7.2: the same QMP sequence against both, comparing
every reply and the whole event stream (timestamps aside; a reply and
the events around it may interleave differently, their orders may not).

blockdev-create has no auto-finalize/auto-dismiss arguments in 7.2: its
jobs finalize themselves and wait for job-dismiss; passing auto-dismiss is
an error both daemons must give alike.
"""
import os

import blockd_harness as h

ABSENT = 'nope'


def create(job_id, **file_opts):
    opts = {'driver': 'file'}
    opts.update(file_opts)
    return ('blockdev-create', {'job-id': job_id, 'options': opts})


VERBS_BY_ID = ['job-pause', 'job-resume', 'job-cancel', 'job-complete',
               'job-finalize', 'job-dismiss']
BLOCK_VERBS = [('block-job-pause', 'device'), ('block-job-resume', 'device'),
               ('block-job-cancel', 'device'),
               ('block-job-complete', 'device'),
               ('block-job-finalize', 'id'), ('block-job-dismiss', 'id')]


def verbs_on(job_id):
    seq = [(v, {'id': job_id}) for v in VERBS_BY_ID if v != 'job-dismiss']
    seq += [(v, {key: job_id}) for v, key in BLOCK_VERBS]
    seq.append(('block-job-set-speed', {'device': job_id, 'speed': 1}))
    return seq


# DIR is replaced by the session's private directory.
SEQUENCE = [
    ('query-jobs', None),
    ('query-block-jobs', None),
    create('c1', filename='DIR/c1.img', size=1048576),
    ('query-jobs', None),
    ('query-block-jobs', None),
] + verbs_on('c1') + [
    ('job-dismiss', {'id': 'c1'}),
    ('query-jobs', None),
    ('job-dismiss', {'id': 'c1'}),
] + [(v, {'id': ABSENT}) for v in VERBS_BY_ID] + [
    (v, {key: ABSENT}) for v, key in BLOCK_VERBS] + [
    ('block-job-set-speed', {'device': ABSENT, 'speed': 0}),
    # the error path: the job concludes with the error
    create('c2', filename='DIR/no-such-dir/c2.img', size=1048576),
    ('query-jobs', None),
    create('c2', filename='DIR/c2.img', size=1048576),
    create('2bad', filename='DIR/c2.img', size=1048576),
    create('c3', filename='DIR/c3.img', size=1048576,
           preallocation='metadata'),
    create('c4', filename='DIR/c4.img', size=3 * 65536 + 512,
           preallocation='falloc'),
    create('c5', filename='DIR/c5.img', size=2 * 65536 + 512,
           preallocation='full'),
    create('c6', filename='DIR/c6.img', size=65536, nocow=True),
    create('c7', filename='DIR/c7.img', size=-1),
    ('blockdev-create', {'job-id': 'c8', 'auto-dismiss': True,
                         'options': {'driver': 'file',
                                     'filename': 'DIR/c8.img',
                                     'size': 512}}),
    ('blockdev-create', {'job-id': 'c9', 'options': {'driver': 'null-co'}}),
    ('query-jobs', None),
    ('query-block-jobs', None),
] + verbs_on('c3') + [
    ('job-dismiss', {'id': 'c2'}),
    ('job-dismiss', {'id': 'c3'}),
    ('query-jobs', None),
]


def substitute(value, old, new):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: substitute(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, old, new) for v in value]
    return value


class Jobs(h.TestCase):

    def session(self, qsd):
        d = self.make_tmpdir()
        sock = os.path.join(d, 'qmp.sock')
        args = ['--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
                '--monitor', 'chardev=m']
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        replies, events = [], []
        for cmd, args in SEQUENCE:
            reply = qmp.execute(cmd, substitute(args, 'DIR', d))
            events += qmp.take_events()
            replies.append(substitute(reply, d, 'DIR'))
            if cmd == 'blockdev-create' and 'return' in reply:
                # the job runs on: wait until it is CONCLUDED
                while not any(e['event'] == 'JOB_STATUS_CHANGE' and
                              e['data'] == {'id': args['job-id'],
                                            'status': 'concluded'}
                              for e in events):
                    events.append(qmp.wait_event('JOB_STATUS_CHANGE'))
                    events += qmp.take_events()
        for e in events:
            e.pop('timestamp', None)
        sizes = {}
        for name in sorted(os.listdir(d)):
            if name.endswith('.img'):
                sizes[name] = os.stat(os.path.join(d, name)).st_size
        daemon.stop()
        return replies, events, sizes, d

    def test_sequence_matches_qsd(self):
        ours = self.session(False)
        theirs = self.session(True)
        for (cmd, args), a, b in zip(SEQUENCE, ours[0], theirs[0]):
            self.assertEqual(a, b, '%s %s' % (cmd, args))
        self.assertEqual(ours[1], theirs[1])
        self.assertEqual(ours[2], theirs[2])

    def test_created_images(self):
        """What the jobs leave on disk, and the states they went through."""
        replies, events, sizes, d = self.session(False)
        # c2 failed (no such directory), then its id was in use
        self.assertEqual(sizes, {'c1.img': 1048576,
                                 'c3.img': 0, 'c4.img': 3 * 65536 + 512,
                                 'c5.img': 2 * 65536 + 512, 'c6.img': 65536,
                                 'c7.img': 0})
        # full writes every byte: all of it is allocated
        st = os.stat(os.path.join(d, 'c5.img'))
        self.assertGreaterEqual(st.st_blocks * 512, 2 * 65536 + 512)
        out = self.run_command(['qemu-img', 'info', '--output=json',
                                os.path.join(d, 'c1.img')])
        self.assertIn('"virtual-size": 1048576', out.stdout)

        def states(job_id):
            return [e['data']['status'] for e in events
                    if e['event'] == 'JOB_STATUS_CHANGE'
                    and e['data']['id'] == job_id]
        self.assertEqual(states('c1'), ['created', 'running', 'waiting',
                                        'pending', 'concluded', 'null'])
        self.assertEqual(states('c2'), ['created', 'running', 'aborting',
                                        'concluded', 'null'])
        self.assertEqual(states('c4'), ['created', 'running', 'waiting',
                                        'pending', 'concluded'])

if __name__ == '__main__':
    h.main()
