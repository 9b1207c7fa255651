#!/usr/bin/python3
"""IOThreads: --object iothread, object-add/-del, query-iothreads and
x-blockdev-set-iothread, compared with qemu-storage-daemon 7.2 where it
has the same behaviour.

qsd 7.2 has no query-iothreads (only QEMU's system emulators do), lets
object-del delete an iothread that nodes still run in (and then crashes),
and crashes when a raw node is added over a node in an IOThread: those
cases run against blockd only.
"""
import os

import blockd_harness
from blockd_harness import BLOCKD, TestCase

PLUGIN_DIR = os.environ.get('BLOCKD_PLUGIN_DIR', '')


class IOThreadTests(TestCase):

    def start_qmp(self, qsd=False, extra=()):
        path = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = ['--chardev', f'socket,id=qmp0,path={path},server=on,wait=off',
                '--monitor', 'chardev=qmp0'] + list(extra)
        if qsd:
            daemon = self.start_qsd(args)
        else:
            daemon = self.start_daemon(['--plugin-dir', PLUGIN_DIR] + args)
        daemon.wait_for_socket_file(path)
        return daemon, self.qmp(path)

    def test_command_line_like_qsd(self):
        qsd = blockd_harness.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        cases = ['poll-max-ns=-1', 'poll-grow=-1', 'poll-shrink=-5',
                 'aio-max-batch=-1', 'thread-pool-min=-1',
                 'thread-pool-max=0', 'thread-pool-min=5,thread-pool-max=2',
                 'thread-pool-max=2147483648', 'thread-pool-min=100',
                 'poll-max-ns=x', 'poll-max-ns=9223372036854775808',
                 'foo=1', 'poll-max-ns=5,poll-grow=2,poll-shrink=3,'
                 'aio-max-batch=8,thread-pool-min=1,thread-pool-max=4,'
                 'poll-max-ns=x']
        for case in cases:
            with self.subTest(case=case):
                results = []
                for argv in ([BLOCKD, '--plugin-dir', PLUGIN_DIR], [qsd]):
                    res = self.run_command(
                        argv + ['--object', 'iothread,id=x,' + case],
                        timeout=30)
                    err = res.stderr.split(': ', 1)[-1]
                    results.append((res.returncode, err))
                self.assertEqual(results[0], results[1])
                self.assertEqual(results[0][0], 1)

    SESSION = [
        ('object-add', {'qom-type': 'iothread', 'id': 'io1', 'poll-grow': 3,
                        'poll-shrink': 4, 'thread-pool-min': 2,
                        'thread-pool-max': 5}),
        ('object-add', {'qom-type': 'iothread', 'id': 'io2',
                        'thread-pool-min': 100}),
        ('object-add', {'qom-type': 'iothread', 'id': 'io2',
                        'poll-max-ns': -1}),
        ('object-add', {'qom-type': 'iothread', 'id': 'io2',
                        'aio-max-batch': 'x'}),
        ('blockdev-add', {'driver': 'null-co', 'node-name': 'n0'}),
        ('blockdev-add', {'driver': 'file', 'node-name': 'f0',
                          'filename': 'IMG'}),
        ('x-blockdev-set-iothread', {'node-name': 'nosuch',
                                     'iothread': 'io0'}),
        ('x-blockdev-set-iothread', {'node-name': 'n0',
                                     'iothread': 'nosuch'}),
        ('x-blockdev-set-iothread', {'node-name': 'n0'}),
        ('x-blockdev-set-iothread', {'node-name': 'n0', 'iothread': 1}),
        ('x-blockdev-set-iothread', {'node-name': 'n0', 'iothread': 'io0'}),
        ('x-blockdev-set-iothread', {'node-name': 'n0', 'iothread': 'io0'}),
        ('x-blockdev-set-iothread', {'node-name': 'n0', 'iothread': 'io1',
                                     'force': True}),
        ('x-blockdev-set-iothread', {'node-name': 'n0', 'iothread': None}),
        ('x-blockdev-set-iothread', {'node-name': 'f0', 'iothread': 'io1'}),
        ('x-blockdev-set-iothread', {'node-name': 'f0', 'iothread': None}),
        ('object-del', {'id': 'io1'}),
        ('object-del', {'id': 'io0'}),
        ('blockdev-del', {'node-name': 'f0'}),
        ('blockdev-del', {'node-name': 'n0'}),
    ]

    def run_session(self, client, img):
        replies = []
        for name, args in self.SESSION:
            args = {k: (img if v == 'IMG' else v) for k, v in args.items()}
            replies.append((name, args, client.execute(name, args)))
        return replies

    def test_session_like_qsd(self):
        img = os.path.join(self.make_tmpdir(), 'disk.img')
        with open(img, 'wb') as f:
            f.truncate(1 << 20)
        start = ['--object', 'iothread,id=io0,poll-max-ns=100']
        _, ours = self.start_qmp(extra=start)
        _, theirs = self.start_qmp(qsd=True, extra=start)
        mine = self.run_session(ours, img)
        peer = self.run_session(theirs, img)
        for (name, args, got), (_, _, want) in zip(mine, peer):
            with self.subTest(command=name, arguments=args):
                self.assertEqual(got, want)

    def test_query_and_in_use(self):
        img = os.path.join(self.make_tmpdir(), 'disk.img')
        with open(img, 'wb') as f:
            f.truncate(1 << 20)
        daemon, client = self.start_qmp(extra=[
            '--object', 'iothread,id=io0,poll-max-ns=100,aio-max-batch=3'])
        self.assertEqual(client.command('query-iothreads')[0]['id'], 'io0')
        client.command('object-add', {'qom-type': 'iothread', 'id': 'io1',
                                      'poll-grow': 3, 'poll-shrink': 4})
        infos = client.command('query-iothreads')
        for info in infos:
            tid = info.pop('thread-id')
            with open(f'/proc/{daemon.proc.pid}/task/{tid}/comm') as f:
                self.assertEqual(f.read().strip(), 'IO ' + info['id'])
        self.assertEqual(infos, [
            {'id': 'io0', 'poll-max-ns': 100, 'poll-grow': 0,
             'poll-shrink': 0, 'aio-max-batch': 3},
            {'id': 'io1', 'poll-max-ns': 32768, 'poll-grow': 3,
             'poll-shrink': 4, 'aio-max-batch': 0}])

        client.command('blockdev-add', {'driver': 'file', 'node-name': 'f0',
                                        'filename': img})
        client.command('x-blockdev-set-iothread',
                       {'node-name': 'f0', 'iothread': 'io1'})
        in_use = {'class': 'GenericError',
                  'desc': "object 'io1' is in use, can not be deleted"}
        self.assertEqual(client.execute('object-del', {'id': 'io1'}),
                         {'error': in_use})
        # a new parent joins its child's IOThread, and moves with it
        client.command('blockdev-add', {'driver': 'raw', 'node-name': 'r0',
                                        'file': 'f0'})
        client.command('x-blockdev-set-iothread',
                       {'node-name': 'r0', 'iothread': 'io0'})
        client.command('object-del', {'id': 'io1'})
        self.assertEqual(client.execute('object-del', {'id': 'io0'}),
                         {'error': dict(in_use, desc=in_use['desc'].replace(
                             'io1', 'io0'))})
        client.command('blockdev-del', {'node-name': 'r0'})
        self.assertEqual(client.execute('object-del', {'id': 'io0'}),
                         {'error': dict(in_use, desc=in_use['desc'].replace(
                             'io1', 'io0'))})
        client.command('blockdev-del', {'node-name': 'f0'})
        client.command('object-del', {'id': 'io0'})
        self.assertEqual(client.command('query-iothreads'), [])


if __name__ == '__main__':
    blockd_harness.main()
