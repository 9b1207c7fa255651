"""The job verbs and the legacy block-job events on a block job, side by
side with qemu-storage-daemon 7.2.

qsd runs a mirror between two null-co nodes (it goes READY at once, with
nothing to copy, and waits for job-complete); blockd runs the test job
type testjob (tests/integration/plugins/job-testjob), which does the
same through the job ABI.  The same verbs go to both; replies, errors and
the whole event stream must be the same, the job type's name aside.
"""
import os

import blockd_harness as h

PLUGIN_DIRS = (os.environ.get('BLOCKD_PLUGIN_DIR', '') + ':' +
               os.environ.get('BLOCKD_TEST_JOB_PLUGIN_DIR', ''))
LENGTH = 1048576
# a source and a target per mirror that may run at the same time
NODES = []
for pair in ('', '-q1', '-q2', '-q3'):
    NODES += ['--blockdev', 'null-co,node-name=src%s,size=%d' % (pair, LENGTH),
              '--blockdev', 'null-co,node-name=dst%s,size=%d' % (pair, LENGTH)]


def start(job_id, **flags):
    return ('START', dict(flags, **{'job-id': job_id}))


def status(job_id, s):
    return ('JOB_STATUS_CHANGE', {'id': job_id, 'status': s})


# (command, arguments, the event to wait for before going on, if any)
SEQUENCE = [
    (*start('m1', **{'auto-finalize': False, 'auto-dismiss': False}),
     ('BLOCK_JOB_READY', None)),
    ('query-jobs', None, None),
    ('query-block-jobs', None, None),
    ('job-pause', {'id': 'm1'}, status('m1', 'standby')),
    ('job-pause', {'id': 'm1'}, None),
    ('query-jobs', None, None),
    ('query-block-jobs', None, None),
    ('job-resume', {'id': 'm1'}, status('m1', 'ready')),
    ('job-resume', {'id': 'm1'}, None),
    ('job-finalize', {'id': 'm1'}, None),
    ('job-dismiss', {'id': 'm1'}, None),
    ('block-job-set-speed', {'device': 'm1', 'speed': -1}, None),
    ('block-job-set-speed', {'device': 'm1', 'speed': 100}, None),
    ('job-complete', {'id': 'm1'}, ('BLOCK_JOB_PENDING', None)),
    ('query-jobs', None, None),
    ('query-block-jobs', None, None),
    ('job-complete', {'id': 'm1'}, None),
    ('job-pause', {'id': 'm1'}, None),
    ('block-job-finalize', {'id': 'm1'}, status('m1', 'concluded')),
    ('query-block-jobs', None, None),
    ('job-cancel', {'id': 'm1'}, None),
    ('block-job-dismiss', {'id': 'm1'}, status('m1', 'null')),
    ('query-jobs', None, None),
    # cancelled while READY, dismissed by itself
    (*start('m2'), ('BLOCK_JOB_READY', None)),
    ('job-cancel', {'id': 'm2'}, status('m2', 'null')),
    # cancelled while paused (STANDBY)
    (*start('m3', **{'auto-dismiss': False}), ('BLOCK_JOB_READY', None)),
    ('block-job-pause', {'device': 'm3'}, status('m3', 'standby')),
    ('block-job-cancel', {'device': 'm3', 'force': True},
     status('m3', 'concluded')),
    ('query-jobs', None, None),
    ('job-dismiss', {'id': 'm3'}, status('m3', 'null')),
    # completed, finalized and dismissed by itself
    (*start('m4'), ('BLOCK_JOB_READY', None)),
    ('block-job-complete', {'device': 'm4'}, status('m4', 'null')),
    # cancelled while PENDING
    (*start('m5', **{'auto-finalize': False, 'auto-dismiss': False}),
     ('BLOCK_JOB_READY', None)),
    ('job-complete', {'id': 'm5'}, ('BLOCK_JOB_PENDING', None)),
    ('job-cancel', {'id': 'm5'}, status('m5', 'concluded')),
    ('query-jobs', None, None),
    ('query-block-jobs', None, None),
    ('job-dismiss', {'id': 'm5'}, status('m5', 'null')),
    ('query-jobs', None, None),
]

# jobs left READY, paused and PENDING when the daemon quits
QUIT_SEQUENCE = [
    (*start('q1', **{'auto-dismiss': False}), ('BLOCK_JOB_READY', None)),
    (*start('q2'), ('BLOCK_JOB_READY', None)),
    ('job-pause', {'id': 'q2'}, status('q2', 'standby')),
    (*start('q3', **{'auto-finalize': False}), ('BLOCK_JOB_READY', None)),
    ('job-complete', {'id': 'q3'}, ('BLOCK_JOB_PENDING', None)),
    ('quit', None, None),
]


def normalize(value, type_name):
    """The job type's name as TYPE."""
    if isinstance(value, dict):
        return {k: ('TYPE' if k == 'type' and v == type_name
                    else normalize(v, type_name)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, type_name) for v in value]
    return value


class JobVerbs(h.TestCase):

    def start(self, qsd):
        sock = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = NODES + ['--chardev',
                        'socket,id=m,path=%s,server=on,wait=off' % sock,
                        '--monitor', 'chardev=m']
        if qsd:
            d = self.start_qsd(args)
        else:
            d = self.start_daemon(['--plugin-dir', PLUGIN_DIRS] + args)
        d.wait_for_socket_file(sock)
        return d, self.qmp(sock)

    def replay(self, qsd, sequence=SEQUENCE):
        d, qmp = self.start(qsd)
        type_name = 'mirror' if qsd else 'testjob'
        replies, events = [], []
        for cmd, args, until in sequence:
            if cmd == 'START':
                if qsd:
                    cmd = 'blockdev-mirror'
                    pair = '-' + args['job-id'] if sequence is QUIT_SEQUENCE \
                        else ''
                    args = dict(args, device='src' + pair,
                                target='dst' + pair, sync='full')
                else:
                    cmd = 'testjob-start'
                    args = dict(args, length=LENGTH)
            replies.append(normalize(qmp.execute(cmd, args), type_name))
            events += qmp.take_events()
            while until and not any(
                    e['event'] == until[0] and
                    (until[1] is None or e['data'] == until[1])
                    for e in events):
                events.append(qmp.wait_event(until[0]))
                events += qmp.take_events()
        events += qmp.take_events()
        if sequence is QUIT_SEQUENCE:
            # what the jobs send until the daemon closes the monitor
            try:
                while True:
                    events.append(qmp.receive())
            except ConnectionError:
                pass
            self.assertEqual(d.wait(), 0)
        for e in events:
            e.pop('timestamp', None)
        return replies, normalize(events, type_name)

    def compare(self, sequence):
        ours = self.replay(False, sequence)
        theirs = self.replay(True, sequence)
        for (cmd, args, _), a, b in zip(sequence, ours[0], theirs[0]):
            self.assertEqual(a, b, '%s %s' % (cmd, args))
        self.assertEqual(ours[1], theirs[1])

    def test_sequence_matches_qsd(self):
        self.compare(SEQUENCE)

    def test_quit_cancels_jobs(self):
        """quit cancels the jobs still there, paused or not, and waits."""
        self.compare(QUIT_SEQUENCE)


if __name__ == '__main__':
    h.main()
