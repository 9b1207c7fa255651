#!/usr/bin/python3
"""A smoke test of the qcow2 driver (plugins/block-qcow2) with QEMU's own
tools as the reference; the thorough matrix is in the other test_qcow2*
files.

- images that qemu-img creates in many shapes (v2 and v3, cluster sizes
  from 512 B to 2 MiB, refcount widths, extended L2, zlib and zstd
  compressed clusters, a backing file with its format) and that qemu-io
  fills read through blockd's NBD export exactly as qemu-img reads them;
- writes through blockd (qemu-io over NBD: partial clusters, clusters
  over a backing file, runs across L2 tables, and enough clusters to
  grow the refcount structures) leave an image that `qemu-img check`
  finds clean and that reads as a raw reference written the same way;
- bad images and options are refused with qemu-storage-daemon's words.
- blockdev-reopen read-only <-> read-write answers as qsd and leaves a
  clean image (metadata written back, the lazy-refcounts dirty bit
  cleared) when the node goes read-only.
"""

import os
import time

import blockd_harness as h

MIB = 1 << 20

# (offset, length, pattern) writes: unaligned heads and tails, a run
# over many clusters, one at the end of the disk
WRITES = [(512, 4096, 0x11), (3 * MIB + 100, 70000, 0x22),
          (10 * MIB, 3 * MIB, 0x33), (31 * MIB, MIB, 0x44),
          (7 * MIB + 12345, 1, 0x55)]
SIZE = 32 * MIB


class Qcow2Basic(h.TestCase):

    def img(self, name):
        return os.path.join(self.tmpdir, name)

    def check_run(self, argv):
        r = self.run_command(argv)
        self.assertEqual(r.returncode, 0, f'{argv}: {r.stdout}{r.stderr}')
        return r

    def create(self, name, opts='', size=SIZE, backing=None):
        argv = ['qemu-img', 'create', '-f', 'qcow2']
        if opts:
            argv += ['-o', opts]
        if backing:
            argv += ['-b', backing, '-F', 'qcow2']
        self.check_run(argv + [self.img(name), str(size)])
        return self.img(name)

    def qemu_io(self, target, cmds, fmt=None):
        argv = ['qemu-io']
        if fmt:
            argv += ['-f', fmt]
        for c in cmds:
            argv += ['-c', c]
        r = self.check_run(argv + [target])
        self.assertNotIn('Pattern verification failed', r.stdout)
        self.assertNotIn('error', r.stdout.lower())
        return r

    def export(self, path, extra=''):
        """blockd exporting the qcow2 image at @path; returns the URI."""
        stamp = time.monotonic_ns()
        sock = self.img(f'nbd-{stamp}.sock')
        d = self.start_daemon([
            '--blockdev',
            '{"driver":"qcow2","node-name":"n","file":{"driver":"file",'
            f'"filename":"{path}"}}{extra}}}',
            '--nbd-server', f'addr.type=unix,addr.path={sock}',
            '--export', 'type=nbd,id=e,node-name=n,name=e,writable=on'])
        d.wait_for_socket(sock)
        return d, f'nbd+unix:///e?socket={sock}'

    def assert_reads_as_qemu(self, path, uri):
        ours, ref = self.img('ours.raw'), self.img('ref.raw')
        self.check_run(['qemu-img', 'convert', '-f', 'raw', '-O', 'raw',
                        uri, ours])
        self.check_run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O',
                        'raw', path, ref])
        self.check_run(['cmp', ours, ref])

    def write_cmds(self):
        return [f'write -P {p:#x} {o} {n}' for o, n, p in WRITES]

    def test_reads_what_qemu_wrote(self):
        shapes = ['compat=0.10', 'compat=1.1', 'cluster_size=512',
                  'cluster_size=2M', 'refcount_bits=1', 'refcount_bits=64',
                  'extended_l2=on,cluster_size=64k',
                  'lazy_refcounts=on', 'compression_type=zstd']
        for shape in shapes:
            with self.subTest(shape=shape):
                path = self.create(f'r-{len(shape)}-{shape[:5]}.qcow2',
                                   shape)
                self.qemu_io(path, self.write_cmds() +
                             ['write -z 12M 64k', 'discard 10M 64k'])
                d, uri = self.export(path)
                self.assert_reads_as_qemu(path, uri)
                d.stop()

    def test_compressed(self):
        for ctype in ('zlib', 'zstd'):
            with self.subTest(compression=ctype):
                src = self.create(f'src-{ctype}.qcow2')
                self.qemu_io(src, self.write_cmds())
                path = self.img(f'c-{ctype}.qcow2')
                self.check_run(['qemu-img', 'convert', '-c', '-O', 'qcow2',
                                '-o', f'compression_type={ctype}', src,
                                path])
                d, uri = self.export(path)
                self.assert_reads_as_qemu(path, uri)
                d.stop()

    def write_and_check(self, path, writes_on_base=()):
        d, uri = self.export(path)
        self.qemu_io(uri, self.write_cmds(), fmt='raw')
        # what was written reads back through blockd
        self.qemu_io(uri, [f'read -P {p:#x} {o} {n}' for o, n, p in WRITES],
                     fmt='raw')
        d.stop()
        r = self.check_run(['qemu-img', 'check', path])
        self.assertIn('No errors were found', r.stdout)
        self.assertNotIn('leaked', r.stdout)
        # the same writes done by qemu-io on a copy made the same way
        ref = self.img('ref.raw')
        with open(ref, 'wb') as f:
            f.truncate(SIZE)
        self.qemu_io(ref, list(writes_on_base) + self.write_cmds(),
                     fmt='raw')
        self.check_run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
                        path, ref])

    def test_writes(self):
        shapes = ['compat=0.10', 'compat=1.1', 'cluster_size=512',
                  'cluster_size=2M', 'refcount_bits=1', 'refcount_bits=64',
                  'extended_l2=on', 'lazy_refcounts=on']
        for shape in shapes:
            with self.subTest(shape=shape):
                path = self.create(f'w-{shape.replace("=", "-")}.qcow2',
                                   shape)
                self.write_and_check(path)

    def test_writes_over_backing(self):
        for shape in ('compat=1.1', 'extended_l2=on', 'cluster_size=4k'):
            with self.subTest(shape=shape):
                tag = shape.replace('=', '-')
                base = self.create(f'base-{tag}.qcow2')
                base_writes = ['write -P 0x77 0 32M']
                self.qemu_io(base, base_writes)
                top = self.create(f'top-{tag}.qcow2', shape,
                                  backing=base)
                self.write_and_check(top, base_writes)

    def test_zeroes_and_discard(self):
        # write-zeroes with and without unmap, discards of whole clusters,
        # on images with and without backing file and subclusters
        ops = ['write -z 1M 1M', 'write -z -u 11M 1M', 'discard 30M 2M',
               'write -z 3M 8k', 'write -z 31M 64k']
        for shape in ('compat=1.1', 'extended_l2=on', 'compat=0.10'):
            with self.subTest(shape=shape):
                tag = shape.replace('=', '-')
                base = self.create(f'zbase-{tag}.qcow2')
                base_writes = ['write -P 0x77 0 32M']
                self.qemu_io(base, base_writes)
                top = self.create(f'ztop-{tag}.qcow2', shape, backing=base)
                d, uri = self.export(top, ',"discard":"unmap"')
                self.qemu_io(uri, self.write_cmds() + ops, fmt='raw')
                d.stop()
                r = self.check_run(['qemu-img', 'check', top])
                self.assertIn('No errors were found', r.stdout)
                self.assertNotIn('leaked', r.stdout)
                # qemu-io on a copy of the same images does the same
                base2 = self.create(f'zbase2-{tag}.qcow2')
                self.qemu_io(base2, base_writes)
                top2 = self.create(f'ztop2-{tag}.qcow2', shape,
                                   backing=base2)
                self.qemu_io(top2, self.write_cmds() + ops)
                self.check_run(['qemu-img', 'compare', '-f', 'qcow2', '-F',
                                'qcow2', top, top2])
                # and the same clusters are allocated in this layer
                maps = []
                for img in (top, top2):
                    r = self.check_run(['qemu-img', 'map', '--output=json',
                                        img])
                    maps.append([(e['start'], e['length'], e['depth'],
                                  e['zero'], e['data'])
                                 for e in __import__('json').loads(r.stdout)])
                self.assertEqual(maps[0], maps[1])

    def test_resize(self):
        path = self.create('resize.qcow2', size=SIZE)
        stamp = time.monotonic_ns()
        qmp_sock = self.img(f'qmp-{stamp}.sock')
        d = self.start_daemon([
            '--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
            '--monitor', 'chardev=m',
            '--blockdev',
            '{"driver":"qcow2","node-name":"n","file":{"driver":"file",'
            f'"filename":"{path}"}}}}'])
        d.wait_for_socket_file(qmp_sock)
        q = self.qmp(qmp_sock)
        # grow well past what the L1 table covers, then shrink
        q.command('block_resize', {'node-name': 'n', 'size': 4 << 40})
        q.command('block_resize', {'node-name': 'n', 'size': 16 * MIB})
        with self.assertRaises(h.QmpError) as e:
            q.command('block_resize', {'node-name': 'n', 'size': 1000})
        self.assertEqual(e.exception.desc,
                         'The new size must be a multiple of 512')
        d.stop()
        r = self.check_run(['qemu-img', 'info', '--output=json', path])
        self.assertEqual(__import__('json').loads(r.stdout)['virtual-size'],
                         16 * MIB)
        r = self.check_run(['qemu-img', 'check', path])
        self.assertIn('No errors were found', r.stdout)

    def test_map_as_qsd(self):
        """nbdinfo --map (base:allocation through the backing chain) and
        qemu:allocation-depth of a qcow2 node over a qcow2 backing file
        are what qemu-storage-daemon answers."""
        base = self.create('mbase.qcow2', size=64 * MIB)
        self.qemu_io(base, ['write -P 1 0 2M', 'write -z 4M 1M'])
        top = self.create('mtop.qcow2', backing=base)
        self.qemu_io(top, ['write -P 2 1M 2M', 'write -z 8M 64k',
                           'write -P 3 20M 64k'])
        answers = []
        for qsd in (True, False):
            sock = self.img(f'map-{qsd}.sock')
            args = ['--blockdev',
                    '{"driver":"qcow2","node-name":"n","read-only":true,'
                    f'"file":{{"driver":"file","filename":"{top}"}}}}',
                    '--nbd-server', f'addr.type=unix,addr.path={sock}',
                    '--export', 'type=nbd,id=e,node-name=n,name=e,'
                    'allocation-depth=on']
            d = self.start_qsd(args) if qsd else self.start_daemon(args)
            d.wait_for_socket(sock)
            uri = f'nbd+unix:///e?socket={sock}'
            answers.append([
                self.check_run(['nbdinfo', f'--map={ctx}', uri]).stdout
                for ctx in ('base:allocation', 'qemu:allocation-depth')])
            d.stop()
        self.assertEqual(answers[1], answers[0])

    def query_nodes(self, path, qsd, flat):
        stamp = time.monotonic_ns()
        sock = self.img(f'q-{stamp}.sock')
        args = ['--chardev', f'socket,id=m,path={sock},server=on,wait=off',
                '--monitor', 'chardev=m', '--blockdev',
                '{"driver":"qcow2","node-name":"n","read-only":true,'
                f'"file":{{"driver":"file","filename":"{path}"}}}}']
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(sock)
        nodes = self.qmp(sock).command('query-named-block-nodes',
                                       {'flat': flat})
        d.stop()
        # generated node names differ; the qcow2 nodes are compared
        return sorted([dict(n, **{'node-name': None}) for n in nodes
                       if n['drv'] == 'qcow2'], key=lambda n: n['file'])

    def test_query_as_qsd(self):
        """query-named-block-nodes shows a qcow2 node (image information,
        format-specific part, backing chain) as qemu-storage-daemon."""
        base = self.create('qbase.qcow2', 'compat=0.10')
        shapes = [('qv3', 'compat=1.1', base),
                  ('qext', 'extended_l2=on,compression_type=zstd,'
                   'lazy_refcounts=on', None),
                  ('qdf', f'data_file={self.img("qdf.raw")},'
                   'data_file_raw=on', None)]
        for name, opts, backing in shapes:
            path = self.create(f'{name}.qcow2', opts, backing=backing)
            for flat in (True, False):
                with self.subTest(image=name, flat=flat):
                    self.assertEqual(self.query_nodes(path, False, flat),
                                     self.query_nodes(path, True, flat))

    def test_bitmap_granularity_as_qsd(self):
        """A dirty bitmap added without a granularity takes the cluster
        size, clamped to 4 KiB..64 KiB, as in qsd."""
        for cs in ('512', '64k', '2M'):
            path = self.create(f'g-{cs}.qcow2', f'cluster_size={cs}')
            got = []
            for qsd in (True, False):
                sock = self.img(f'g-{cs}-{qsd}.sock')
                args = ['--chardev',
                        f'socket,id=m,path={sock},server=on,wait=off',
                        '--monitor', 'chardev=m', '--blockdev',
                        '{"driver":"qcow2","node-name":"n",'
                        f'"file":{{"driver":"file","filename":"{path}"}}}}']
                d = self.start_qsd(args) if qsd else self.start_daemon(args)
                d.wait_for_socket_file(sock)
                q = self.qmp(sock)
                q.command('block-dirty-bitmap-add', {'node': 'n',
                                                     'name': 'b'})
                nodes = q.command('query-named-block-nodes')
                got.append([n.get('dirty-bitmaps') for n in nodes
                            if n['node-name'] == 'n'])
                d.stop()
            with self.subTest(cluster_size=cs):
                self.assertEqual(got[1], got[0])

    def test_dirty_image_repaired(self):
        """A dirty lazy-refcounts image with stale refcounts (some too
        low, one too high) is repaired by a writable open: clean for
        qemu-img check, the dirty bit gone, the data as qemu-img's own
        repair leaves it."""
        import struct
        path = self.create('dirty.qcow2', 'lazy_refcounts=on')
        self.qemu_io(path, ['write -P 1 0 5M', 'write -P 2 20M 64k'])
        with open(path, 'r+b') as f:
            f.seek(48)
            rt = struct.unpack('>Q', f.read(8))[0]
            f.seek(rt)
            rb = struct.unpack('>Q', f.read(8))[0]
            f.seek(rb + 2 * 5)
            f.write(bytes(2 * 60))
            f.seek(rb + 2 * 2)
            f.write(struct.pack('>H', 7))
            f.seek(72)
            f.write(struct.pack('>Q', 1))
        ref = self.img('dirty-ref.qcow2')
        __import__('shutil').copy(path, ref)
        self.check_run(['qemu-img', 'check', '-r', 'all', ref])
        d, uri = self.export(path)
        self.qemu_io(uri, ['read -P 1 0 5M', 'read -P 2 20M 64k'],
                     fmt='raw')
        d.stop()
        r = self.check_run(['qemu-img', 'check', path])
        self.assertIn('No errors were found', r.stdout)
        self.assertNotIn('leaked', r.stdout)
        with open(path, 'rb') as f:
            f.seek(72)
            self.assertEqual(struct.unpack('>Q', f.read(8))[0], 0)
        self.check_run(['qemu-img', 'compare', path, ref])

    def reopen_run(self, path, qsd):
        """blockdev-reopen of a lazy-refcounts image: read-only to
        read-write, a write through NBD, back to read-only.  Returns the
        replies and the dirty bit seen at each step."""
        import struct

        def dirty():
            with open(path, 'rb') as f:
                f.seek(72)
                return struct.unpack('>Q', f.read(8))[0] & 1

        stamp = time.monotonic_ns()
        qmp_sock = self.img(f'qmp-{stamp}.sock')
        nbd_sock = self.img(f'nbd-{stamp}.sock')
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f,filename={path}',
                '--blockdev', 'driver=qcow2,node-name=n,file=f,'
                'read-only=on',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}']
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        q = self.qmp(qmp_sock)
        seen = []

        def reopen(ro):
            try:
                seen.append(q.command('blockdev-reopen', {'options': [
                    {'driver': 'qcow2', 'node-name': 'n', 'file': 'f',
                     'read-only': ro}]}))
            except h.QmpError as e:
                seen.append(e.desc)

        export = {'type': 'nbd', 'id': 'e', 'node-name': 'n',
                  'writable': True}
        try:
            q.command('block-export-add', export)
        except h.QmpError as e:
            seen.append(e.desc)
        reopen(False)
        q.command('block-export-add', export)
        self.qemu_io(f'nbd+unix:///n?socket={nbd_sock}',
                     ['write -P 0x77 1M 192k', 'write -P 0x78 9M 4k'],
                     fmt='raw')
        seen.append(('dirty while writable', dirty()))
        # read-only under a writer is refused
        reopen(True)
        q.command('block-export-del', {'id': 'e'})
        q.wait_event('BLOCK_EXPORT_DELETED')
        reopen(True)
        seen.append(('dirty after read-only', dirty()))
        r = self.check_run(['qemu-img', 'check', '-U', path])
        seen.append(r.stdout)
        d.stop()
        self.qemu_io(path, ['read -P 0x77 1M 192k', 'read -P 0x78 9M 4k',
                            'read -P 0 2M 7M'])
        return seen

    def test_reopen_as_qsd(self):
        """blockdev-reopen read-only <-> read-write of a qcow2 node: the
        same replies as qsd, the metadata written back and the dirty bit
        of lazy refcounts cleared when it goes read-only, the image clean
        for qemu-img check while the daemon still runs."""
        got = []
        for qsd in (True, False):
            path = self.create(f'reopen-{qsd}.qcow2', 'lazy_refcounts=on')
            got.append(self.reopen_run(path, qsd))
        self.assertEqual(got[1], got[0])
        self.assertIn(('dirty while writable', 1), got[1])
        self.assertIn(('dirty after read-only', 0), got[1])
        self.assertIn('No errors were found', got[1][-1])

    def test_refcount_growth(self):
        # 512-byte clusters: the first refcount table covers 8 MiB only
        path = self.create('grow.qcow2', 'cluster_size=512', size=64 * MIB)
        d, uri = self.export(path)
        self.qemu_io(uri, ['write -P 0x66 0 40M'], fmt='raw')
        d.stop()
        r = self.check_run(['qemu-img', 'check', path])
        self.assertIn('No errors were found', r.stdout)
        self.qemu_io(path, ['read -P 0x66 0 40M', 'read -P 0 40M 24M'])

    def test_bad_images_refused_as_qsd(self):
        path = self.create('bad.qcow2')
        with open(path, 'r+b') as f:
            f.seek(20)
            f.write((30).to_bytes(4, 'big'))   # cluster_bits 30
        r = self.run_blockd([
            '--blockdev', f'driver=qcow2,node-name=n,file.driver=file,'
            f'file.filename={path}'])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Unsupported cluster size: 2^30', r.stderr)

    def test_bad_headers_as_qsd(self):
        """Each bad header gives qemu-storage-daemon's message."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        # (name, offset, struct format, value)
        patches = [
            ('magic', 0, '>I', 0x12345678), ('version', 4, '>I', 4),
            ('cbits', 20, '>I', 22), ('hdrlen', 100, '>I', 100),
            ('backoff', 8, '>Q', 70000), ('incompat', 72, '>Q', 1 << 5),
            ('corrupt', 72, '>Q', 2), ('rorder', 96, '>I', 7),
            ('ctype', 104, '>B', 2), ('zlibbit', 72, '>Q', 8),
            ('crypt', 32, '>I', 3), ('rt0', 56, '>I', 0),
            ('rtbig', 56, '>I', 1 << 20), ('rtoff', 48, '>Q', 65536 + 512),
            ('l1small', 36, '>I', 0), ('l1big', 36, '>I', 1 << 30),
            ('l1off', 40, '>Q', 3 * 65536 + 8), ('snapoff', 64, '>Q', 12345),
            ('datafile', 72, '>Q', 4), ('size', 24, '>Q', 1 << 62),
        ]
        for name, off, fmt, val in patches:
            with self.subTest(image=name):
                msgs = []
                for binary in (qsd, h.BLOCKD):
                    path = self.create(f'{name}-{len(msgs)}.qcow2')
                    with open(path, 'r+b') as f:
                        f.seek(off)
                        f.write(__import__('struct').pack(fmt, val))
                    r = self.run_command([
                        binary, '--blockdev',
                        f'driver=qcow2,node-name=n,file.driver=file,'
                        f'file.filename={path}'], timeout=10)
                    self.assertNotEqual(r.returncode, 0)
                    msgs.append(r.stderr.split(f'{path}: ', 1)[-1])
                self.assertEqual(msgs[1], msgs[0])

    def test_encrypt_refused(self):
        path = self.img('enc.qcow2')
        argv = ['qemu-img', 'create', '--object', 'secret,id=s0,data=secret',
                '-f', 'qcow2', '-o',
                'encrypt.format=luks,encrypt.key-secret=s0', path, '16M']
        # qemu-img times its PBKDF on the CPU clock and gives up on a
        # machine too busy to measure it: that is the tool, not blockd
        for _ in range(10):
            r = self.run_command(argv)
            if 'Unable to get accurate CPU usage' not in r.stderr:
                break
        self.assertEqual(r.returncode, 0, f'{argv}: {r.stdout}{r.stderr}')
        blockdev = ('driver=qcow2,node-name=n,file.driver=file,'
                    f'file.filename={path}')
        r = self.run_blockd(['--object', 'secret,id=s0,data=secret',
                             '--blockdev', blockdev + ',encrypt.format=luks,'
                             'encrypt.key-secret=s0'])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('encryption comes with the luks work', r.stderr)
        # without options, qsd's first complaint: the missing key
        r = self.run_blockd(['--blockdev', blockdev])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Parameter 'encrypt.key-secret' is required for "
                      "cipher", r.stderr)
        # options for an image without encryption, as qsd
        plain = self.create('plain.qcow2')
        r = self.run_blockd(['--blockdev', 'driver=qcow2,node-name=n,'
                             f'file.driver=file,file.filename={plain},'
                             'encrypt.format=luks'])
        self.assertIn("No encryption in image header, but options specified "
                      "format 'luks'", r.stderr)


if __name__ == '__main__':
    h.main()
