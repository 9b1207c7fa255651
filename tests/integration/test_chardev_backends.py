#!/usr/bin/python3
"""The file, pipe, null, ringbuf and memory chardev backends,
ringbuf-write/ringbuf-read with QEMU's quirks (bytes cut at the first NUL,
invalid UTF-8 as U+FFFD, characters cut by 'size', unpadded Base64),
chardev-change, chardev-send-break, query-chardev and
query-chardev-backends: every reply compared with qemu-storage-daemon
7.2's, and what reaches the files checked."""
import json
import os
import re
import select
import socket
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
                                            'pty', 'ringbuf', 'socket',
                                            'stdio', 'udp'])
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


    def test_udp(self):
        """udp chardevs: made, listed, refused with QEMU's messages."""
        def scenario(qmp, workdir):
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(peer.close)
            peer.bind(('127.0.0.1', 0))
            port = str(peer.getsockname()[1])

            def inet(host, p):
                return {'type': 'inet', 'data': {'host': host, 'port': p}}
            steps = [
                ('chardev-add', {'id': 'u', 'backend': backend(
                    'udp', remote=inet('127.0.0.1', port))}),
                ('chardev-add', {'id': 'u2', 'backend': backend(
                    'udp', remote=inet('127.0.0.1', port),
                    local=inet('127.0.0.1', '0'))}),
                ('chardev-add', {'id': 'u3', 'backend': backend(
                    'udp', remote=inet('127.0.0.1', ''))}),
                ('chardev-add', {'id': 'u4', 'backend': backend(
                    'udp', remote={'type': 'unix',
                                   'data': {'path': f'{workdir}/x'}})}),
                ('chardev-add', {'id': 'u5', 'backend': backend(
                    'udp', remote=inet('127.0.0.1', port),
                    local=inet('192.0.2.1', '0'))}),
                ('chardev-add', {'id': 'u6', 'backend': backend(
                    'udp', remote=inet('127.0.0.1', port),
                    local=inet('', 'nosuchservice'))}),
            ]
            out = [qmp.execute(c, a) for c, a in steps]
            out.append(sorted(qmp.command('query-chardev'),
                              key=lambda c: c['label']))
            out.append(qmp.execute('chardev-remove', {'id': 'u'}))
            return out
        ours, theirs = self.run_both(scenario)
        self.assert_same(ours, theirs)
        self.assertEqual(ours[0], {'return': {}})

    def test_udp_monitor_refused(self):
        """qsd never opens a udp chardev to its monitor (no greeting
        ever); blockd refuses the monitor there, saying so."""
        res = self.run_blockd(['--chardev', 'udp,id=u,port=9',
                               '--monitor', 'chardev=u'])
        self.assertEqual(res.returncode, 1)
        self.assertIn("a QMP monitor on chardev 'u' (a udp chardev) is not "
                      "supported by blockd", res.stderr)

    def test_pty_monitor(self):
        """A monitor on a pty greets whoever opens the slave side, and
        again after it was closed and opened anew; chardev-add returns
        the pty's path; both as qsd."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            sock = os.path.join(workdir, 'qmp.sock')
            d = start([
                '--chardev', 'pty,id=p', '--monitor', 'chardev=p',
                '--chardev', f'socket,id=qmp,path={sock},server=on,wait=off',
                '--monitor', 'chardev=qmp'])
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            # (qsd's stdout is a file here: it prints when it exits)
            path = [c['filename'] for c in qmp.command('query-chardev')
                    if c['label'] == 'p'][0][len('pty:'):]
            if name == 'blockd':
                self.assertIn(f'char device redirected to {path} (label p)\n',
                              d.stdout())
            out = []
            for _ in range(2):
                fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
                try:
                    greeting = read_line(fd)
                    os.write(fd, b'{"execute": "qmp_capabilities"}\n')
                    out.append([json.loads(greeting)['QMP']['capabilities'],
                                json.loads(read_line(fd))])
                finally:
                    os.close(fd)
                # QEMU notices a closed slave side when it looks next (it
                # looks every second): opened again before, it would see
                # the same session go on
                time.sleep(1.5)
            info = qmp.command('query-chardev')
            out.append([c for c in info if c['label'] == 'p'] ==
                       [{'label': 'p', 'filename': f'pty:{path}',
                         'frontend-open': True}])
            added = qmp.command('chardev-add', id='p2',
                                backend=backend('pty'))
            out.append(sorted(added))
            self.assertTrue(os.path.exists(added['pty']))
            out.append(qmp.execute('chardev-remove', {'id': 'p2'}))
            self.assertNotIn('p2', d.stdout())
            results[name] = out
        self.assertEqual(results['blockd'][0], [['oob'], {'return': {}}])
        self.assertEqual(results['blockd'], results['qsd'])


def read_line(fd, timeout=h.START_TIMEOUT):
    """One line from @fd (a pty), waiting up to @timeout seconds."""
    data = b''
    deadline = time.monotonic() + timeout
    while not data.endswith(b'\n'):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f'no line from the pty, got {data!r}')
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data += os.read(fd, 4096)
    return data.decode()


if __name__ == '__main__':
    h.main()
