#!/usr/bin/python3
"""The throttle filter and the throttle-group object: the same object-add,
blockdev-add, qom-get/qom-set and object-del sequences as
qemu-storage-daemon 7.2 give the same replies and errors; and a throttled
node exported over NBD holds its limit (measured by a real NBD client,
with a generous bound: not above the limit by more than 10% over a few
seconds, not far below it), also after qom-set changed it."""
import json
import os
import select
import subprocess
import time

import nbd

import blockd_harness as h

MIB = 1024 * 1024


class ThrottleQmpTest(h.TestCase):

    def daemons(self):
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        return [('blockd', lambda args: self.start_daemon(plugins + args)),
                ('qsd', self.start_qsd)]

    def run_both(self, steps, objects=()):
        """Run the QMP @steps on each daemon (an image at WORKDIR/img) and
        return both lists of replies, qom-list results sorted (QEMU lists
        properties in hash-table order)."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            with open(os.path.join(workdir, 'img'), 'wb') as f:
                f.truncate(MIB)
            sock = os.path.join(workdir, 'qmp.sock')
            args = ['--chardev', f'socket,id=mon,path={sock},server=on,'
                    'wait=off', '--monitor', 'chardev=mon']
            for o in objects:
                args += ['--object', o]
            d = start(args)
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            out = []
            for cmd, arguments in steps:
                arguments = json.loads(json.dumps(arguments).replace(
                    'WORKDIR', workdir))
                reply = qmp.execute(cmd, arguments)
                if cmd in ('qom-list', 'qom-list-properties') and \
                        'return' in reply:
                    reply['return'].sort(key=lambda p: p['name'])
                out.append(reply)
            results[name] = json.loads(json.dumps(out).replace(workdir,
                                                               'WORKDIR'))
        return results['blockd'], results['qsd']

    def assert_same(self, steps, objects=()):
        ours, theirs = self.run_both(steps, objects)
        self.assertEqual(len(ours), len(theirs))
        for step, a, b in zip(steps, ours, theirs):
            self.assertEqual(a, b, f'{step}')
        return ours

    def add(self, id, **props):
        return ('object-add', dict({'qom-type': 'throttle-group', 'id': id},
                                   **props))

    def test_bad_limits(self):
        """Each invalid combination QEMU refuses, with its message."""
        bad = [
            {'bps-total': 100, 'bps-read': 10},
            {'iops-total': 100, 'iops-write': 10},
            {'bps-total-max': 100, 'bps-write-max': 200},
            {'bps-total-max': 100},
            {'iops-read': 100, 'iops-read-max': 50},
            {'bps-total': 100, 'bps-total-max-length': 5},
            {'bps-total': 100, 'bps-total-max': 200,
             'bps-total-max-length': 0},
            {'bps-total': 10**15 + 1},
            {'iops-total-max': 10**15 + 1, 'iops-total': 1},
            {'bps-total': -1},
            {'bps-total': 1, 'bps-total-max': 10**12,
             'bps-total-max-length': 10**4},
            {'bps-total': 1, 'bps-total-max': 2,
             'bps-total-max-length': 2**32},
            {'bps-total': 1, 'bps-total-max': 2,
             'bps-total-max-length': -1},
            {'iops-size': 4096},
            {'iops-size': 4096, 'bps-total': 10},
        ]
        steps = [self.add(f'g{i}', limits=b) for i, b in enumerate(bad)]
        steps += [
            self.add('x1', **{'x-bps-total': -5}),
            self.add('x2', **{'x-iops-total-max': 10}),
            self.add('x3', **{'x-iops-total': 10,
                              'x-iops-total-max-length': 2**32}),
            self.add('x4', **{'x-bps-read': 10, 'x-bps-total': 10}),
            self.add('x5', limits={'nope': 1}),
            self.add('x6', limits={'bps-total': 'x'}),
            ('qom-list', {'path': '/objects'}),
        ]
        ours = self.assert_same(steps)
        self.assertIn('error', ours[0])

    def test_qom_limits(self):
        """qom-get and qom-set of 'limits' and of the x-* properties."""
        steps = [
            self.add('g0', limits={'iops-total': 100, 'bps-read': 4096,
                                   'bps-read-max': 8192,
                                   'bps-read-max-length': 3,
                                   'iops-size': 512}),
            self.add('g1', **{'x-iops-write': 50, 'x-iops-write-max': 60,
                              'x-bps-total': 1000}),
            ('qom-list', {'path': '/objects/g0'}),
            ('qom-list-properties', {'typename': 'throttle-group'}),
            ('qom-get', {'path': 'g0', 'property': 'limits'}),
            ('qom-get', {'path': 'g1', 'property': 'limits'}),
            ('qom-get', {'path': 'g0', 'property': 'x-bps-read-max-length'}),
            ('qom-get', {'path': 'g1', 'property': 'x-iops-write-max'}),
            ('qom-get', {'path': 'g0', 'property': 'type'}),
            # members not given keep their value
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'iops-total': 200}}),
            ('qom-get', {'path': 'g0', 'property': 'limits'}),
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'iops-total': 0, 'iops-read': 5}}),
            ('qom-get', {'path': 'g0', 'property': 'limits'}),
            # refused changes leave the limits as they were
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'iops-total': 5}}),
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'bps-read-max': 1}}),
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'bps-write-max-length': 2**32}}),
            ('qom-set', {'path': 'g0', 'property': 'limits', 'value': 5}),
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'iops-total': 'x'}}),
            ('qom-set', {'path': 'g0', 'property': 'limits',
                         'value': {'bogus': 1}}),
            ('qom-get', {'path': 'g0', 'property': 'limits'}),
            ('qom-set', {'path': 'g0', 'property': 'x-iops-total',
                         'value': 5}),
            ('qom-set', {'path': 'g0', 'property': 'x-iops-total',
                         'value': 'x'}),
            ('qom-get', {'path': 'g0', 'property': 'x-iops-total'}),
            ('object-del', {'id': 'g1'}),
            ('qom-list', {'path': '/objects'}),
        ]
        self.assert_same(steps)

    def test_throttle_node(self):
        """blockdev-add of throttle nodes: a missing group, a shared group
        that cannot be deleted while in use, deletion afterwards."""
        file = {'driver': 'file', 'node-name': 'f0',
                'filename': 'WORKDIR/img'}
        steps = [
            ('blockdev-add', file),
            ('blockdev-add', {'driver': 'throttle', 'node-name': 't0',
                              'throttle-group': 'nope', 'file': 'f0'}),
            ('blockdev-add', {'driver': 'throttle', 'node-name': 't0',
                              'file': 'f0'}),
            ('blockdev-add', {'driver': 'throttle', 'node-name': 't0',
                              'throttle-group': 'g0', 'file': 'nofile'}),
            ('blockdev-add', {'driver': 'throttle', 'node-name': 't0',
                              'throttle-group': 'g0', 'file': 'f0'}),
            # the group in the json: file name, the file node nested as
            # the filtered child
            ('query-named-block-nodes', {}),
            ('query-named-block-nodes', {'flat': True}),
            ('blockdev-add', {'driver': 'throttle', 'node-name': 't1',
                              'throttle-group': 'g0',
                              'file': {'driver': 'file',
                                       'filename': 'WORKDIR/img',
                                       'read-only': True},
                              'read-only': True}),
            ('object-del', {'id': 'g0'}),
            ('blockdev-del', {'node-name': 't0'}),
            ('object-del', {'id': 'g0'}),
            ('blockdev-del', {'node-name': 't1'}),
            ('object-del', {'id': 'g0'}),
            ('qom-list', {'path': '/objects'}),
        ]
        self.assert_same(steps, ['throttle-group,id=g0,x-iops-total=1000'])

    def test_reopen(self):
        """blockdev-reopen moves a node to another group (the old one can
        then be deleted) and refuses a group that does not exist."""
        node = {'driver': 'throttle', 'node-name': 't0',
                'throttle-group': 'g0', 'file': 'f0'}
        steps = [
            ('blockdev-add', {'driver': 'file', 'node-name': 'f0',
                              'filename': 'WORKDIR/img'}),
            ('blockdev-add', node),
            ('blockdev-reopen', {'options': [dict(node, **{
                'throttle-group': 'nope'})]}),
            ('blockdev-reopen', {'options': [dict(node, **{
                'throttle-group': 'g1'})]}),
            ('object-del', {'id': 'g1'}),
            ('object-del', {'id': 'g0'}),
            ('query-named-block-nodes', {'flat': True}),
            ('blockdev-reopen', {'options': [dict(node, **{
                'throttle-group': 'g1', 'read-only': True})]}),
            ('query-named-block-nodes', {'flat': True}),
            ('blockdev-del', {'node-name': 't0'}),
            ('object-del', {'id': 'g1'}),
        ]
        self.assert_same(steps, ['throttle-group,id=g0,x-iops-total=1000',
                                 'throttle-group,id=g1,x-bps-total=1000'])


class ThrottleRateTest(h.TestCase):
    """A real NBD client against a throttled export."""

    def start(self, group, export_opts=''):
        img = os.path.join(self.tmpdir, 'img')
        with open(img, 'wb') as f:
            f.truncate(64 * MIB)
        self.qmp_sock = os.path.join(self.tmpdir, 'qmp.sock')
        self.nbd_sock = os.path.join(self.tmpdir, 'nbd.sock')
        d = self.start_daemon([
            '--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR'],
            '--chardev', f'socket,id=mon,path={self.qmp_sock},server=on,'
            'wait=off', '--monitor', 'chardev=mon',
            '--object', group, '--object', 'iothread,id=io0',
            '--blockdev', f'driver=file,node-name=f0,filename={img}',
            '--blockdev', 'driver=throttle,node-name=t0,throttle-group=g0,'
            'file=f0',
            '--nbd-server', f'addr.type=unix,addr.path={self.nbd_sock}',
            '--export', 'type=nbd,id=e0,node-name=t0,name=t0,writable=on' +
            export_opts])
        d.wait_for_socket_file(self.qmp_sock)
        d.wait_for_socket_file(self.nbd_sock)
        self.client = nbd.NBD()
        self.client.connect_uri(f'nbd+unix:///t0?socket={self.nbd_sock}')

    def run_ops(self, n, size, write, depth=16):
        """@n requests of @size bytes, @depth in flight; their seconds."""
        buf = nbd.Buffer(size)
        started = 0
        done = [0]

        def completed(error):
            done[0] += 1
            return 1        # retire the command

        t0 = time.monotonic()
        while done[0] < n:
            while started < n and started - done[0] < depth:
                offset = (started * size) % (32 * MIB)
                if write:
                    self.client.aio_pwrite(buf, offset,
                                           completion=completed)
                else:
                    self.client.aio_pread(buf, offset,
                                          completion=completed)
                started += 1
            self.client.poll(-1)
        return time.monotonic() - t0

    def assert_rate(self, units, seconds, limit, burst):
        """@units went in @seconds under @limit per second, of which
        @burst could pass at once (QEMU lets a tenth of a second's worth
        go before throttling)."""
        ideal = (units - burst) / limit
        rate = (units - burst) / seconds
        self.assertLessEqual(rate, limit * 1.10,
                             f'{units} in {seconds:.2f}s, limit {limit}/s')
        self.assertGreaterEqual(rate, limit * 0.5,
                                f'{units} in {seconds:.2f}s (ideal '
                                f'{ideal:.2f}s), limit {limit}/s')

    def test_iops(self):
        self.start('throttle-group,id=g0,limits.iops-total=400')
        seconds = self.run_ops(1200, 4096, write=False)
        self.assert_rate(1200, seconds, 400, 40)

    def test_bps_write(self):
        self.start('throttle-group,id=g0,limits.bps-write=4194304')
        seconds = self.run_ops(192, 65536, write=True)
        self.assert_rate(192 * 65536, seconds, 4 * MIB, 4 * MIB // 10)
        # reads are not limited by a write limit
        self.assertLess(self.run_ops(192, 65536, write=False), seconds / 2)

    def test_iops_size(self):
        """A 64 KiB read counts as 16 operations of iops-size 4 KiB."""
        self.start('throttle-group,id=g0,limits.iops-total=1600,'
                   'limits.iops-size=4096')
        seconds = self.run_ops(300, 65536, write=False)
        self.assert_rate(300 * 16, seconds, 1600, 160)

    def test_qemu_io_in_iothread(self):
        """qemu-io writes and reads back 4 MiB in 256 KiB requests through
        a node in an IOThread limited to 2 MiB/s: the data is intact and
        the rate is held."""
        self.start('throttle-group,id=g0,limits.bps-total=2097152',
                   ',iothread=io0')
        uri = f'nbd+unix:///t0?socket={self.nbd_sock}'
        chunk = 256 * 1024
        t0 = time.monotonic()
        for op in ('write', 'read'):
            argv = ['qemu-io', '-f', 'raw']
            for i in range(16):
                argv += ['-c', f'{op} -P {0x30 + i} {i * chunk} {chunk}']
            r = self.run_command(argv + [uri])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn('verification failed', r.stdout)
        seconds = time.monotonic() - t0
        # a tenth of a second's worth passes at once, and the last request
        # goes before its bytes are counted (the next one waits for them)
        self.assert_rate(8 * MIB, seconds, 2 * MIB, 2 * MIB // 10 + chunk)

    def test_qom_set_changes_rate(self):
        self.start('throttle-group,id=g0,limits.iops-total=200')
        seconds = self.run_ops(600, 4096, write=False)
        self.assert_rate(600, seconds, 200, 20)
        with self.qmp(self.qmp_sock) as qmp:
            qmp.command('qom-set', path='g0', property='limits',
                        value={'iops-total': 1000})
        seconds = self.run_ops(3000, 4096, write=False)
        self.assert_rate(3000, seconds, 1000, 100)


class ThrottleDrainTest(h.TestCase):
    """A drain (here blockdev-reopen's) does not wait for the throttled
    requests at the group's rate: they go at once, as in
    qemu-storage-daemon (20 reads at 2 per second would take 10 s)."""

    def test_drain(self):
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        for name, start in (('blockd', lambda a: self.start_daemon(
                plugins + a)), ('qsd', self.start_qsd)):
            workdir = self.make_tmpdir()
            img = os.path.join(workdir, 'img')
            with open(img, 'wb') as f:
                f.write(b'\x5a' * MIB)
            qmp_sock = os.path.join(workdir, 'qmp.sock')
            nbd_sock = os.path.join(workdir, 'nbd.sock')
            d = start([
                '--chardev', f'socket,id=mon,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=mon',
                '--object', 'throttle-group,id=g0,limits.iops-total=2',
                '--blockdev', f'driver=file,node-name=f0,filename={img}',
                '--blockdev', 'driver=throttle,node-name=t0,'
                'throttle-group=g0,file=f0',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}',
                '--export', 'type=nbd,id=e0,node-name=t0,name=t0'])
            d.wait_for_socket_file(qmp_sock)
            d.wait_for_socket_file(nbd_sock)
            qmp = self.qmp(qmp_sock)
            argv = ['qemu-io', '-r', '-f', 'raw']
            for i in range(20):
                argv += ['-c', f'aio_read -q {i * 4096} 4k']
            argv += ['-c', 'aio_flush', f'nbd+unix:///t0?socket={nbd_sock}']
            client = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(1)
                t0 = time.monotonic()
                reply = qmp.execute('blockdev-reopen', {'options': [
                    {'driver': 'throttle', 'node-name': 't0',
                     'throttle-group': 'g0', 'file': 'f0'}]})
                seconds = time.monotonic() - t0
                out, err = client.communicate(timeout=60)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            self.assertEqual(reply, {'return': {}}, name)
            self.assertEqual(client.returncode, 0, err)
            # 18 or so reads still waited: 9 s at the group's rate
            self.assertLess(seconds, 4, f'{name}: the drain took '
                            f'{seconds:.1f}s')


class ThrottleSharedTest(h.TestCase):
    """Two throttle nodes in one group, each exported over NBD: together
    they hold the group's limit, and they take turns: a client with one
    request in flight gets about as many through as one with sixteen (QEMU's
    round-robin), not one in seventeen."""

    def test_round_robin(self):
        limit = 300
        qmp_sock = os.path.join(self.tmpdir, 'qmp.sock')
        nbd_sock = os.path.join(self.tmpdir, 'nbd.sock')
        args = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR'],
                '--chardev', f'socket,id=mon,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=mon',
                '--object', f'throttle-group,id=g0,limits.iops-total={limit}',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}']
        for i in range(2):
            img = os.path.join(self.tmpdir, f'img{i}')
            with open(img, 'wb') as f:
                f.write(b'\x5a' * MIB)
            args += ['--blockdev', f'driver=file,node-name=f{i},'
                     f'filename={img}',
                     '--blockdev', f'driver=throttle,node-name=t{i},'
                     f'throttle-group=g0,file=f{i}',
                     '--export', f'type=nbd,id=e{i},node-name=t{i},'
                     f'name=t{i}']
        d = self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        d.wait_for_socket_file(nbd_sock)
        clients = []
        for i, depth in ((0, 16), (1, 1)):
            c = nbd.NBD()
            c.connect_uri(f'nbd+unix:///t{i}?socket={nbd_sock}')
            clients.append({'h': c, 'depth': depth, 'done': 0,
                            'started': 0, 'buf': nbd.Buffer(4096)})

        def completed(c):
            def cb(error):
                c['done'] += 1
                return 1
            return cb

        seconds = 3
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for c in clients:
                while c['started'] - c['done'] < c['depth']:
                    c['h'].aio_pread(c['buf'], 0, completion=completed(c))
                    c['started'] += 1
            rl = [c['h'].aio_get_fd() for c in clients
                  if c['h'].aio_get_direction() & nbd.AIO_DIRECTION_READ]
            wl = [c['h'].aio_get_fd() for c in clients
                  if c['h'].aio_get_direction() & nbd.AIO_DIRECTION_WRITE]
            r, w, _ = select.select(rl, wl, [], 0.05)
            for c in clients:
                if c['h'].aio_get_fd() in r:
                    c['h'].aio_notify_read()
                if c['h'].aio_get_fd() in w:
                    c['h'].aio_notify_write()
        deep, shallow = clients[0]['done'], clients[1]['done']
        total = deep + shallow
        msg = f'{deep} + {shallow} in {seconds}s, group limit {limit}/s'
        # a tenth of a second's worth passes before throttling starts
        self.assertLessEqual(total - limit // 10, limit * seconds * 1.10,
                             msg)
        self.assertGreaterEqual(total, limit * seconds * 0.5, msg)
        self.assertGreaterEqual(shallow, total * 0.3, msg)


if __name__ == '__main__':
    h.main()
