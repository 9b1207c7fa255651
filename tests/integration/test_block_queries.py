"""query-named-block-nodes, query-block, query-blockstats,
x-debug-query-block-graph, block_resize, blockdev-reopen and
block-set-write-threshold: the same QMP sequences run against blockd and
qemu-storage-daemon 7.2 must give the same whole replies.

Values that legitimately differ are normalised before comparing, and
only these:
- generated node names ("#block" + a counter + two random digits) are
  replaced by "#blockN";
- "actual-size" (host allocation of the image files) is dropped, as it
  depends on the file system rather than on the daemon;
- the path of the private temporary directory is the same for both runs
  (one image per run, named alike), so paths are compared as they are
  after replacing the directory by "DIR".
query-blockstats is compared on null-co and raw nodes only: for file
nodes qemu reports driver-specific discard counters that blockd does not
keep yet.  blockdev-reopen of raw offset/size and of file nodes is left
out for the same reason (not supported yet, refused).  Sizes that are not
multiples of 512 are left out of the resize sequence: QEMU reports
lengths rounded up to whole sectors, blockd the exact length (a
difference of the core's length cache, not of these commands).
"""

import os
import re

import blockd_harness as h

IMG_SIZE = 1 << 20

# (command, arguments); IMG is replaced by the run's image path.
QUERIES = [
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r1', 'file': 'n1',
                      'offset': 512, 'size': 4096}),
    ('blockdev-add', {'driver': 'file', 'node-name': 'f1',
                      'filename': 'IMG'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r2', 'file': 'f1'}),
    ('blockdev-add', {'driver': 'null-aio', 'node-name': 'a1',
                      'size': 1024, 'read-only': True,
                      'detect-zeroes': 'on', 'cache': {'direct': True}}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n2',
                      'latency-ns': 5}),
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n3',
                      'read-zeroes': True}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r3',
                      'file': {'driver': 'raw', 'file': 'n2'}}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r4',
                      'file': {'driver': 'file', 'filename': 'IMG',
                               'aio': 'threads', 'locking': 'off'},
                      'offset': 512}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r5', 'file': 'n3'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r6', 'file': 'n2',
                      'read-only': True}),
    ('query-named-block-nodes', {'flat': True}),
    ('query-named-block-nodes', None),
    ('query-block', None),
    ('query-blockstats', None),
    ('x-debug-query-block-graph', None),
]

STATS = [
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r1', 'file': 'n1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r2',
                      'file': {'driver': 'raw', 'file': 'n1'}}),
    ('query-blockstats', {'query-nodes': True}),
    ('query-blockstats', {'query-nodes': False}),
]

RESIZE = [
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r1', 'file': 'n1'}),
    ('blockdev-add', {'driver': 'file', 'node-name': 'f1',
                      'filename': 'IMG'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r2', 'file': 'f1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r3',
                      'file': {'driver': 'file', 'filename': 'IMG',
                               'locking': 'off'},
                      'offset': 512, 'size': 512}),
    ('blockdev-add', {'driver': 'file', 'node-name': 'f2',
                      'filename': 'IMG', 'read-only': True,
                      'locking': 'off'}),
    ('block_resize', {'node-name': 'n1', 'size': 4096}),
    ('block_resize', {'node-name': 'r1', 'size': 4096}),
    ('block_resize', {'device': 'r1', 'size': 4096}),
    ('block_resize', {'device': 'nope', 'node-name': 'zz', 'size': 4096}),
    ('block_resize', {'size': 4096}),
    ('block_resize', {'node-name': 'r2', 'size': -1}),
    ('block_resize', {'node-name': 'r2', 'size': 2 * IMG_SIZE}),
    ('block_resize', {'node-name': 'f1', 'size': 4096}),
    ('block_resize', {'node-name': 'r3', 'size': 4096}),
    ('block_resize', {'node-name': 'f2', 'size': 4096}),
    ('block_resize', {'node-name': 'r2', 'size': 2 * IMG_SIZE + 4096}),
    ('block_resize', {'node-name': 'r2', 'size': 9223372036854775807}),
    ('query-named-block-nodes', {'flat': True}),
]

REOPEN_THRESHOLD = [
    ('blockdev-add', {'driver': 'null-co', 'node-name': 'n1'}),
    ('blockdev-add', {'driver': 'raw', 'node-name': 'r1', 'file': 'n1'}),
    ('block-set-write-threshold', {'node-name': 'nope',
                                   'write-threshold': 5}),
    ('block-set-write-threshold', {'node-name': 'r1',
                                   'write-threshold': 1048576}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-co', 'node-name': 'n1', 'read-only': True}]}),
    ('query-named-block-nodes', {'flat': True}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-co', 'node-name': 'n1', 'size': 4096}]}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-aio', 'node-name': 'n1'}]}),
    ('blockdev-reopen', {'options': [{'driver': 'null-co'}]}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-co', 'node-name': 'zz'}]}),
    ('blockdev-reopen', {'options': [
        {'driver': 'raw', 'node-name': 'r1', 'file': 'n1',
         'read-only': True}]}),
    # all or nothing: the second element fails, r1 stays read-only
    ('blockdev-reopen', {'options': [
        {'driver': 'raw', 'node-name': 'r1', 'file': 'n1'},
        {'driver': 'null-co', 'node-name': 'n1',
         'detect-zeroes': 'unmap'}]}),
    ('query-named-block-nodes', {'flat': True}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-co', 'node-name': 'n1', 'force-share': True,
         'read-only': True}]}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-co', 'node-name': 'n1',
         'cache': {'direct': True, 'no-flush': True},
         'discard': 'unmap', 'detect-zeroes': 'unmap'}]}),
    ('blockdev-reopen', {'options': [
        {'driver': 'null-co', 'node-name': 'n1', 'read-only': False},
        {'driver': 'null-co', 'node-name': 'n1', 'read-only': True}]}),
    ('query-named-block-nodes', {'flat': True}),
    ('block-set-write-threshold', {'node-name': 'r1',
                                   'write-threshold': 0}),
    ('query-named-block-nodes', {'flat': True}),
]


def normalise(value, tmpdir):
    """The reply with the legitimately differing values neutralised."""
    if isinstance(value, dict):
        return {k: normalise(v, tmpdir) for k, v in value.items()
                if k != 'actual-size'}
    if isinstance(value, list):
        return [normalise(v, tmpdir) for v in value]
    if isinstance(value, str):
        value = value.replace(tmpdir, 'DIR')
        return re.sub(r'#block[0-9]+', '#blockN', value)
    return value


def substitute(value, img):
    if isinstance(value, dict):
        return {k: substitute(v, img) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, img) for v in value]
    return img if value == 'IMG' else value


class BlockQueries(h.TestCase):

    def session(self, sequence, qsd):
        tmp = self.make_tmpdir()
        img = os.path.join(tmp, 'img.raw')
        with open(img, 'wb') as f:
            f.truncate(IMG_SIZE)
        sock = os.path.join(tmp, 'qmp.sock')
        args = ['--chardev',
                'socket,id=m,path=%s,server=on,wait=off' % sock,
                '--monitor', 'chardev=m']
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        replies = [qmp.execute(cmd, substitute(args, img))
                   for cmd, args in sequence]
        d.stop()
        return [normalise(r, tmp) for r in replies]

    def compare(self, sequence):
        ours = self.session(sequence, False)
        theirs = self.session(sequence, True)
        for (cmd, args), a, b in zip(sequence, ours, theirs):
            self.assertEqual(a, b, '%s %s' % (cmd, args))

    def test_queries_match_qsd(self):
        self.compare(QUERIES)

    def test_blockstats_match_qsd(self):
        self.compare(STATS)

    def test_resize_matches_qsd(self):
        self.compare(RESIZE)

    def test_reopen_and_threshold_match_qsd(self):
        self.compare(REOPEN_THRESHOLD)

    def test_reopen_refusals(self):
        """What blockd does not support yet is refused, not half done."""
        sock = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.start_daemon(
            ['--blockdev', 'null-co,node-name=n1',
             '--blockdev', 'null-co,node-name=n2',
             '--blockdev', 'raw,node-name=r1,file=n1',
             '--chardev', 'socket,id=m,path=%s,server=on,wait=off' % sock,
             '--monitor', 'chardev=m'])
        d.wait_for_socket_file(sock)
        qmp = self.qmp(sock)
        r = qmp.execute('blockdev-reopen', {'options': [
            {'driver': 'raw', 'node-name': 'r1', 'file': 'n2'}]})
        self.assertIn("cannot replace or redefine the 'file' child",
                      r['error']['desc'])
        r = qmp.execute('blockdev-reopen', {'options': [
            {'driver': 'raw', 'node-name': 'r1', 'file': 'n1',
             'offset': 512}]})
        self.assertEqual(r['error']['desc'],
                         "Cannot change the option 'offset'")
        # qemu-storage-daemon 7.2 aborts on an empty list
        self.assertEqual(qmp.execute('blockdev-reopen', {'options': []}),
                         {'return': {}})


if __name__ == '__main__':
    h.main()
