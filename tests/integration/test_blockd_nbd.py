"""tools/blockd-nbd, qemu-nbd 7.2's command line over blockd: each option
set is run with qemu-nbd and with blockd-nbd on copies of the same image,
and what clients see is compared (nbdinfo --json and --map, qemu-img
compare of the images after writes through NBD); bad input must give
qemu-nbd's message and exit status; --fork/--pid-file/-t must behave as
qemu-nbd's; what is not built yet must be refused, never ignored.
"""
import json
import os
import shutil
import time

import blockd_harness as h
from test_nbd_tls import TlsMaterial

TOOL = os.environ.get('BLOCKD_NBD') or os.path.join(
    os.environ['BLOCKD_SOURCE_ROOT'], 'tools', 'blockd-nbd')
QEMU_NBD = shutil.which('qemu-nbd')
MiB = 1 << 20


class BlockdNbdTest(h.TestCase):

    def setUp(self):
        super().setUp()
        if QEMU_NBD is None:
            self.skipTest('qemu-nbd is not installed')
        for prog in ('nbdinfo', 'qemu-img', 'qemu-io'):
            if shutil.which(prog) is None:
                self.skipTest(f'{prog} is not installed')
        self.env = h.child_env(BLOCKD_NBD_DAEMON=h.BLOCKD)
        self.served = []    # the servers both() started

    # -- helpers ---------------------------------------------------------

    def run_ok(self, argv):
        res = self.run_command(argv, env=self.env)
        self.assertEqual(res.returncode, 0, f'{argv}: {res.stderr}')
        return res.stdout

    def make_qcow2(self, name, bitmap=None):
        path = os.path.join(self.tmpdir, name)
        self.run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', path,
                     str(4 * MiB)])
        self.run_ok(['qemu-io', '-f', 'qcow2', '-c', 'write -P 1 0 64k',
                     '-c', 'write -z 1M 64k', path])
        if bitmap:
            self.run_ok(['qemu-img', 'bitmap', '--add', path, bitmap])
            self.run_ok(['qemu-io', '-f', 'qcow2', '-c',
                         'write -P 2 2M 128k', path])
        return path

    def make_raw(self, name):
        path = os.path.join(self.tmpdir, name)
        with open(path, 'wb') as f:
            f.truncate(4 * MiB)
            f.seek(512 * 1024)
            f.write(b'\x05' * 65536)
        return path

    def copies(self, path, tag=''):
        """Two copies of an image: one for qemu-nbd, one for blockd-nbd."""
        base, ext = os.path.splitext(path)
        out = []
        for who in ('qemu', 'blockd'):
            dst = f'{base}-{who}{tag}{ext}'
            shutil.copyfile(path, dst)
            out.append(dst)
        return out

    def serve(self, who, args):
        """Start qemu-nbd or blockd-nbd with `args` in the foreground; it
        is stopped by pid after the test."""
        binary = QEMU_NBD if who == 'qemu' else TOOL
        return self.start_daemon(args, binary=binary, env=self.env)

    def sock(self, who):
        return os.path.join(self.tmpdir, f'{who}.sock')

    def nbdinfo(self, uri, *extra):
        return self.run_ok(['nbdinfo'] + list(extra) + [uri])

    def info_json(self, uri):
        info = json.loads(self.nbdinfo(uri, '--json'))
        for export in info['exports']:
            export.pop('uri')
        return info

    def both(self, image_for, args_for, name='', tag=''):
        """Serve with both tools on private UNIX sockets; returns the two
        nbd URIs (qemu's, blockd's)."""
        uris = []
        for who in ('qemu', 'blockd'):
            sock = self.sock(who + tag)
            d = self.serve(who, ['-t', '-k', sock] +
                           args_for(who) + [image_for(who)])
            d.wait_for_socket_file(sock)
            self.served.append(d)
            uris.append(f'nbd+unix:///{name}?socket={sock}')
        return uris

    def compare_views(self, uris, maps=('base:allocation',), skip=()):
        views = [self.info_json(uri) for uri in uris]
        for view in views:
            for export in view['exports']:
                for key in skip:
                    export.pop(key)
        self.assertEqual(views[1], views[0])
        for ctx in maps:
            self.assertEqual(self.nbdinfo(uris[1], f'--map={ctx}'),
                             self.nbdinfo(uris[0], f'--map={ctx}'), ctx)

    # -- what clients see ------------------------------------------------

    def test_read_only_qcow2_name_description_allocation_depth(self):
        img = self.make_qcow2('a.qcow2')
        uris = self.both(lambda who: img,
                         lambda who: ['-r', '-f', 'qcow2', '-x', 'disk0',
                                      '-D', 'a disk', '-A'], name='disk0')
        self.compare_views(uris, maps=('base:allocation',
                                       'qemu:allocation-depth'))

    def test_probed_qcow2_and_probed_read_only_raw(self):
        img = self.make_qcow2('a.qcow2')
        uris = self.both(lambda who: img, lambda who: ['-r'])
        self.compare_views(uris)
        raw = self.make_raw('r.img')
        uris = self.both(lambda who: raw, lambda who: ['-r'], tag='-raw')
        # The one known difference (blockd-nbd(8), LIMITS): QEMU limits a
        # probed raw image to 512-byte requests, blockd's raw driver does
        # not, so the minimum block size differs; the rest must not.
        self.compare_views(uris, skip=('block_size_minimum',))
        self.assertEqual(self.info_json(uris[0])['exports'][0]
                         ['block_size_minimum'], 512)

    def test_writable_probed_raw_is_refused_after_qemu_nbds_warning(self):
        # qemu-nbd guards sector 0 of a writable probed raw image;
        # blockd-nbd has no such guard: it prints qemu-nbd's warning,
        # then refuses rather than serve the image unguarded.
        raw = self.make_raw('r.img')
        res = self.run_command([TOOL, '-t', '-k', self.sock('b'), raw],
                               env=self.env)
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"WARNING: Image format was not specified for '{raw}'"
                      " and probing guessed raw.\n", res.stderr)
        self.assertIn('blockd-nbd: a probed raw image is served read-only',
                      res.stderr)
        self.assertFalse(os.path.exists(self.sock('b')))

    def test_virtnbdbackup_command_line(self):
        img = self.make_qcow2('v.qcow2', bitmap='b0')
        uris = []
        for who in ('qemu', 'blockd'):
            pid = os.path.join(self.tmpdir, f'{who}.pid')
            binary = QEMU_NBD if who == 'qemu' else TOOL
            res = self.run_command(
                [binary, '-r', '--format', 'qcow2', '-x', 'sda', '-k',
                 self.sock(who), '-t', '-e', '2', '--fork',
                 '--detect-zeroes=on', '--pid-file', pid, '--bitmap=b0',
                 img], env=self.env)
            self.assertEqual(res.returncode, 0, res.stderr)
            # --fork returns once the server is ready, with its pid file.
            with open(pid) as f:
                self.addCleanup(h.stop_pid, int(f.read().strip()))
            uris.append(f'nbd+unix:///sda?socket={self.sock(who)}')
        self.compare_views(uris, maps=('base:allocation',
                                       'qemu:dirty-bitmap:b0'))
        # -e 2: two clients at once on both.
        for uri in uris:
            res = self.run_command(['nbdcopy', '--connections=2', uri,
                                    'null:'], env=self.env)
            self.assertEqual(res.returncode, 0, res.stderr)

    def test_ovirt_command_line_writes_alike(self):
        raw = self.make_raw('o.img')
        images = self.copies(raw)

        def image_for(who):
            path = images[0 if who == 'qemu' else 1]
            return ('json:' + json.dumps(
                {'driver': 'raw', 'file': {'driver': 'file',
                                           'filename': path}}))
        uris = self.both(image_for, lambda who: [
            '--export-name', 'ov', '--persistent', '--shared=8',
            '--cache=none', '--aio=native', '--discard=unmap',
            '--detect-zeroes=unmap', '--allocation-depth'], name='ov')
        self.compare_views(uris)
        for uri in uris:
            self.run_ok(['qemu-io', '-f', 'raw', '-c', 'write -P 9 0 64k',
                         '-c', 'write -z 512k 64k', '-c',
                         'discard 1M 1M', uri])
        self.compare_views(uris)
        self.assertEqual(self.run_command(
            ['qemu-img', 'compare', '-U', '-f', 'raw', '-F', 'raw', images[0],
             images[1]]).returncode, 0)

    def test_writable_qcow2_cache_modes_and_image_opts(self):
        img = self.make_qcow2('w.qcow2')
        for n, opts in enumerate((['-f', 'qcow2', '-n'],
                     ['-f', 'qcow2', '--cache=writethrough',
                      '--discard=unmap'],
                     ['--image-opts', '--cache=unsafe'],
                     # aio=native needs cache.direct: both reach file.*
                     ['--image-opts', '-n', '--aio=native'])):
            images = self.copies(img, tag=str(n))

            def image_for(who):
                path = images[0 if who == 'qemu' else 1]
                if '--image-opts' in opts:
                    return f'driver=qcow2,file.driver=file,file.filename={path}'
                return path
            uris = self.both(image_for, lambda who: opts, tag=str(n))
            self.compare_views(uris)
            for uri in uris:
                self.run_ok(['qemu-io', '-f', 'raw', '-c',
                             'write -P 7 3M 64k', '-c', 'flush', uri])
            self.compare_views(uris)
            # On disk once both have closed the image (with cache=unsafe
            # nothing is flushed before).
            for d in self.served[-2:]:
                self.assertEqual(d.stop(), 0, d.stderr())
            self.assertEqual(self.run_command(
                ['qemu-img', 'compare', images[0], images[1]]).returncode,
                0, opts)

    def test_offset_tcp_port_and_bind(self):
        raw = self.make_raw('t.img')
        uris = []
        for who in ('qemu', 'blockd'):
            port = str(h.free_port())
            d = self.serve(who, ['-t', '-r', '-f', 'raw', '-o', '262144',
                                 '-b', '127.0.0.1', '-p', port, raw])
            d.wait_until(lambda: self.run_command(
                ['nbdinfo', '--size', f'nbd://127.0.0.1:{port}']).returncode
                == 0, 'the TCP port to accept')
            uris.append(f'nbd://127.0.0.1:{port}')
        self.compare_views(uris)
        self.assertEqual(self.nbdinfo(uris[1], '--size').strip(),
                         str(4 * MiB - 256 * 1024))

    def test_offset_on_qcow2_and_json(self):
        img = self.make_qcow2('o.qcow2')
        uris = self.both(lambda who: img,
                         lambda who: ['-r', '-f', 'qcow2', '-o', '65536'])
        self.compare_views(uris)
        spec = 'json:' + json.dumps({'driver': 'qcow2', 'file': {
            'driver': 'file', 'filename': img}})
        uris = self.both(lambda who: spec,
                         lambda who: ['-r', '-o', '1048576'], tag='-json')
        self.compare_views(uris)
        self.assertEqual(self.nbdinfo(uris[1], '--size').strip(),
                         str(3 * MiB))

    # -- lifecycles ------------------------------------------------------

    def test_without_t_ends_when_the_last_client_leaves(self):
        img = self.make_qcow2('e.qcow2')
        for who in ('qemu', 'blockd'):
            sock = self.sock(who + '-e')
            d = self.serve(who, ['-r', '-e', '2', '-k', sock, img])
            d.wait_for_socket_file(sock)
            # A client that fails to negotiate does not end the server ...
            res = self.run_command(['nbdinfo', '--size',
                                    f'nbd+unix:///nope?socket={sock}'])
            self.assertNotEqual(res.returncode, 0)
            self.assertTrue(d.running(), who)
            # ... one that negotiated does, once no other is connected.
            self.nbdinfo(f'nbd+unix:///?socket={sock}', '--size')
            self.assertEqual(d.wait(), 0, who)

    def test_fork_without_t(self):
        img = self.make_qcow2('g.qcow2')
        pid_path = os.path.join(self.tmpdir, 'g.pid')
        res = self.run_command([TOOL, '--fork', '--pid-file', pid_path,
                                '-k', self.sock('g'), img], env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(pid_path) as f:
            pid = int(f.read().strip())
        self.addCleanup(h.stop_pid, pid)
        self.nbdinfo(f'nbd+unix:///?socket={self.sock("g")}', '--size')
        # The server ends on its own after its client.
        deadline = time.monotonic() + h.STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    def test_fork_pid_file_and_sigterm(self):
        img = self.make_qcow2('f.qcow2')
        pid_path = os.path.join(self.tmpdir, 'f.pid')
        res = self.run_command([TOOL, '-t', '--fork', '--pid-file',
                                pid_path, '-k', self.sock('f'), img],
                               env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(pid_path) as f:
            pid = int(f.read().strip())
        self.addCleanup(h.stop_pid, pid)
        # Ready when --fork returns: no waiting before the first client.
        self.nbdinfo(f'nbd+unix:///?socket={self.sock("f")}', '--size')
        # -t: still serving after a client has come and gone.
        self.nbdinfo(f'nbd+unix:///?socket={self.sock("f")}', '--size')
        h.stop_pid(pid)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    # -- messages and exit codes -----------------------------------------

    def test_bad_input_like_qemu_nbd(self):
        img = self.make_qcow2('b.qcow2')
        missing = os.path.join(self.tmpdir, 'missing.img')
        cases = [
            [], [img, img], ['--bogus', img], ['-Z', img], ['--pid-file'],
            ['-k'], ['-o', 'x', img], ['--discard=x', img],
            ['--detect-zeroes=x', img], ['--aio=x', img],
            ['--image-opts', '-f', 'raw', img], ['-k', 'rel', img],
            ['--cache=none', '-n', img], ['-n', '-n', img],
            ['--cache=foo', img], ['-e', 'x', img], ['-e', '-1', img],
            ['--detect-zeroes=unmap', img],
            ['-t', '-k', self.sock('x'), '-f', 'raw', missing],
            ['-t', '-r', '-k', self.sock('x'), missing],
            ['-t', '-k', self.sock('x'), self.tmpdir],
        ]
        for args in cases:
            want = self.run_command([QEMU_NBD] + args)
            got = self.run_command([TOOL] + args, env=self.env)
            self.assertEqual(
                (got.returncode, got.stderr.replace(TOOL, 'PROG')
                 .replace('blockd-nbd', 'PROG')),
                (want.returncode, want.stderr.replace(QEMU_NBD, 'PROG')
                 .replace('qemu-nbd', 'PROG')),
                args)
            self.assertEqual(got.returncode, 1, args)

    def test_not_built_yet_is_refused(self):
        img = self.make_qcow2('n.qcow2')
        for args, what in ((['-t', '-c', '/dev/nbd0', img], '-c'),
                           (['-t', '-d', img], '-d'),
                           (['-L', '-T', 'nbd_*'], '-T/--trace in list mode'),
                           (['-t', '-k', self.sock('n'), '-l', 's1', img],
                            '-l')):
            res = self.run_command([TOOL] + args, env=self.env)
            self.assertEqual(res.returncode, 1, args)
            self.assertIn(what, res.stderr)
            self.assertIn('not supported by blockd-nbd yet', res.stderr)
            self.assertFalse(os.path.exists(self.sock('n')))

    def test_list_prints_what_qemu_nbd_prints(self):
        # -L of each tool against a server of each tool, over UNIX and TCP.
        img = self.make_qcow2('l.qcow2', bitmap='b0')
        opts = ['-r', '-e', '3', '-x', 'foo', '-D', 'my disk', '-A', '-B',
                'b0']
        self.both(lambda who: img, lambda who: opts, name='foo')
        port = str(h.free_port())
        d = self.serve('blockd', ['-t', '-r', '-b', '127.0.0.1', '-p', port,
                                  '-f', 'qcow2', img])
        d.wait_until(lambda: self.run_command(
            ['nbdinfo', '--size', f'nbd://127.0.0.1:{port}']).returncode
            == 0, 'the TCP port to accept')
        for where in ([['-k', self.sock(who)] for who in ('qemu', 'blockd')]
                      + [['-b', '127.0.0.1', '-p', port]]):
            want = self.run_ok([QEMU_NBD, '-L'] + where)
            got = self.run_ok([TOOL, '-L'] + where)
            self.assertEqual(got, want, where)
            self.assertTrue(want.startswith('exports available: 1\n'))
            self.assertIn('qemu:dirty-bitmap:b0' if '-k' in where
                          else 'base:allocation', got)

    def test_list_mode_bad_input_like_qemu_nbd(self):
        missing = os.path.join(self.tmpdir, 'missing.sock')
        for args in (['-L', 'file'], ['-L', '-x', 'a'], ['-L', '-f', 'raw'],
                     ['-L', '-A'], ['-L', '-o', '1'], ['-L', '-n'],
                     ['-L', '-B', 'b'], ['-L', '--fork'], ['-L', '-k', 'rel'],
                     ['-L', '-k', missing],
                     ['-L', '-b', '127.0.0.1', '-p', str(h.free_port())]):
            want = self.run_command([QEMU_NBD] + args)
            got = self.run_command([TOOL] + args, env=self.env)
            self.assertEqual(
                (got.returncode, got.stderr.replace('blockd-nbd', 'PROG')),
                (want.returncode, want.stderr.replace('qemu-nbd', 'PROG')),
                args)
            self.assertEqual(got.returncode, 1, args)

    def test_snapshot_writes_go_to_a_temporary_overlay(self):
        for fmt, img in (('qcow2', self.make_qcow2('s.qcow2')),
                         ('raw', self.make_raw('s.img'))):
            pristine = img + '.orig'
            shutil.copyfile(img, pristine)
            uris = self.both(lambda who: img,
                             lambda who: ['-s', '-f', fmt], tag='-s' + fmt)
            self.compare_views(uris)
            for uri in uris:
                self.run_ok(['qemu-io', '-f', 'raw', '-c',
                             'write -P 7 1M 64k', '-c', 'write -z 2M 64k',
                             '-c', 'read -P 7 1M 64k', uri])
            self.compare_views(uris)
            # The image itself is untouched.
            self.assertEqual(self.run_command(
                ['qemu-img', 'compare', '-U', '-f', fmt, '-F', fmt, img,
                 pristine]).returncode, 0, fmt)

    def test_tls_creds(self):
        for tool in ('certtool', 'psktool'):
            if shutil.which(tool) is None:
                self.skipTest(f'{tool} is not installed')
        tls = TlsMaterial()
        self.addCleanup(tls.remove)
        img = self.make_qcow2('t.qcow2')
        uris = self.both(lambda who: img, lambda who: [
            '-r', '-x', 'disk', '--object',
            f'tls-creds-x509,id=tls0,dir={tls.server},endpoint=server',
            '--tls-creds', 'tls0'], tag='-tls')
        views = []
        for uri in uris:
            sock = uri.split('socket=')[1]
            # Without TLS the export is not served ...
            res = self.run_command(['nbdinfo', '--size',
                                    f'nbd+unix:///disk?socket={sock}'])
            self.assertNotEqual(res.returncode, 0, res.stdout)
            # ... with the client's certificates it is.
            tls_uri = (f'nbds+unix:///disk?socket={sock}'
                       f'&tls-certificates={tls.client}')
            views.append((self.info_json(tls_uri),
                          self.nbdinfo(tls_uri, '--map')))
        self.assertEqual(views[1], views[0])
        self.assertTrue(views[0][0]['TLS'])

    def test_help_and_version(self):
        res = self.run_command([TOOL, '--help'], env=self.env)
        self.assertEqual(res.returncode, 0)
        self.assertIn('--persistent', res.stdout)
        res = self.run_command([TOOL, '-V'], env=self.env)
        self.assertEqual(res.returncode, 0)
        self.assertTrue(res.stdout.startswith('blockd-nbd '), res.stdout)


if __name__ == '__main__':
    h.main()
