#!/usr/bin/python3
"""Command-line option parsing compared with qemu-storage-daemon 7.2.

Each row of the table is run through both daemons; the first line of
stderr (after "PROGRAM: ") and the exit status must be the same.  Rows
that both accept are followed by a sentinel option that fails the same
way in both, so that acceptance is compared too and no daemon stays up.

--object rows use TYPE: blockd gets the test plugin's "testobj", qsd its
"iothread" (both have an integer 'poll-max-ns'); the name is written
back as TYPE in the messages.  Rows for an option blockd still refuses
with "is not supported yet" (today --nbd-server) are skipped when run,
so they start counting as soon as the option exists.
"""
import os
import unittest

import blockd_harness
from blockd_harness import BLOCKD, TestCase, find_qsd

PLUGIN_DIRS = (os.environ.get('BLOCKD_PLUGIN_DIR', '') + ':' +
               os.environ.get('BLOCKD_TEST_PLUGIN_DIR', ''))

SENTINEL = ['--object', 'nosuch,id=end']
LONG = 'k' * 130

TABLE = [
    # --object: implied key, escaping, nesting, lists, types
    ('object', 'TYPE,id=a'),
    ('object', 'qom-type=TYPE,id=a'),
    ('object', 'id=a,qom-type=TYPE'),
    ('object', 'TYPE,id=a,'),
    ('object', 'TYPE,id=a,,b'),
    ('object', 'TYPE,,x,id=a'),
    ('object', 'id=a,TYPE'),
    ('object', ',id=a'),
    ('object', ''),
    ('object', 'TYPE,id=a,a..b=1'),
    ('object', 'TYPE,id=a,.x=1'),
    ('object', 'TYPE,id=a,x.=1'),
    ('object', 'TYPE,id=a,' + LONG + '=1'),
    ('object', 'TYPE,id=a,foo=1'),
    ('object', 'TYPE,id=a,foo.bar=1'),
    ('object', 'TYPE,id=a,id.0=1'),
    ('object', 'TYPE,id=a,x.0=1,x.2=2'),
    ('object', 'TYPE,id=a,x.0=1,x.a=2'),
    ('object', 'TYPE,id=a,poll-max-ns=0x10'),
    ('object', 'TYPE,id=a,poll-max-ns=010'),
    ('object', 'TYPE,id=a,poll-max-ns=1k'),
    ('object', 'TYPE,id=a,poll-max-ns='),
    ('object', 'TYPE,id=a,poll-max-ns=1.5'),
    ('object', 'TYPE,id=a,poll-max-ns=99999999999999999999'),
    ('object', 'TYPE,id=a,poll-max-ns=1,poll-max-ns=2'),
    ('object', 'TYPE,id=a,poll-max-ns.0=1'),
    ('object', 'TYPE,id=a,poll-max-ns.x=1'),
    ('object', 'TYPE,id=1a'),
    ('object', 'TYPE'),
    ('object', 'nosuch,id=a'),
    ('object', 'TYPE=x'),
    ('object', '{"qom-type":"TYPE","id":"a"}'),
    ('object', "{'qom-type':'TYPE','id':'a'}"),
    ('object', '{"qom-type":"TYPE","id":"a","poll-max-ns":"1"}'),
    ('object', '{"qom-type":"TYPE","id":"a"'),
    ('object', '{"qom-type":"TYPE","id":"a"}{}'),
    ('object', '{"qom-type":"TYPE","qom-type":"TYPE","id":"a"}'),
    ('object', ' {"qom-type":"TYPE","id":"a"}'),
    # --monitor
    ('monitor', 'chardev=mon'),
    ('monitor', 'mon'),
    ('monitor', 'chardev=mon,pretty=on'),
    ('monitor', 'chardev=mon,pretty=maybe'),
    ('monitor', 'chardev=mon,mode=x'),
    ('monitor', 'chardev=nosuch'),
    ('monitor', 'nosuch'),
    ('monitor', 'chardev.a=1'),
    ('monitor', 'pretty=on'),
    ('monitor', 'chardev=mon,x=1'),
    ('monitor', 'chardev=mon,,x'),
    # --blockdev (null-co and raw exist in both daemons)
    ('blockdev', 'null-co,node-name=n,size=1k'),
    ('blockdev', 'null-co,node-name=n,size=abc'),
    ('blockdev', 'null-co,node-name=n,size=1.5k'),
    ('blockdev', 'null-co,node-name=n,read-zeroes=maybe'),
    ('blockdev', 'null-co,node-name=n,latency-ns=-1'),
    ('blockdev', 'driver=null-co,node-name=a,,b'),
    ('blockdev', 'driver=nosuch,node-name=n'),
    ('blockdev', 'raw,node-name=r,file.driver=null-co,file.size=1M'),
    ('blockdev', 'raw,node-name=r,file.driver=null-co,file.size=1M,'
                 'offset=4k,size=8k'),
    ('blockdev', 'raw,node-name=r,file.driver=null-co,file.sise=1M'),
    ('blockdev', 'raw,node-name=r,file=nosuch'),
    ('blockdev', '{"driver":"null-co","node-name":"n","size":"1k"}'),
    ('blockdev', '{"driver":"null-co","node-name":"n","size":1024}'),
    ('blockdev', 'null-co,node-name=n,cache.direct=on,discard=unmap,'
                 'detect-zeroes=unmap'),
    ('blockdev', 'null-co,node-name=n,detect-zeroes=unmap'),
]

# --nbd-server rows, to join TABLE when blockd's NBD server exists (blockd
# refuses the option until then, so comparing now would only skip).
NBD_SERVER_CASES = [
    ('nbd-server', 'addr.type=unix'),
    ('nbd-server', 'addr.type=unix,addr.path=nbd.sock,max-connections=-1'),
    ('nbd-server', 'addr.type=inet,addr.host=a,addr.port=1,foo=1'),
    ('nbd-server', 'addr.type=nosuch'),
    ('nbd-server', 'addr=x'),
    ('nbd-server', 'addr.type=fd,addr.str=x,tls-creds=nosuch'),
]

# --monitor cases that once differed from qsd: JSON input, and a missing
# chardev reported before an unsupported mode.
MONITOR_CASES = [
    ('monitor', '{"chardev":1}'),
    ('monitor', 'chardev=nosuch,mode=readline'),
]


class KeyvalTests(TestCase):

    def first_error(self, binary, option, arg):
        type_name = 'testobj' if binary == BLOCKD else 'iothread'
        chardev = os.path.join(self.make_tmpdir(), 'mon.sock')
        argv = [binary]
        if binary == BLOCKD:
            argv += ['--plugin-dir', PLUGIN_DIRS]
        argv += ['--chardev',
                 f'socket,id=mon,path={chardev},server=on,wait=off',
                 f'--{option}', arg.replace('TYPE', type_name)] + SENTINEL
        res = self.run_command(argv, timeout=30)
        stderr = blockd_harness.without_sanitizer_notes(res.stderr)
        line = stderr.splitlines()[0] if stderr else ''
        program = os.path.basename(binary) + ': '
        if line.startswith(program):
            line = line[len(program):]
        return res.returncode, line.replace(type_name, 'TYPE')

    def compare(self, option, arg):
        if find_qsd() is None:
            self.skipTest('qemu-storage-daemon is not installed')
        mine = self.first_error(BLOCKD, option, arg)
        self.assertEqual(mine, self.first_error(find_qsd(), option, arg))

    def test_table(self):
        if find_qsd() is None:
            self.skipTest('qemu-storage-daemon is not installed')
        for option, arg in TABLE:
            with self.subTest(option=option, arg=arg):
                self.compare(option, arg)

    def test_monitor_json(self):
        self.compare(*MONITOR_CASES[0])

    def test_monitor_mode_after_chardev(self):
        self.compare(*MONITOR_CASES[1])


if __name__ == '__main__':
    blockd_harness.main()
