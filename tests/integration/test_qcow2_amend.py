"""x-blockdev-amend (plugin job-amend) on qcow2 nodes, side by side with
qemu-storage-daemon 7.2: the same replies, the same JOB_STATUS_CHANGE
stream, the same job errors.  QEMU 7.2's qcow2 amends only the keyslots
of LUKS encrypted images; on the images blockd opens (none encrypted) an
amend without 'encrypt' succeeds and changes nothing, and one with it
fails as qsd's does.
"""
import os
import subprocess

import blockd_harness as h


def amend(job, node, force=None, **options):
    args = {'job-id': job, 'node-name': node, 'options': options}
    if force is not None:
        args['force'] = force
    return ('x-blockdev-amend', args)


LUKS = {'format': 'luks', 'state': 'active', 'new-secret': 'sec0'}

SEQUENCE = [
    amend('a1', 'n', driver='qcow2'),
    ('query-jobs', None),
    amend('a1', 'n', driver='qcow2'),
    ('job-dismiss', {'id': 'a1'}),
    amend('a2', 'n', driver='qcow2', encrypt=LUKS),
    ('query-jobs', None),
    ('job-dismiss', {'id': 'a2'}),
    amend('a3', 'n', force=True, driver='qcow2',
          encrypt={'format': 'qcow'}),
    ('query-jobs', None),
    ('job-dismiss', {'id': 'a3'}),
    amend('a4', 'n', force=False, driver='qcow2'),
    ('job-dismiss', {'id': 'a4'}),
    # refused before any job exists
    amend('b1', 'no-such-node', driver='qcow2'),
    amend('b2', 'n', driver='raw'),
    amend('b3', 'r', driver='qcow2'),
    amend('b4', 'r', driver='raw'),
    amend('b5', 'f', driver='file'),
    amend('b6', 'n', driver='qcow2', encrypt={'format': 'luks'}),
    amend('2bad', 'n', driver='qcow2'),
    ('query-jobs', None),
]


class Qcow2Amend(h.TestCase):

    def session(self, qsd):
        d = self.make_tmpdir()
        img = os.path.join(d, 'img.qcow2')
        raw = os.path.join(d, 'img.raw')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', img,
                        '16M'], check=True)
        subprocess.run(['qemu-io', '-c', 'write -P 0x5a 1M 64k', img],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', raw, '1M'],
                       check=True)
        with open(img, 'rb') as f:
            before = f.read()
        sock = os.path.join(d, 'qmp.sock')
        args = ['--chardev', f'socket,id=m,path={sock},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f,filename={img}',
                '--blockdev', 'driver=qcow2,node-name=n,file=f',
                '--blockdev', f'driver=file,node-name=fr,filename={raw}',
                '--blockdev', 'driver=raw,node-name=r,file=fr']
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(sock)
        q = self.qmp(sock)
        replies, events = [], []
        for cmd, args in SEQUENCE:
            reply = q.execute(cmd, args)
            got = q.take_events()
            if cmd == 'x-blockdev-amend' and 'return' in reply:
                while not any(e['event'] == 'JOB_STATUS_CHANGE' and
                              e['data'] == {'id': args['job-id'],
                                            'status': 'concluded'}
                              for e in got):
                    got.append(q.wait_event('JOB_STATUS_CHANGE'))
                    got += q.take_events()
            for e in got:
                e.pop('timestamp', None)
            replies.append(reply)
            events += got
        daemon.stop()
        with open(img, 'rb') as f:
            after = f.read()
        return replies, events, before == after

    def test_amend_as_qsd(self):
        ours = self.session(False)
        theirs = self.session(True)
        for (cmd, args), a, b in zip(SEQUENCE, ours[0], theirs[0]):
            self.assertEqual(a, b, '%s %s' % (cmd, args))
        self.assertEqual(ours[1], theirs[1])
        self.assertEqual(ours[2], theirs[2])
        # the first amend succeeded, the one with encrypt failed
        self.assertEqual(ours[0][0], {'return': {}})
        jobs = ours[0][5]['return']
        self.assertEqual(jobs[0]['error'],
                         "image is not encrypted, can't amend")
        self.assertTrue(ours[2], 'the image changed')


if __name__ == '__main__':
    h.main()
