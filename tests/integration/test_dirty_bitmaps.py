#!/usr/bin/python3
"""Dirty bitmaps (core/dirty-bitmap*.c) and the NBD qemu:dirty-bitmap:NAME
contexts (plugins/export-nbd), side by side with qemu-storage-daemon 7.2
on copies of the same image:

- every block-dirty-bitmap-* command, x-debug-block-dirty-bitmap-sha256
  and the dirty-bitmaps of query-named-block-nodes answer the same,
  errors included;
- after the same qemu-io writes, zero-writes and discards through an NBD
  export (and a resize), the bitmaps hash the same;
- nbdinfo --map=qemu:dirty-bitmap:NAME and nbdinfo --list print the
  same; LIST_META_CONTEXT with "qemu:"-prefixed queries lists the same
  contexts, and BLOCK_STATUS with several contexts answers each alike;
- the export's checks (unknown bitmap, busy bitmap, enabled bitmap on a
  read-only export) and nbd-server-add's bitmap give qsd's errors.
"""

import hashlib
import os
import shutil
import time

import nbd

import blockd_harness as h

SIZE = 10 << 20


class Side:
    """One daemon of the pair: its QMP client and NBD socket."""

    def __init__(self, name, daemon, qmp, nbd_sock, img):
        self.name = name
        self.daemon = daemon
        self.qmp = qmp
        self.nbd_sock = nbd_sock
        self.img = img

    def uri(self, export):
        return f'nbd+unix:///{export}?socket={self.nbd_sock}'


def reply(qmp, cmd, args=None):
    """A command's return value, or ('error', class, desc)."""
    r = qmp.execute(cmd, args)
    if 'error' in r:
        return ('error', r['error']['class'], r['error']['desc'])
    return r['return']


class DirtyBitmapTests(h.TestCase):

    def setUp(self):
        super().setUp()
        base = os.path.join(self.tmpdir, 'base.raw')
        with open(base, 'wb') as f:
            f.truncate(SIZE)
            f.seek(3 << 20)
            f.write(b'\x33' * (1 << 20))
        self.sides = [self.start_side('qsd', base),
                      self.start_side('blockd', base)]

    def start_side(self, name, base):
        img = os.path.join(self.tmpdir, f'{name}.raw')
        shutil.copyfile(base, img)
        stamp = time.monotonic_ns()
        qmp_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.qmp')
        nbd_sock = os.path.join(self.tmpdir, f'{name}-{stamp}.nbd')
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,wait=off',
                '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f0,filename={img},'
                'discard=unmap',
                '--blockdev', 'driver=raw,node-name=r0,file=f0,discard=unmap',
                '--blockdev', 'driver=null-co,node-name=n0,size=1048576',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}']
        if name == 'qsd':
            d = self.start_qsd(args)
        else:
            d = self.start_daemon(args)
        d.wait_for_socket_file(qmp_sock)
        d.wait_for_socket_file(nbd_sock)
        return Side(name, d, self.qmp(qmp_sock), nbd_sock, img)

    def both(self, cmd, args=None):
        """Run a command on both daemons; the replies must be equal."""
        got = [reply(s.qmp, cmd, args) for s in self.sides]
        self.assertEqual(got[1], got[0], f'{cmd} {args}')
        return got[1]

    def both_ok(self, cmd, args=None):
        r = self.both(cmd, args)
        self.assertNotIsInstance(r, tuple, f'{cmd} {args}: {r}')
        return r

    def both_error(self, cmd, args, desc):
        r = self.both(cmd, args)
        self.assertEqual(r, ('error', 'GenericError', desc))

    def run_both(self, argv_of_side):
        """Run a command per side; the outputs, with each side's socket
        path replaced, must be equal.  Returns blockd's output."""
        outs = []
        for s in self.sides:
            res = self.run_command(argv_of_side(s))
            self.assertEqual(res.returncode, 0,
                             f'{s.name}: {res.stdout}{res.stderr}')
            outs.append(res.stdout.replace(s.nbd_sock, 'SOCK'))
        self.assertEqual(outs[1], outs[0])
        return outs[1]

    def sha(self, node, name):
        return self.both_ok('x-debug-block-dirty-bitmap-sha256',
                            {'node': node, 'name': name})['sha256']

    def all_bitmaps(self):
        """{node-name: dirty-bitmaps} of query-named-block-nodes, equal on
        both sides (the rest of the reply names each side's own file)."""
        got = []
        for s in self.sides:
            nodes = s.qmp.command('query-named-block-nodes')
            got.append({n['node-name']: n.get('dirty-bitmaps')
                        for n in nodes})
        self.assertEqual(got[1], got[0])
        return got[1]

    def bitmaps_of(self, node):
        return self.all_bitmaps()[node]

    # ---- the commands ----

    def test_commands_and_errors(self):
        add = 'block-dirty-bitmap-add'
        self.both_ok(add, {'node': 'r0', 'name': 'b0'})
        self.both_ok(add, {'node': 'f0', 'name': 'b1', 'granularity': 512,
                           'disabled': True})
        self.both_ok(add, {'node': 'r0', 'name': 'big',
                           'granularity': 1 << 31})
        self.both_error(add, {'node': 'r0', 'name': 'b0'},
                        'Bitmap already exists: b0')
        self.both_error(add, {'node': 'nope', 'name': 'x'},
                        "Cannot find device='nope' nor node-name='nope'")
        self.both_error(add, {'node': 'r0', 'name': ''},
                        'Bitmap name cannot be empty')
        for g in (0, 256, 3000, 4294967295):
            self.both_error(add, {'node': 'r0', 'name': 'g',
                                  'granularity': g},
                            'Granularity must be power of 2 and at least 512')
        self.both_error(add, {'node': 'r0', 'name': 'p', 'persistent': True},
                        "Can't store persistent bitmaps to r0: "
                        'Operation not supported')
        self.both_error(add, {'node': 'r0', 'name': 'x' * 1024},
                        'Bitmap name too long: ' + 'x' * 1024)
        self.both_ok(add, {'node': 'r0', 'name': 'x' * 1023})
        self.both(add, {'node': 'r0', 'name': 'b2', 'granularity': 'big'})
        self.both(add, {'node': 'r0'})

        self.assertEqual([b['name'] for b in self.bitmaps_of('r0')],
                         ['x' * 1023, 'big', 'b0'])
        self.assertEqual(self.bitmaps_of('f0'),
                         [{'name': 'b1', 'count': 0, 'granularity': 512,
                           'recording': False, 'busy': False,
                           'persistent': False}])
        self.assertIsNone(self.bitmaps_of('n0'))

        for cmd in ('block-dirty-bitmap-remove', 'block-dirty-bitmap-clear',
                    'block-dirty-bitmap-enable', 'block-dirty-bitmap-disable',
                    'x-debug-block-dirty-bitmap-sha256'):
            self.both_error(cmd, {'node': 'r0', 'name': 'zz'},
                            "Dirty bitmap 'zz' not found")
            self.both_error(cmd, {'node': 'zz', 'name': 'b0'},
                            "Node 'zz' not found")
            self.both(cmd, {'node': 'r0'})
        self.both_ok('block-dirty-bitmap-disable', {'node': 'r0',
                                                    'name': 'b0'})
        self.both_ok('block-dirty-bitmap-enable', {'node': 'f0',
                                                   'name': 'b1'})
        self.both_ok('block-dirty-bitmap-clear', {'node': 'r0',
                                                  'name': 'b0'})
        self.both_ok('block-dirty-bitmap-remove', {'node': 'r0',
                                                   'name': 'x' * 1023})
        # 160 clean granules: three zero longs; one granule: one long
        self.assertEqual(self.sha('r0', 'b0'),
                         hashlib.sha256(bytes(24)).hexdigest())
        self.assertEqual(self.sha('r0', 'big'),
                         hashlib.sha256(bytes(8)).hexdigest())

        merge = 'block-dirty-bitmap-merge'
        self.both_ok(merge, {'node': 'r0', 'target': 'b0',
                             'bitmaps': ['big', {'node': 'f0',
                                                 'name': 'b1'}]})
        self.both_ok(merge, {'node': 'r0', 'target': 'b0',
                             'bitmaps': ['b0']})
        self.both_error(merge, {'node': 'r0', 'target': 'b0',
                                'bitmaps': ['big', 'zz']},
                        "Dirty bitmap 'zz' not found")
        self.both_error(merge, {'node': 'r0', 'target': 'zz',
                                'bitmaps': ['b0']},
                        "Dirty bitmap 'zz' not found")
        self.both_error(merge, {'node': 'r0', 'target': 'b0',
                                'bitmaps': [{'node': 'zz', 'name': 'b0'}]},
                        "Node 'zz' not found")
        self.both_ok(add, {'node': 'n0', 'name': 'nb'})
        self.both_error(merge, {'node': 'r0', 'target': 'b0',
                                'bitmaps': [{'node': 'n0', 'name': 'nb'}]},
                        'Bitmaps are of different sizes (destination size '
                        'is 10485760, source size is 1048576) and can\'t '
                        'be merged')
        self.both(merge, {'node': 'r0', 'target': 'b0',
                          'bitmaps': ['b0', 7]})
        # qsd 7.2 crashes on an empty list; blockd merges nothing
        r = reply(self.sides[1].qmp, merge,
                  {'node': 'r0', 'target': 'b0', 'bitmaps': []})
        self.assertEqual(r, {})
        self.all_bitmaps()

    # ---- recording through NBD ----

    def test_writes_through_nbd(self):
        add = 'block-dirty-bitmap-add'
        self.both_ok(add, {'node': 'r0', 'name': 'b0', 'granularity': 512})
        self.both_ok(add, {'node': 'r0', 'name': 'b1'})
        self.both_ok(add, {'node': 'f0', 'name': 'fb', 'granularity': 4096})
        self.both_ok(add, {'node': 'r0', 'name': 'off', 'disabled': True})
        self.both_ok('block-export-add',
                     {'type': 'nbd', 'id': 'e0', 'node-name': 'r0',
                      'name': 'disk', 'writable': True,
                      'bitmaps': ['b0', 'b1', {'node': 'f0',
                                               'name': 'fb'}]})
        io = ['write -P 0xab 1000 10', 'write -z 1M 100k',
              'write -P 0x11 9M 1M', 'discard 2M 300k', 'discard 5000 1000',
              'write -z -u 6M 64k', 'aio_write -P 1 7M 3k',
              'aio_write -P 2 7340000 1', 'aio_flush']
        for s in self.sides:
            argv = ['qemu-io', '-f', 'raw']
            for c in io:
                argv += ['-c', c]
            res = self.run_command(argv + [s.uri('disk')])
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertNotIn('error', res.stdout + res.stderr)
        for node, name in (('r0', 'b0'), ('r0', 'b1'), ('f0', 'fb'),
                           ('r0', 'off')):
            self.sha(node, name)
        dirty = {b['name']: b for b in self.bitmaps_of('r0')}
        self.assertGreater(dirty['b0']['count'], 0)
        self.assertEqual(dirty['off']['count'], 0)
        self.assertTrue(dirty['b0']['busy'])
        self.bitmaps_of('f0')

        for bm in ('b0', 'b1', 'fb'):
            out = self.run_both(lambda s: [
                'nbdinfo', f'--map=qemu:dirty-bitmap:{bm}', s.uri('disk')])
            self.assertIn('dirty', out)
        self.run_both(lambda s: ['nbdinfo', '--map', s.uri('disk')])
        out = self.run_both(lambda s: ['nbdinfo', '--list',
                                       s.uri('')])
        self.assertIn('qemu:dirty-bitmap:fb', out)
        self.run_both(lambda s: ['nbdinfo', '--json', '--list', s.uri('')])

        # busy while exported
        for cmd in ('block-dirty-bitmap-remove', 'block-dirty-bitmap-clear',
                    'block-dirty-bitmap-enable',
                    'block-dirty-bitmap-disable'):
            self.both_error(cmd, {'node': 'r0', 'name': 'b0'},
                            "Bitmap 'b0' is currently in use by another "
                            'operation and cannot be used')
        self.both_error('block-dirty-bitmap-merge',
                        {'node': 'r0', 'target': 'off', 'bitmaps': ['b1']},
                        "Bitmap 'b1' is currently in use by another "
                        'operation and cannot be used')
        self.both_ok('block-export-del', {'id': 'e0'})
        for s in self.sides:
            s.qmp.wait_event('BLOCK_EXPORT_DELETED')
        self.assertFalse(any(b['busy'] for b in self.bitmaps_of('r0')))

        # a resize keeps the bits that still fit, then grows clean
        self.both_ok('block_resize', {'node-name': 'r0', 'size': 9 << 20})
        self.sha('r0', 'b0')
        self.both_ok('block_resize', {'node-name': 'r0', 'size': 20000000})
        self.sha('r0', 'b0')
        self.sha('r0', 'b1')
        self.bitmaps_of('r0')
        self.both_ok('block-dirty-bitmap-merge',
                     {'node': 'r0', 'target': 'off', 'bitmaps': ['b0']})
        self.sha('r0', 'off')
        self.both_ok('block-dirty-bitmap-remove', {'node': 'r0',
                                                   'name': 'b0'})

    # ---- export checks ----

    def test_export_checks(self):
        add = 'block-dirty-bitmap-add'
        exp = 'block-export-add'
        self.both_ok(add, {'node': 'r0', 'name': 'b0'})
        self.both_ok(add, {'node': 'f0', 'name': 'fb'})
        self.both_error(exp, {'type': 'nbd', 'id': 'e1', 'node-name': 'r0',
                              'bitmaps': ['b0']},
                        "Enabled bitmap 'b0' incompatible with readonly "
                        'export')
        self.both_error(exp, {'type': 'nbd', 'id': 'e1', 'node-name': 'r0',
                              'writable': True, 'bitmaps': ['zz']},
                        "Bitmap 'zz' is not found")
        # raw is no filter: a name alone is not looked for below it
        self.both_error(exp, {'type': 'nbd', 'id': 'e1', 'node-name': 'r0',
                              'writable': True, 'bitmaps': ['fb']},
                        "Bitmap 'fb' is not found")
        self.both_error(exp, {'type': 'nbd', 'id': 'e1', 'node-name': 'r0',
                              'bitmaps': [{'node': 'r0', 'name': 'zz'}]},
                        "Dirty bitmap 'zz' not found")
        self.both_error(exp, {'type': 'nbd', 'id': 'e1', 'node-name': 'r0',
                              'bitmaps': [{'node': 'zz', 'name': 'b0'}]},
                        "Node 'zz' not found")
        self.both_ok(exp, {'type': 'nbd', 'id': 'e1', 'node-name': 'r0',
                           'bitmaps': [{'node': 'f0', 'name': 'fb'}]})
        self.both_error(exp, {'type': 'nbd', 'id': 'e2', 'node-name': 'r0',
                              'name': 'x2', 'writable': True,
                              'bitmaps': ['b0', {'node': 'f0',
                                                 'name': 'fb'}]},
                        "Bitmap 'fb' is currently in use by another "
                        'operation and cannot be used')
        self.assertFalse(self.bitmaps_of('r0')[0]['busy'])
        # a disabled bitmap may go on a read-only export
        self.both_ok('block-dirty-bitmap-disable', {'node': 'r0',
                                                    'name': 'b0'})
        self.both_ok('nbd-server-add', {'device': 'r0', 'name': 'x3',
                                        'bitmap': 'b0'})
        self.both_error('nbd-server-add', {'device': 'r0', 'name': 'x4',
                                           'bitmap': 'b0'},
                        "Bitmap 'b0' is currently in use by another "
                        'operation and cannot be used')
        self.all_bitmaps()
        out = self.run_both(lambda s: ['nbdinfo', '--list', s.uri('')])
        self.assertIn('qemu:dirty-bitmap:b0', out)
        self.both_ok('nbd-server-remove', {'name': 'x3'})
        for s in self.sides:
            s.qmp.wait_event('BLOCK_EXPORT_DELETED')
        self.both_ok('block-dirty-bitmap-remove', {'node': 'r0',
                                                   'name': 'b0'})

    def test_bitmap_outlives_its_node(self):
        """An export holds a bitmap of another node, which is deleted:
        qsd 7.2 aborts there; blockd keeps serving the bitmap as it was
        and frees it with the export."""
        bd = self.sides[1]
        bd.qmp.command('block-dirty-bitmap-add',
                       {'node': 'n0', 'name': 'nb'})
        bd.qmp.command('block-export-add',
                       {'type': 'nbd', 'id': 'e0', 'node-name': 'r0',
                        'writable': True,
                        'bitmaps': [{'node': 'n0', 'name': 'nb'}]})
        bd.qmp.command('blockdev-del', {'node-name': 'n0'})
        res = self.run_command(['nbdinfo', '--map=qemu:dirty-bitmap:nb',
                                bd.uri('r0')])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.split(),
                         ['0', str(SIZE), '0', 'clean'])
        bd.qmp.command('block-export-del', {'id': 'e0'})
        bd.qmp.wait_event('BLOCK_EXPORT_DELETED')
        self.assertNotIn('n0', self.all_bitmaps_of(bd))

    def all_bitmaps_of(self, side):
        return {n['node-name']: n.get('dirty-bitmaps')
                for n in side.qmp.command('query-named-block-nodes')}

    # ---- metadata contexts on the wire ----

    def contexts(self, side, export, queries):
        """LIST_META_CONTEXT of @export with @queries."""
        hd = nbd.NBD()
        hd.set_opt_mode(True)
        hd.connect_uri(side.uri(export))
        try:
            for q in queries:
                hd.add_meta_context(q)
            found = []
            hd.opt_list_meta_context(lambda name: found.append(name))
            return found
        finally:
            hd.opt_abort()

    def block_status(self, side, export, contexts, offset, length,
                     flags=0):
        """The extents of each context for one BLOCK_STATUS."""
        hd = nbd.NBD()
        for c in contexts:
            hd.add_meta_context(c)
        hd.connect_uri(side.uri(export))
        try:
            got = {}
            selected = [c for c in contexts if hd.can_meta_context(c)]

            def cb(ctx, off, entries, err):
                got.setdefault(ctx, []).append((off, list(entries)))
                return 0
            hd.block_status(length, offset, cb, flags)
            return selected, got
        finally:
            hd.shutdown()

    def test_meta_contexts(self):
        add = 'block-dirty-bitmap-add'
        self.both_ok(add, {'node': 'r0', 'name': 'b0', 'granularity': 512})
        self.both_ok(add, {'node': 'r0', 'name': 'b1'})
        self.both_ok(add, {'node': 'f0', 'name': 'fb'})
        self.both_ok('block-export-add',
                     {'type': 'nbd', 'id': 'e0', 'node-name': 'r0',
                      'name': 'disk', 'writable': True,
                      'bitmaps': ['b0', 'b1']})
        self.both_ok('block-export-add',
                     {'type': 'nbd', 'id': 'e1', 'node-name': 'f0',
                      'name': 'plain', 'writable': True})
        for s in self.sides:
            res = self.run_command(['qemu-io', '-f', 'raw',
                                    '-c', 'write 70000 200',
                                    '-c', 'write 5M 1M', s.uri('disk')])
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        for export in ('disk', 'plain'):
            for queries in ([], ['qemu:'], ['qemu:dirty-bitmap:'],
                            ['qemu:dirty-bitmap:b1'],
                            ['qemu:dirty-bitmap:b0', 'base:'],
                            ['qemu:dirty-bitmap:zz', 'qemu:zz'],
                            ['qemu:dirty-bitmap:b0', 'qemu:dirty-bitmap:b0'],
                            ['qemu:dirty-bitmap'], ['qemu']):
                got = [self.contexts(s, export, queries)
                       for s in self.sides]
                self.assertEqual(got[1], got[0], f'{export} {queries}')
        wanted = ['base:allocation', 'qemu:dirty-bitmap:b1',
                  'qemu:dirty-bitmap:b0', 'qemu:dirty-bitmap:zz']
        for offset, length, flags in ((0, SIZE, 0), (65000, 10000, 0),
                                      (70100, 3 << 20, 0),
                                      (0, SIZE, nbd.CMD_FLAG_REQ_ONE)):
            got = [self.block_status(s, 'disk', wanted, offset, length,
                                     flags) for s in self.sides]
            self.assertEqual(got[1], got[0], f'{offset} {length} {flags}')
            self.assertEqual(len(got[1][1]), 3)
        got = [self.block_status(s, 'disk', ['qemu:dirty-bitmap:b1'], 0,
                                 SIZE) for s in self.sides]
        self.assertEqual(got[1], got[0])
        self.assertEqual(list(got[1][1]), ['qemu:dirty-bitmap:b1'])


if __name__ == '__main__':
    h.main()
