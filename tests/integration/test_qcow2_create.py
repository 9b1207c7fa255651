"""blockdev-create of qcow2 images, side by side with qemu-storage-daemon
7.2: the same QMP sequence against both daemons (replies and the
JOB_STATUS_CHANGE stream compared), then what each made compared:
`qemu-img info --output=json`, the raw first cluster (header and
extensions), the whole metadata file where QEMU's layout is matched,
`qemu-img compare` of the two, and `qemu-img check` of blockd's.
"""
import json
import os

import blockd_harness as h

MiB = 1024 * 1024

# name -> (qcow2 options past 'file'; sizes of the files made first)
# Every image gets a file node 'f-NAME'; 'data' adds a data file node
# 'd-NAME' (DIR/NAME.data), 'base' a backing image made by qemu-img.
GOOD = {
    'default': {'size': 64 * MiB},
    'empty': {'size': 0},
    'v2': {'size': 64 * MiB, 'version': 'v2'},
    'v3': {'size': 64 * MiB, 'version': 'v3'},
    'c512': {'size': 8 * MiB, 'cluster-size': 512},
    'c4k': {'size': 64 * MiB, 'cluster-size': 4096},
    'c8k': {'size': 64 * MiB, 'cluster-size': 8192},
    'c2m': {'size': 5 * 1024 * MiB, 'cluster-size': 2 * MiB},
    'big': {'size': 2 * 1024 * 1024 * MiB},
    'extl2': {'size': 64 * MiB, 'extended-l2': True},
    'extl2-16k': {'size': 64 * MiB, 'extended-l2': True,
                  'cluster-size': 16384},
    'lazy': {'size': 64 * MiB, 'lazy-refcounts': True},
    'rc1': {'size': 64 * MiB, 'refcount-bits': 1},
    'rc8': {'size': 64 * MiB, 'refcount-bits': 8},
    'rc64': {'size': 64 * MiB, 'refcount-bits': 64},
    'zstd': {'size': 64 * MiB, 'compression-type': 'zstd'},
    'zlib': {'size': 64 * MiB, 'compression-type': 'zlib'},
    'pre-meta': {'size': 3 * MiB + 512, 'preallocation': 'metadata'},
    'pre-meta-c4k': {'size': 5 * MiB, 'preallocation': 'metadata',
                     'cluster-size': 4096},
    'pre-falloc': {'size': 3 * MiB + 512, 'preallocation': 'falloc'},
    'pre-full': {'size': 3 * MiB + 512, 'preallocation': 'full'},
    'pre-falloc-empty': {'size': 0, 'preallocation': 'falloc'},
    'pre-meta-empty': {'size': 0, 'preallocation': 'metadata'},
    'pre-falloc-c4k': {'size': 64 * MiB, 'preallocation': 'falloc',
                       'cluster-size': 4096},
    'pre-full-c512': {'size': MiB, 'preallocation': 'full',
                      'cluster-size': 512},
    'pre-falloc-rc1': {'size': 4 * MiB, 'preallocation': 'falloc',
                       'cluster-size': 512, 'refcount-bits': 1},
    'pre-falloc-rc64': {'size': 4 * MiB, 'preallocation': 'falloc',
                        'cluster-size': 1024, 'refcount-bits': 64},
    'pre-falloc-extl2': {'size': 8 * MiB + 512, 'preallocation': 'falloc',
                         'extended-l2': True},
    'pre-full-lazy': {'size': 2 * MiB, 'preallocation': 'full',
                      'lazy-refcounts': True},
    'pre-meta-rc1': {'size': 4 * MiB, 'preallocation': 'metadata',
                     'cluster-size': 512, 'refcount-bits': 1},
    # past the range of the first refcount block: where the next go
    'pre-meta-big': {'size': 2560 * MiB, 'preallocation': 'metadata'},
    'pre-meta-c512': {'size': 16 * MiB, 'preallocation': 'metadata',
                      'cluster-size': 512},
    'pre-meta-extl2': {'size': 2560 * MiB, 'preallocation': 'metadata',
                       'extended-l2': True},
    'pre-meta-c512-rc64': {'size': 4 * MiB, 'preallocation': 'metadata',
                           'cluster-size': 512, 'refcount-bits': 64},
    'backing': {'size': 64 * MiB, 'backing-file': 'BASE',
                'backing-fmt': 'qcow2'},
    'backing-nofmt': {'size': 64 * MiB, 'backing-file': 'BASE'},
    'backing-c512': {'size': 64 * MiB, 'backing-file': 'BASE',
                     'backing-fmt': 'qcow2', 'cluster-size': 512},
    'backing-v2': {'size': 64 * MiB, 'backing-file': 'BASE',
                   'backing-fmt': 'qcow2', 'version': 'v2'},
    'backing-extl2-pre': {'size': 4 * MiB, 'backing-file': 'BASE',
                          'backing-fmt': 'qcow2', 'extended-l2': True,
                          'preallocation': 'metadata'},
    'data': {'size': 64 * MiB, 'data-file': 'DATA'},
    'data-raw': {'size': 64 * MiB, 'data-file': 'DATA',
                 'data-file-raw': True},
    'data-raw-full': {'size': 4 * MiB, 'data-file': 'DATA',
                      'data-file-raw': True, 'preallocation': 'full'},
    'data-meta': {'size': 4 * MiB, 'data-file': 'DATA',
                  'preallocation': 'metadata'},
    'data-falloc': {'size': 4 * MiB, 'data-file': 'DATA',
                    'preallocation': 'falloc'},
    # the file and the data file defined inline, opened for the job only
    'inline': {'size': 64 * MiB,
               'file': {'driver': 'file', 'filename': 'DIR/inline.qcow2'},
               'data-file': {'driver': 'file',
                             'filename': 'DIR/inline.data'}},
    'inline-pre': {'size': 4 * MiB, 'preallocation': 'full',
                   'file': {'driver': 'file',
                            'filename': 'DIR/inline-pre.qcow2'}},
    'all': {'size': 64 * MiB, 'extended-l2': True, 'lazy-refcounts': True,
            'refcount-bits': 32, 'compression-type': 'zstd',
            'cluster-size': 131072},
}

# the same checks on the options, failing the job with QEMU's message
BAD = {
    'e-size': {'size': 1000},
    'e-cs-odd': {'size': MiB, 'cluster-size': 1000},
    'e-cs-small': {'size': MiB, 'cluster-size': 256},
    'e-cs-large': {'size': MiB, 'cluster-size': 4 * MiB},
    'e-cs-zero': {'size': MiB, 'cluster-size': 0},
    'e-cs-wrap': {'size': MiB, 'cluster-size': (1 << 32) + 65536},
    'e-extl2-small': {'size': MiB, 'extended-l2': True,
                      'cluster-size': 8192},
    'e-extl2-v2': {'size': MiB, 'extended-l2': True, 'version': 'v2'},
    'e-lazy-v2': {'size': MiB, 'lazy-refcounts': True, 'version': 'v2'},
    'e-rc3': {'size': MiB, 'refcount-bits': 3},
    'e-rc128': {'size': MiB, 'refcount-bits': 128},
    'e-rc0': {'size': MiB, 'refcount-bits': 0},
    'e-rcneg': {'size': MiB, 'refcount-bits': -16},
    'e-rc8-v2': {'size': MiB, 'refcount-bits': 8, 'version': 'v2'},
    'e-raw-nodata': {'size': MiB, 'data-file-raw': True},
    'e-raw-backing': {'size': MiB, 'data-file': 'DATA',
                      'data-file-raw': True, 'backing-file': 'BASE'},
    'e-fmt-only': {'size': MiB, 'backing-fmt': 'qcow2'},
    'e-backing-pre': {'size': MiB, 'backing-file': 'BASE',
                      'preallocation': 'metadata'},
    'e-data-v2': {'size': MiB, 'data-file': 'DATA', 'version': 'v2'},
    'e-zstd-v2': {'size': MiB, 'compression-type': 'zstd', 'version': 'v2'},
    'e-nofile': {'size': MiB, 'file': 'no-such-node'},
    'e-nodata': {'size': MiB, 'data-file': 'no-such-node'},
    'e-long-backing': {'size': MiB, 'backing-file': 'x' * 1024},
    'e-inline-missing': {'size': MiB,
                         'file': {'driver': 'file',
                                  'filename': 'DIR/no-such-dir/x.qcow2'}},
}

# layouts that are not QEMU's yet: compared through qemu-img, not bytes
LAYOUT_DIFFERS = set()


def sub(value, old, new):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: sub(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [sub(v, old, new) for v in value]
    return value


def file_create(job, path, size=0):
    return ('blockdev-create', {'job-id': job, 'options': {
        'driver': 'file', 'filename': path, 'size': size}})


def case_sequence(name, opts):
    """The QMP commands of one case (DIR: the session's directory)."""
    opts = dict(opts)
    seq = [file_create('fc-' + name, 'DIR/%s.qcow2' % name)]
    extra_nodes = []
    if not isinstance(opts.get('file'), dict):
        seq.append(('blockdev-add', {'driver': 'file',
                                     'node-name': 'f-' + name,
                                     'filename': 'DIR/%s.qcow2' % name}))
        extra_nodes.append('f-' + name)
    if isinstance(opts.get('data-file'), dict):
        seq.append(file_create('dc-' + name, 'DIR/%s.data' % name))
    if opts.get('data-file') == 'DATA':
        seq += [file_create('dc-' + name, 'DIR/%s.data' % name),
                ('blockdev-add', {'driver': 'file', 'node-name': 'd-' + name,
                                  'filename': 'DIR/%s.data' % name})]
        opts['data-file'] = 'd-' + name
        extra_nodes.append('d-' + name)
    if opts.get('backing-file') == 'BASE':
        opts['backing-file'] = 'DIR/base.qcow2'
    create = {'driver': 'qcow2', 'file': 'f-' + name}
    create.update(opts)
    seq.append(('blockdev-create', {'job-id': 'j-' + name,
                                    'options': create}))
    seq.append(('job-dismiss', {'id': 'j-' + name}))
    seq += [('blockdev-del', {'node-name': n}) for n in extra_nodes]
    return seq


def all_cases():
    return list(GOOD.items()) + list(BAD.items())


class Qcow2Create(h.TestCase):

    def session(self, qsd, cases):
        d = self.make_tmpdir()
        self.run_command(['qemu-img', 'create', '-q', '-f', 'qcow2',
                          os.path.join(d, 'base.qcow2'), '64M'])
        sock = os.path.join(d, 'qmp.sock')
        args = ['--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
                '--monitor', 'chardev=m']
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        replies, events = [], []
        for name, opts in cases:
            for cmd, args in case_sequence(name, opts):
                reply = qmp.execute(cmd, sub(args, 'DIR', d))
                got = qmp.take_events()
                if cmd == 'blockdev-create' and 'return' in reply:
                    while not any(e['event'] == 'JOB_STATUS_CHANGE' and
                                  e['data'] == {'id': args['job-id'],
                                                'status': 'concluded'}
                                  for e in got):
                        got.append(qmp.wait_event('JOB_STATUS_CHANGE'))
                        got += qmp.take_events()
                    # the job's outcome, with its error if any
                    q = qmp.execute('query-jobs')
                    replies.append((name, 'query-jobs',
                                    sub(q, d, 'DIR')))
                for e in got:
                    e.pop('timestamp', None)
                events += [(name, e) for e in got]
                replies.append((name, cmd, sub(reply, d, 'DIR')))
        daemon.stop()
        return replies, events, d

    def info(self, path, d):
        out = self.run_command(['qemu-img', 'info', '--output=json',
                                '-U', path])
        self.assertEqual(out.returncode, 0, out.stderr)
        info = json.loads(out.stdout.replace(d, 'DIR'))
        # where the blocks are on the host file system is not the format
        info.pop('actual-size', None)
        return info

    @staticmethod
    def read(path, length=None):
        """The bytes of @path, with the session directory (which the
        names of the backing and data files hold) as a placeholder of the
        same length, so that both daemons' images compare."""
        with open(path, 'rb') as f:
            data = f.read() if length is None else f.read(length)
        d = os.path.dirname(path).encode()
        return data.replace(d, b'D' * len(d))

    @staticmethod
    def data_ranges(path):
        """The (offset, end) ranges of @path that hold data (holes of a
        sparse file read as zeroes and need no reading)."""
        ranges = []
        with open(path, 'rb') as f:
            fd, end, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
            while pos < end:
                try:
                    start = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    break
                pos = os.lseek(fd, start, os.SEEK_HOLE)
                ranges.append((start, pos))
        return ranges

    def assert_same_bytes(self, mine, ref):
        """The two files hold the same bytes, compared where either holds
        data (metadata preallocation makes gigabytes of holes)."""
        self.assertEqual(os.path.getsize(mine), os.path.getsize(ref))
        dm = os.path.dirname(mine).encode()
        dr = os.path.dirname(ref).encode()
        with open(mine, 'rb') as a, open(ref, 'rb') as b:
            for start, end in self.data_ranges(mine) + self.data_ranges(ref):
                for off in range(start, end, 1 << 20):
                    n = min(1 << 20, end - off)
                    a.seek(off)
                    b.seek(off)
                    x = a.read(n).replace(dm, b'D' * len(dm))
                    y = b.read(n).replace(dr, b'D' * len(dr))
                    if x != y:
                        i = next(i for i in range(n) if x[i] != y[i])
                        self.fail('the files differ at byte %d' % (off + i))

    def test_create_matches_qsd(self):
        cases = all_cases()
        ours, ours_ev, od = self.session(False, cases)
        theirs, theirs_ev, td = self.session(True, cases)
        self.assertEqual(len(ours), len(theirs))
        for a, b in zip(ours, theirs):
            self.assertEqual(a, b)
        self.assertEqual(ours_ev, theirs_ev)

        for name, opts in GOOD.items():
            with self.subTest(case=name):
                mine = os.path.join(od, name + '.qcow2')
                ref = os.path.join(td, name + '.qcow2')
                self.assertEqual(self.info(mine, od), self.info(ref, td))
                cs = opts.get('cluster-size', 65536)
                if name not in LAYOUT_DIFFERS:
                    self.assertEqual(self.read(mine, cs), self.read(ref, cs),
                                     'first cluster')
                self.assertEqual(os.path.getsize(mine), os.path.getsize(ref))
                if name not in LAYOUT_DIFFERS:
                    self.assert_same_bytes(mine, ref)
                if 'data-file' in opts:
                    self.assertEqual(os.path.getsize(mine[:-6] + '.data'),
                                     os.path.getsize(ref[:-6] + '.data'))
                chk = self.run_command(['qemu-img', 'check', mine])
                self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
                self.assertIn('No errors were found', chk.stdout)
                if 'backing-file' not in opts:
                    cmp = self.run_command(['qemu-img', 'compare', mine, ref])
                    self.assertEqual(cmp.returncode, 0,
                                     cmp.stdout + cmp.stderr)

    def in_use_session(self, qsd):
        """blockdev-create on a file another qcow2 node uses: the job
        fails on the permission conflict, with qsd's message."""
        d = self.make_tmpdir()
        img = os.path.join(d, 'used.qcow2')
        self.run_command(['qemu-img', 'create', '-q', '-f', 'qcow2', img,
                          '1M'])
        sock = os.path.join(d, 'qmp.sock')
        args = ['--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
                '--monitor', 'chardev=m',
                '--blockdev', 'file,node-name=f,filename=%s' % img,
                '--blockdev', 'qcow2,node-name=q,file=f']
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        seen = [qmp.execute('blockdev-create', {
            'job-id': 'j', 'options': {'driver': 'qcow2', 'file': 'f',
                                       'size': MiB}})]
        while True:
            ev = qmp.wait_event('JOB_STATUS_CHANGE')
            seen.append(ev['data'])
            if ev['data']['status'] == 'concluded':
                break
        seen.append(qmp.execute('query-jobs'))
        daemon.stop()
        with open(img, 'rb') as f:
            seen.append(f.read())
        return seen

    def test_file_in_use_as_qsd(self):
        ours = self.in_use_session(False)
        theirs = self.in_use_session(True)
        self.assertEqual(ours[:-1], theirs[:-1])
        self.assertIn('error', ours[-2]['return'][0])
        # the image in use is left as it was
        self.assertEqual(ours[-1], theirs[-1])

    def test_encrypt_refused(self):
        """Encryption is refused before anything is written (no luks
        yet), with a message that says so."""
        d = self.tmpdir
        sock = os.path.join(d, 'qmp.sock')
        self.run_command(['qemu-img', 'create', '-q', '-f', 'raw',
                          os.path.join(d, 'e.qcow2'), '0'])
        daemon = self.start_daemon(
            ['--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
             '--monitor', 'chardev=m',
             '--object', 'secret,id=sec0,data=passw0rd',
             '--blockdev', 'file,node-name=f,filename=%s/e.qcow2' % d])
        daemon.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        for fmt in ('luks', 'qcow'):
            job = 'enc-' + fmt
            reply = qmp.execute('blockdev-create', {
                'job-id': job, 'options': {
                    'driver': 'qcow2', 'file': 'f', 'size': MiB,
                    'encrypt': {'format': fmt, 'key-secret': 'sec0'}}})
            self.assertEqual(reply, {'return': {}})
            while True:
                ev = qmp.wait_event('JOB_STATUS_CHANGE')
                if ev['data'] == {'id': job, 'status': 'concluded'}:
                    break
            jobs = qmp.execute('query-jobs')['return']
            err = [j for j in jobs if j['id'] == job][0]['error']
            self.assertEqual(
                err, "qcow2: creating encrypted images (%s) is not "
                "supported yet: encryption comes with the luks work" % fmt)
            qmp.execute('job-dismiss', {'id': job})
        self.assertEqual(os.path.getsize(os.path.join(d, 'e.qcow2')), 0)
        daemon.stop()


if __name__ == '__main__':
    h.main()
