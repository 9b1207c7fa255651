"""blockdev-reopen changing a qcow2 node's own options, side by side with
qemu-storage-daemon 7.2: lazy-refcounts on and off (the dirty bit a write
sets, and clears when lazy refcounts go off), pass-discard-request (the
host blocks a discard frees), overlap checks, the cache sizes and
cache-clean-interval, and the refusals (bad cache sizes, lazy refcounts
on a version 2 image, encryption options), all with the same replies.
"""
import os
import struct
import subprocess

import blockd_harness as h

MiB = 1024 * 1024


def dirty_bit(path):
    with open(path, 'rb') as f:
        f.seek(72)
        return struct.unpack('>Q', f.read(8))[0] & 1


class Qcow2Reopen(h.TestCase):

    def qemu_io(self, uri, cmds):
        argv = ['qemu-io', '-f', 'raw']
        for c in cmds:
            argv += ['-c', c]
        r = self.run_command(argv + [uri])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn('error', r.stdout.lower())

    def session(self, qsd):
        d = self.make_tmpdir()
        img = os.path.join(d, 'img.qcow2')
        v2 = os.path.join(d, 'v2.qcow2')
        for path, opts in ((img, 'lazy_refcounts=on'), (v2, 'compat=0.10')):
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                            opts, path, '64M'], check=True)
        qmp_sock = os.path.join(d, 'qmp.sock')
        nbd_sock = os.path.join(d, 'nbd.sock')
        args = ['--chardev', f'socket,id=m,path={qmp_sock},server=on,'
                'wait=off', '--monitor', 'chardev=m',
                '--blockdev', f'driver=file,node-name=f,filename={img},'
                'discard=unmap',
                '--blockdev', 'driver=qcow2,node-name=n,file=f,'
                'discard=unmap,lazy-refcounts=off,cache-size=1048576',
                '--blockdev', f'driver=file,node-name=f2,filename={v2}',
                '--blockdev', 'driver=qcow2,node-name=n2,file=f2',
                '--nbd-server', f'addr.type=unix,addr.path={nbd_sock}']
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(qmp_sock)
        q = self.qmp(qmp_sock)
        uri = f'nbd+unix:///n?socket={nbd_sock}'
        seen = []

        def reopen(node='n', file='f', **opts):
            o = {'driver': 'qcow2', 'node-name': node, 'file': file}
            o.update(opts)
            seen.append((sorted(opts), q.execute('blockdev-reopen',
                                                 {'options': [o]})))

        def write(cmds):
            q.command('block-export-add', {'type': 'nbd', 'id': 'e',
                                           'node-name': 'n',
                                           'writable': True})
            self.qemu_io(uri, cmds)
            q.command('block-export-del', {'id': 'e'})
            q.wait_event('BLOCK_EXPORT_DELETED')

        def state(what):
            seen.append((what, dirty_bit(img),
                         os.stat(img).st_blocks > 0))

        write(['write -P 0x11 0 64k'])
        state('lazy off: clean after a write')
        reopen(**{'lazy-refcounts': True, 'discard': 'unmap'})
        write(['write -P 0x22 1M 64k'])
        state('lazy on: dirty after a write')
        reopen(**{'lazy-refcounts': False, 'discard': 'unmap'})
        state('lazy off again: clean')
        # left out, lazy-refcounts takes the image's default (on) again
        reopen(discard='unmap')
        write(['write -P 0x33 2M 64k'])
        state('default from the header: dirty')
        reopen(**{'lazy-refcounts': False, 'discard': 'unmap'})

        # discard passed to the file or not: the blocks it frees
        write(['write -P 0x44 8M 4M'])
        before = os.stat(img).st_blocks
        reopen(**{'pass-discard-request': False, 'discard': 'unmap'})
        write(['discard 8M 2M'])
        kept = os.stat(img).st_blocks
        reopen(**{'pass-discard-request': True, 'discard': 'unmap'})
        write(['discard 10M 2M'])
        after = os.stat(img).st_blocks
        seen.append(('no pass: blocks kept', kept == before))
        seen.append(('pass: blocks freed', after < kept))

        # the other options take their new values
        reopen(**{'overlap-check': 'none', 'cache-clean-interval': 1,
                  'l2-cache-size': 65536, 'refcount-cache-size': 262144,
                  'l2-cache-entry-size': 4096})
        reopen(**{'overlap-check': {'template': 'all', 'active-l2': False},
                  'cache-size': 4 * MiB, 'pass-discard-other': True,
                  'pass-discard-snapshot': False})
        write(['write -P 0x55 20M 128k', 'read -P 0x55 20M 128k',
               'read -P 0x22 1M 64k'])
        reopen()

        # refusals, the node unchanged
        reopen(**{'l2-cache-entry-size': 1000})
        reopen(**{'l2-cache-entry-size': 256})
        reopen(**{'cache-size': MiB, 'l2-cache-size': 65536,
                  'refcount-cache-size': 65536})
        reopen(**{'cache-size': 65536, 'l2-cache-size': MiB})
        reopen(**{'cache-size': 65536, 'refcount-cache-size': MiB})
        reopen(**{'cache-clean-interval': 1 << 32})
        reopen(**{'encrypt': {'format': 'luks', 'key-secret': 'nope'}})
        reopen(node='n2', file='f2', **{'lazy-refcounts': True})
        reopen(node='n2', file='f2', **{'lazy-refcounts': False})
        reopen(node='n2', file='f2', **{'read-only': True})
        reopen(node='n2', file='f2')
        write(['read -P 0x55 20M 128k'])
        nodes = q.command('query-named-block-nodes', {'flat': True})
        for n in nodes:
            n.pop('image', None)
            n['file'] = n['file'].replace(d, 'DIR')
        seen.append(sorted(nodes, key=lambda n: n['node-name']))
        daemon.stop()
        r = self.run_command(['qemu-img', 'check', img])
        seen.append(r.stdout.replace(d, 'DIR'))
        return seen

    def test_reopen_options_as_qsd(self):
        ours = self.session(False)
        theirs = self.session(True)
        for a, b in zip(ours, theirs):
            self.assertEqual(a, b)
        self.assertEqual(len(ours), len(theirs))
        self.assertIn(('lazy on: dirty after a write', 1, True), ours)
        self.assertIn(('lazy off again: clean', 0, True), ours)
        self.assertIn(('pass: blocks freed', True), ours)
        self.assertIn('No errors were found', ours[-1])


if __name__ == '__main__':
    h.main()
