#!/usr/bin/python3
"""The file, pipe, null, ringbuf and memory chardev backends,
ringbuf-write/ringbuf-read with QEMU's quirks (bytes cut at the first NUL,
invalid UTF-8 as U+FFFD, characters cut by 'size', unpadded Base64),
chardev-change, chardev-send-break, query-chardev and
query-chardev-backends: every reply compared with qemu-storage-daemon
7.2's, and what reaches the files checked."""
import json
import os
import time

import blockd_harness as h


def backend(kind, **data):
    return {'type': kind, 'data': data}


class ChardevBackendsTest(h.TestCase):

    def daemons(self):
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        return [('blockd', lambda args: self.start_daemon(plugins + args)),
                ('qsd', self.start_qsd)]

    def run_both(self, scenario, extra_args=()):
        """Run scenario(qmp, workdir) -> list against both daemons (with a
        server-mode monitor 'qmp' plus @extra_args) and return both lists
        with the work directory replaced by WORKDIR."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            sock = os.path.join(workdir, 'qmp.sock')
            args = [a.replace('WORKDIR', workdir) for a in extra_args]
            d = start(['--chardev', f'socket,id=qmp,path={sock},server=on,'
                       'wait=off', '--monitor', 'chardev=qmp'] + args)
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            out = scenario(qmp, workdir)
            results[name] = json.loads(json.dumps(out).replace(workdir,
                                                               'WORKDIR'))
        return results['blockd'], results['qsd']

    def assert_same(self, ours, theirs):
        self.assertEqual(len(ours), len(theirs))
        for i, (a, b) in enumerate(zip(ours, theirs)):
            self.assertEqual(a, b, f'step {i}')

    def test_ringbuf_read_write(self):
        def scenario(qmp, workdir):
            steps = [
                ('chardev-add', {'id': 'r',
                                 'backend': backend('ringbuf', size=16)}),
                ('chardev-add', {'id': 'r2',
                                 'backend': backend('ringbuf', size=15)}),
                ('chardev-add', {'id': 'r3', 'backend': backend('memory')}),
                ('chardev-add', {'id': 'n', 'backend': backend('null')}),
                ('ringbuf-write', {'device': 'r', 'data': 'hello'}),
                ('ringbuf-read', {'device': 'r', 'size': 3}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                # overflow: the newest 16 bytes stay
                ('ringbuf-write', {'device': 'r',
                                   'data': 'abcdefghijklmnopqrstuvwxyz'}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-write', {'device': 'r', 'data': 'aGVsbG8=',
                                   'format': 'base64'}),
                ('ringbuf-read', {'device': 'r', 'size': 30,
                                  'format': 'base64'}),
                # unpadded: the complete groups only
                ('ringbuf-write', {'device': 'r', 'data': 'aGVsbG8',
                                   'format': 'base64'}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-write', {'device': 'r', 'data': 'aGVs\nbG8=',
                                   'format': 'base64'}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-write', {'device': 'r', 'data': '!!!',
                                   'format': 'base64'}),
                ('ringbuf-write', {'device': 'r', 'data': 'a b',
                                   'format': 'base64'}),
                # characters cut by size
                ('ringbuf-write', {'device': 'r', 'data': '\u00e9\u20ac'}),
                ('ringbuf-read', {'device': 'r', 'size': 1}),
                ('ringbuf-read', {'device': 'r', 'size': 2}),
                ('ringbuf-read', {'device': 'r', 'size': 5}),
                ('ringbuf-write', {'device': 'r',
                                   'data': '\U0001f600\u00e9'}),
                ('ringbuf-read', {'device': 'r', 'size': 30,
                                  'format': 'base64'}),
                # NUL bytes end a utf8 read
                ('ringbuf-write', {'device': 'r', 'data': 'YQBi',
                                   'format': 'base64'}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-write', {'device': 'r', 'data': 'gP8K',
                                   'format': 'base64'}),
                ('ringbuf-read', {'device': 'r', 'size': 30}),
                ('ringbuf-write', {'device': 'r3', 'data': 'mem'}),
                ('ringbuf-read', {'device': 'r3', 'size': 30}),
                ('ringbuf-read', {'device': 'r', 'size': -1}),
                ('ringbuf-read', {'device': 'r', 'size': 0}),
                ('ringbuf-read', {'device': 'n', 'size': 3}),
                ('ringbuf-write', {'device': 'n', 'data': 'x'}),
                ('ringbuf-read', {'device': 'nope', 'size': 3}),
                ('ringbuf-write', {'device': 'qmp', 'data': 'x'}),
                ('chardev-send-break', {'id': 'r'}),
                ('chardev-send-break', {'id': 'nope'}),
            ]
            return [qmp.execute(c, a) for c, a in steps]
        ours, theirs = self.run_both(scenario)
        self.assert_same(ours, theirs)
        self.assertEqual(ours[9], {'return': 'klmnopqrstuvwxyz'})

    def test_file_pipe_null_change(self):
        def scenario(qmp, workdir):
            os.mkfifo(os.path.join(workdir, 'fifo'))
            os.mkfifo(os.path.join(workdir, 'two.in'))
            os.mkfifo(os.path.join(workdir, 'two.out'))
            with open(os.path.join(workdir, 'in.txt'), 'w') as f:
                f.write('input\n')
            steps = [
                ('chardev-add', {'id': 'f', 'backend': backend(
                    'file', out=f'{workdir}/out.txt')}),
                ('chardev-add', {'id': 'f2', 'backend': backend(
                    'file', out=f'{workdir}/nodir/out.txt')}),
                ('chardev-add', {'id': 'f3', 'backend': backend(
                    'file', out=f'{workdir}/out3.txt',
                    **{'in': f'{workdir}/in.txt', 'append': True})}),
                ('chardev-add', {'id': 'f4', 'backend': backend(
                    'file', out=f'{workdir}/out4.txt',
                    **{'in': f'{workdir}/absent.txt'})}),
                ('chardev-add', {'id': 'p', 'backend': backend(
                    'pipe', device=f'{workdir}/fifo')}),
                ('chardev-add', {'id': 'p2', 'backend': backend(
                    'pipe', device=f'{workdir}/two')}),
                ('chardev-add', {'id': 'p3', 'backend': backend(
                    'pipe', device=f'{workdir}/absent')}),
                ('chardev-add', {'id': 'n', 'backend': backend('null')}),
                ('chardev-add', {'id': 'n', 'backend': backend('null')}),
                ('chardev-change', {'id': 'n', 'backend': backend(
                    'ringbuf', size=8)}),
                ('ringbuf-write', {'device': 'n', 'data': 'changed'}),
                ('ringbuf-read', {'device': 'n', 'size': 10}),
                ('chardev-change', {'id': 'n', 'backend': backend(
                    'ringbuf', size=7)}),
                ('ringbuf-read', {'device': 'n', 'size': 10}),
                ('chardev-change', {'id': 'qmp', 'backend': backend(
                    'null')}),
                ('chardev-change', {'id': 'nope', 'backend': backend(
                    'null')}),
                ('chardev-change', {'id': 'f', 'backend': backend(
                    'file', out=f'{workdir}/other.txt')}),
                ('chardev-remove', {'id': 'p2'}),
            ]
            out = [qmp.execute(c, a) for c, a in steps]
            out.append(sorted(qmp.command('query-chardev'),
                              key=lambda c: c['label']))
            out.append(sorted(b['name'] for b in
                              qmp.command('query-chardev-backends')))
            out.append(sorted(os.listdir(workdir)))
            return out
        ours, theirs = self.run_both(scenario)
        # qsd has backends blockd does not: compare blockd's with qsd's
        backends = ours.pop(-2)
        qsd_backends = theirs.pop(-2)
        self.assertLessEqual(set(backends), set(qsd_backends))
        self.assertEqual(sorted(backends), ['file', 'memory', 'null', 'pipe',
                                            'ringbuf', 'socket', 'stdio'])
        self.assert_same(ours, theirs)

    def test_monitor_on_file_and_ringbuf(self):
        """A monitor on a file chardev writes its greeting to the file;
        one on a ringbuf writes it into the buffer, which ringbuf-read
        shows; one on null says nothing.  (qsd takes no input file on
        the command line, and monitors come only from there.)"""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            sock = os.path.join(workdir, 'qmp.sock')
            replies = os.path.join(workdir, 'replies')
            d = start([
                '--chardev', f'socket,id=qmp,path={sock},server=on,wait=off',
                '--monitor', 'chardev=qmp',
                '--chardev', f'file,id=f,path={replies}',
                '--monitor', 'chardev=f',
                '--chardev', 'ringbuf,id=r,size=1024',
                '--monitor', 'chardev=r',
                '--chardev', 'null,id=n',
                '--monitor', 'chardev=n'])
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)

            def file_text():
                with open(replies) as f:
                    return f.read()
            d.wait_until(lambda: os.path.exists(replies) and
                         file_text().endswith('\n'), 'the greeting in the file')
            greeting = json.loads(file_text())
            ring = ''
            deadline = time.monotonic() + h.START_TIMEOUT
            while not ring.endswith('\n') and time.monotonic() < deadline:
                ring += qmp.command('ringbuf-read', device='r', size=4096)
            chardevs = sorted(qmp.command('query-chardev'),
                              key=lambda c: c['label'])
            results[name] = json.loads(json.dumps([
                greeting['QMP']['capabilities'],
                json.loads(ring)['QMP']['capabilities'],
                chardevs,
                qmp.execute('chardev-change', {'id': 'r',
                                               'backend': backend('null')}),
                qmp.execute('chardev-remove', {'id': 'n'}),
            ]).replace(workdir, 'WORKDIR'))
        self.assertEqual(results['blockd'][0], ['oob'])
        self.assertEqual(results['blockd'], results['qsd'])


if __name__ == '__main__':
    h.main()
