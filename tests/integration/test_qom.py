#!/usr/bin/python3
"""qom-list, qom-get and qom-set on the QOM tree qemu-storage-daemon 7.2
shows: "/", "/objects" and its objects (iothread polling and pool
parameters, secret, authz-simple, tls-creds), "/chardevs" and its
character devices; absolute and partial paths; QEMU's errors.  Every
reply is compared with qsd's; a changed iothread parameter is seen by
query-iothreads too."""
import ctypes
import errno
import json
import os
import time

import blockd_harness as h


class QomTest(h.TestCase):

    def daemons(self):
        plugins = ['--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR']]
        return [('blockd', lambda args: self.start_daemon(plugins + args)),
                ('qsd', self.start_qsd)]

    def run_both(self, objects, steps, extra=()):
        """Start each daemon with --object @objects (WORKDIR replaced),
        run the QMP @steps and return both lists of replies, with the
        work directory as WORKDIR and qom-list results sorted (QEMU lists
        properties in hash-table order)."""
        results = {}
        for name, start in self.daemons():
            workdir = self.make_tmpdir()
            with open(os.path.join(workdir, 'sec.txt'), 'w') as f:
                f.write('from-a-file')
            with open(os.path.join(workdir, 'keys.psk'), 'w') as f:
                f.write('alice:0123456789abcdef0123456789abcdef\n')
            sock = os.path.join(workdir, 'qmp.sock')
            args = ['--chardev', f'socket,id=mon,path={sock},server=on,'
                    'wait=off', '--monitor', 'chardev=mon']
            for o in objects:
                args += ['--object', o.replace('WORKDIR', workdir)]
            args += list(extra)
            d = start(args)
            d.wait_for_socket_file(sock)
            qmp = self.qmp(sock)
            out = []
            for cmd, arguments in steps:
                reply = qmp.execute(cmd, arguments)
                if cmd in ('qom-list', 'qom-list-properties') and \
                        'return' in reply:
                    reply['return'].sort(key=lambda p: p['name'])
                out.append(reply)
            results[name] = json.loads(json.dumps(out).replace(workdir,
                                                               'WORKDIR'))
        return results['blockd'], results['qsd']

    def assert_same(self, ours, theirs, steps):
        self.assertEqual(len(ours), len(theirs))
        for step, a, b in zip(steps, ours, theirs):
            self.assertEqual(a, b, f'{step}')

    def test_iothread(self):
        props = ['poll-max-ns', 'poll-grow', 'poll-shrink', 'aio-max-batch',
                 'thread-pool-min', 'thread-pool-max', 'type', 'thread-id']
        steps = [('qom-list', {'path': '/objects/io0'}),
                 ('qom-list', {'path': 'io0'}),
                 ('qom-list', {'path': '/objects/io0/'}),
                 ('qom-list-properties', {'typename': 'iothread'})]
        steps += [('qom-get', {'path': '/objects/io0', 'property': p})
                  for p in props]
        steps += [
            ('qom-set', {'path': '/objects/io0', 'property': 'poll-max-ns',
                         'value': 5000}),
            ('qom-set', {'path': 'io0', 'property': 'poll-grow',
                         'value': 2}),
            ('qom-set', {'path': 'io0', 'property': 'poll-shrink',
                         'value': 4}),
            ('qom-set', {'path': 'io0', 'property': 'aio-max-batch',
                         'value': 16}),
            ('qom-set', {'path': 'io0', 'property': 'poll-max-ns',
                         'value': -1}),
            ('qom-set', {'path': 'io0', 'property': 'poll-max-ns',
                         'value': 'x'}),
            ('qom-set', {'path': 'io0', 'property': 'poll-max-ns',
                         'value': 1.5}),
            # refused by the pool, but kept (QEMU stores it first)
            ('qom-set', {'path': 'io0', 'property': 'thread-pool-min',
                         'value': 100}),
            ('qom-set', {'path': 'io0', 'property': 'thread-pool-max',
                         'value': 200}),
            ('qom-set', {'path': 'io0', 'property': 'type', 'value': 'x'}),
            ('qom-set', {'path': 'io0', 'property': 'nope', 'value': 1}),
            ('qom-set', {'path': '/objects/nope', 'property': 'poll-grow',
                         'value': 1}),
        ]
        steps += [('qom-get', {'path': 'io0', 'property': p})
                  for p in props]
        ours, theirs = self.run_both(['iothread,id=io0,poll-max-ns=1000'],
                                     steps)
        self.assert_same(ours, theirs, steps)
        self.assertEqual(ours[-8], {'return': 5000})

    def test_iothread_query(self):
        """What qom-set changes is what the thread runs with: blockd's
        query-iothreads (which qsd 7.2 does not have) shows it."""
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon([
            '--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR'],
            '--chardev', f'socket,id=mon,path={sock},server=on,wait=off',
            '--monitor', 'chardev=mon', '--object', 'iothread,id=io0'])
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        for prop, value in [('poll-max-ns', 777), ('poll-grow', 3),
                            ('poll-shrink', 5), ('aio-max-batch', 9)]:
            qmp.command('qom-set', path='io0', property=prop, value=value)
        info = qmp.command('query-iothreads')[0]
        self.assertEqual([info['poll-max-ns'], info['poll-grow'],
                          info['poll-shrink'], info['aio-max-batch']],
                         [777, 3, 5, 9])

    def test_tree_and_paths(self):
        steps = [
            ('qom-list', {'path': '/'}),
            ('qom-list', {'path': '/objects'}),
            ('qom-list', {'path': 'objects'}),
            ('qom-list', {'path': '/nope'}),
            ('qom-list', {'path': 'nope'}),
            ('qom-list', {'path': '/objects/io0/x'}),
            ('qom-get', {'path': '/', 'property': 'type'}),
            ('qom-get', {'path': '/objects', 'property': 'type'}),
            ('qom-get', {'path': '/objects', 'property': 'io0'}),
            ('qom-get', {'path': '/', 'property': 'objects'}),
            ('qom-get', {'path': '/objects', 'property': 'nope'}),
            ('qom-set', {'path': '/objects', 'property': 'io0',
                         'value': 'x'}),
            ('qom-get', {'path': '/nope', 'property': 'type'}),
            ('qom-get', {'path': 'io0', 'property': 'type'}),
            # chardevs
            ('qom-list', {'path': '/chardevs'}),
            ('qom-list', {'path': 'chardevs'}),
            ('qom-list', {'path': '/chardevs/mon'}),
            ('qom-list', {'path': 'mon'}),
            ('qom-list', {'path': 'rb'}),
            ('qom-get', {'path': 'mon', 'property': 'type'}),
            ('qom-get', {'path': 'mon', 'property': 'connected'}),
            ('qom-get', {'path': 'mon', 'property': 'addr'}),
            ('qom-get', {'path': 'rb', 'property': 'type'}),
            ('qom-get', {'path': 'rb', 'property': 'connected'}),
            ('qom-get', {'path': '/chardevs', 'property': 'rb'}),
            ('qom-set', {'path': 'mon', 'property': 'connected',
                         'value': False}),
            ('qom-set', {'path': 'rb', 'property': 'nope', 'value': 1}),
            ('chardev-add', {'id': 'io1', 'backend': {'type': 'null',
                                                      'data': {}}}),
            # an object and a chardev called io1: ambiguous
            ('qom-list', {'path': 'io1'}),
            ('qom-get', {'path': 'io1', 'property': 'type'}),
            ('qom-list', {'path': 'objects/io1'}),
            ('qom-get', {'path': '/objects/io1', 'property': 'type'}),
            ('qom-get', {'path': 'chardevs/io1', 'property': 'type'}),
        ]
        ours, theirs = self.run_both(['iothread,id=io0',
                                      'iothread,id=io1'], steps,
                                     ['--chardev', 'ringbuf,id=rb'])
        self.assert_same(ours, theirs, steps)


    def test_secret_authz(self):
        steps = [('qom-list', {'path': p}) for p in ('s0', 's1', 'az',
                                                      'al')]
        for path in ('s0', 's1'):
            steps += [('qom-get', {'path': path, 'property': p})
                      for p in ('data', 'file', 'format', 'keyid', 'iv',
                                'loaded', 'type')]
        steps += [
            ('qom-set', {'path': 's0', 'property': 'data', 'value': 'new'}),
            ('qom-get', {'path': 's0', 'property': 'data'}),
            ('qom-set', {'path': 's0', 'property': 'data', 'value': 1}),
            ('qom-set', {'path': 's0', 'property': 'loaded',
                         'value': True}),
            ('qom-set', {'path': 's0', 'property': 'format',
                         'value': 'x'}),
            ('qom-set', {'path': 's0', 'property': 'format',
                         'value': 'base64'}),
            ('qom-get', {'path': 's0', 'property': 'format'}),
            ('qom-set', {'path': 's1', 'property': 'keyid', 'value': 'k'}),
            ('qom-get', {'path': 's1', 'property': 'keyid'}),
            ('qom-get', {'path': 'az', 'property': 'identity'}),
            ('qom-set', {'path': 'az', 'property': 'identity',
                         'value': 'alice'}),
            ('qom-get', {'path': 'az', 'property': 'identity'}),
            ('qom-get', {'path': 'al', 'property': 'policy'}),
            ('qom-get', {'path': 'al', 'property': 'rules'}),
            ('qom-set', {'path': 'al', 'property': 'policy',
                         'value': 'allow'}),
            ('qom-set', {'path': 'al', 'property': 'policy',
                         'value': 'maybe'}),
            ('qom-get', {'path': 'al', 'property': 'policy'}),
            ('qom-set', {'path': 'al', 'property': 'rules', 'value': [
                {'match': 'bob', 'policy': 'deny'},
                {'match': 'a*', 'policy': 'allow', 'format': 'glob'}]}),
            ('qom-get', {'path': 'al', 'property': 'rules'}),
            ('qom-set', {'path': 'al', 'property': 'rules', 'value': [
                {'match': 'bob'}]}),
            ('qom-set', {'path': 'al', 'property': 'rules', 'value': 3}),
            ('qom-get', {'path': 'al', 'property': 'rules'}),
        ]
        ours, theirs = self.run_both([
            'secret,id=s0,data=abc',
            'secret,id=s1,file=WORKDIR/sec.txt,format=raw',
            'authz-simple,id=az,identity=bob',
            'authz-list,id=al'], steps)
        self.assert_same(ours, theirs, steps)


    def test_tls_creds(self):
        props = ['endpoint', 'dir', 'verify-peer', 'priority', 'loaded',
                 'username', 'sanity-check', 'type']
        steps = [('qom-list', {'path': 'ta'}), ('qom-list', {'path': 'tp'})]
        steps += [('qom-get', {'path': path, 'property': p})
                  for path in ('ta', 'tp') for p in props]
        steps += [
            ('qom-set', {'path': 'tp', 'property': 'priority',
                         'value': 'NORMAL:-VERS-TLS1.0'}),
            ('qom-set', {'path': 'tp', 'property': 'verify-peer',
                         'value': False}),
            ('qom-set', {'path': 'tp', 'property': 'verify-peer',
                         'value': 'no'}),
            ('qom-set', {'path': 'tp', 'property': 'dir', 'value': '/x'}),
            ('qom-set', {'path': 'tp', 'property': 'endpoint',
                         'value': 'client'}),
            ('qom-set', {'path': 'tp', 'property': 'endpoint',
                         'value': 'both'}),
            ('qom-set', {'path': 'tp', 'property': 'username',
                         'value': 'bob'}),
            ('qom-set', {'path': 'tp', 'property': 'loaded',
                         'value': False}),
        ]
        steps += [('qom-get', {'path': 'tp', 'property': p})
                  for p in props]
        ours, theirs = self.run_both([
            'tls-creds-anon,id=ta,endpoint=server',
            'tls-creds-psk,id=tp,endpoint=server,dir=WORKDIR'], steps)
        self.assert_same(ours, theirs, steps)
        self.assertEqual(ours[-5], {'return': 'NORMAL:-VERS-TLS1.0'})


    def test_main_loop(self):
        """main-loop: one instance, never deleted, its parameters read
        and changed like an iothread's."""
        def add(ident, **props):
            return ('object-add', dict(props, **{'qom-type': 'main-loop',
                                                 'id': ident}))
        steps = [
            add('ml3', **{'thread-pool-min': 10, 'thread-pool-max': 5}),
            add('ml', **{'aio-max-batch': 4}),
            add('ml2'),
            add('ml4', **{'thread-pool-min': 10, 'thread-pool-max': 5}),
            add('ml5', **{'aio-max-batch': -1}),
            ('qom-list', {'path': 'ml'}),
            ('qom-get', {'path': 'ml', 'property': 'aio-max-batch'}),
            ('qom-get', {'path': 'ml', 'property': 'thread-pool-max'}),
            ('qom-set', {'path': 'ml', 'property': 'thread-pool-max',
                         'value': 8}),
            ('qom-set', {'path': 'ml', 'property': 'thread-pool-min',
                         'value': 9}),
            ('qom-get', {'path': 'ml', 'property': 'thread-pool-min'}),
            ('object-del', {'id': 'ml'}),
            ('qom-list-types', {'implements': 'main-loop'}),
        ]
        ours, theirs = self.run_both([], steps)
        self.assert_same(ours, theirs, steps)
        self.assertEqual(ours[1], {'return': {}})


    def test_secret_keyring(self):
        """secret_keyring reads a key the daemon possesses (one in the
        session keyring it inherits), with QEMU's errors."""
        good, b64, bad64, gone = [add_session_key(p) for p in
                                  (b'hunter2', b'aGVsbG8=', b'!!!', b'x')]
        for serial in (good, b64, bad64):
            self.addCleanup(unlink_session_key, serial)
        unlink_session_key(gone)
        wait_key_destroyed(gone)

        def add(ident, **props):
            return ('object-add', dict(props, **{'qom-type': 'secret_keyring',
                                                 'id': ident}))
        steps = [
            add('k', serial=good),
            add('k2', serial=b64, format='base64'),
            add('k3', serial=bad64, format='base64'),
            add('k4', serial=gone),
            add('k5', serial=0),
            add('k6', serial=2 ** 32),
            add('k7'),
            ('qom-list', {'path': 'k'}),
        ]
        steps += [('qom-get', {'path': 'k2', 'property': p})
                  for p in ('loaded', 'format', 'keyid', 'iv', 'type')]
        steps += [
            ('qom-set', {'path': 'k', 'property': 'serial', 'value': 0}),
            ('qom-set', {'path': 'k', 'property': 'serial', 'value': 5}),
            ('qom-get', {'path': 'k', 'property': 'serial'}),
            ('qom-list-types', {'implements': 'secret_common'}),
        ]
        ours, theirs = self.run_both([], steps)
        self.assert_same(ours, theirs, steps)
        self.assertEqual(ours[0], {'return': {}})
        self.assertEqual(ours[3]['error']['desc'],
                         f'Unable to read serial key {gone:08x}: '
                         'Required key not available')


    def test_thread_context(self):
        ncpu = os.cpu_count()

        def add(ident, **props):
            return ('object-add', dict(props, **{'qom-type': 'thread-context',
                                                 'id': ident}))
        steps = [
            add('tc'),
            ('qom-list', {'path': 'tc'}),
            ('qom-get', {'path': 'tc', 'property': 'cpu-affinity'}),
            ('qom-get', {'path': 'tc', 'property': 'node-affinity'}),
            ('qom-set', {'path': 'tc', 'property': 'cpu-affinity',
                         'value': [ncpu - 1]}),
            ('qom-get', {'path': 'tc', 'property': 'cpu-affinity'}),
            ('qom-set', {'path': 'tc', 'property': 'node-affinity',
                         'value': [0]}),
            ('qom-get', {'path': 'tc', 'property': 'cpu-affinity'}),
            ('qom-set', {'path': 'tc', 'property': 'node-affinity',
                         'value': [999]}),
            ('qom-set', {'path': 'tc', 'property': 'cpu-affinity',
                         'value': []}),
            ('qom-set', {'path': 'tc', 'property': 'cpu-affinity',
                         'value': [70000]}),
            ('qom-set', {'path': 'tc', 'property': 'cpu-affinity',
                         'value': 'x'}),
            ('qom-set', {'path': 'tc', 'property': 'thread-id',
                         'value': 1}),
            add('tc2', **{'cpu-affinity': [0], 'node-affinity': [0]}),
            add('tc3', **{'cpu-affinity': [ncpu + 7]}),
            add('tc4', **{'cpu-affinity': [0]}),
            ('qom-get', {'path': 'tc4', 'property': 'cpu-affinity'}),
            ('object-del', {'id': 'tc'}),
            ('qom-list-types', {'implements': 'thread-context'}),
        ]
        ours, theirs = self.run_both([], steps)
        self.assert_same(ours, theirs, steps)
        self.assertEqual(ours[5], {'return': [ncpu - 1]})

    def test_thread_id(self):
        """thread-id is a thread of the daemon, bound as asked."""
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon([
            '--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR'],
            '--chardev', f'socket,id=mon,path={sock},server=on,wait=off',
            '--monitor', 'chardev=mon',
            '--object', 'thread-context,id=tc,cpu-affinity.0=0'])
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        tid = qmp.command('qom-get', path='tc', property='thread-id')
        self.assertTrue(os.path.isdir(f'/proc/{d.pid}/task/{tid}'))
        self.assertEqual(os.sched_getaffinity(tid), {0})


    def test_authz_listfile(self):
        """authz-listfile's properties (qsd 7.2 cannot make one: its
        schema and object model disagree on the type's name)."""
        rules = os.path.join(self.tmpdir, 'rules.json')
        with open(rules, 'w') as f:
            json.dump({'policy': 'deny'}, f)
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon([
            '--plugin-dir', os.environ['BLOCKD_PLUGIN_DIR'],
            '--chardev', f'socket,id=mon,path={sock},server=on,wait=off',
            '--monitor', 'chardev=mon',
            '--object', f'authz-listfile,id=af,filename={rules},refresh=off'])
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        self.assertEqual(sorted(p['name'] for p in
                                qmp.command('qom-list', path='af')),
                         ['filename', 'refresh', 'type'])
        self.assertEqual(qmp.command('qom-get', path='af',
                                     property='filename'), rules)
        self.assertIs(qmp.command('qom-get', path='af', property='refresh'),
                      False)
        qmp.command('qom-set', path='af', property='refresh', value=True)
        self.assertIs(qmp.command('qom-get', path='af', property='refresh'),
                      True)
        err = qmp.execute('qom-set', {'path': 'af', 'property': 'refresh',
                                      'value': 'yes'})['error']
        self.assertEqual(err['desc'], "Invalid parameter type for "
                         "'refresh', expected: boolean")


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_ADD_KEY = 248
SYS_KEYCTL = 250
KEY_SPEC_SESSION_KEYRING = -3
KEYCTL_UNLINK = 9
KEYCTL_DESCRIBE = 6


def add_session_key(payload):
    """A 'user' key in this process's session keyring, which the daemons
    started afterwards share and so may read: its serial."""
    desc = f'blockd-test-{os.getpid()}-{payload.hex()}'.encode()
    serial = _libc.syscall(SYS_ADD_KEY, b'user', desc, payload,
                           len(payload),
                           ctypes.c_int(KEY_SPEC_SESSION_KEYRING))
    if serial < 0:
        raise OSError(ctypes.get_errno(), 'add_key failed')
    return serial


def unlink_session_key(serial):
    """Take the key out of the session keyring (it goes away)."""
    _libc.syscall(SYS_KEYCTL, KEYCTL_UNLINK, ctypes.c_long(serial),
                  ctypes.c_long(KEY_SPEC_SESSION_KEYRING))


def wait_key_destroyed(serial, timeout=10.0):
    """Wait until the kernel's key collector has destroyed an unlinked
    key: until then reading it fails with EACCES (no longer possessed),
    afterwards with ENOKEY, and both daemons must meet the same one."""
    buf = ctypes.create_string_buffer(256)
    deadline = time.monotonic() + timeout
    while True:
        r = _libc.syscall(SYS_KEYCTL, KEYCTL_DESCRIBE, ctypes.c_long(serial),
                          buf, ctypes.c_long(len(buf)))
        if r < 0 and ctypes.get_errno() == errno.ENOKEY:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f'key {serial} still exists {timeout} s '
                                 'after its unlink')
        time.sleep(0.02)


if __name__ == '__main__':
    h.main()
