#!/usr/bin/python3
"""The same QMP session with errors of every kind against blockd and
qemu-storage-daemon 7.2: same replies (classes and messages), and the
same exit after 'quit'.  Only commands both daemons have are used.
"""
import json
import os

import blockd_harness
from blockd_harness import TestCase

# Raw requests after capabilities negotiation and query-commands.
SESSION = [
    # wrong argument types
    b'{"execute":"object-del","arguments":{"id":1}}',
    b'{"execute":"qom-list-properties","arguments":{"typename":[]}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0","backend":1}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0",'
    b'"backend":{"type":"socket","data":[]}}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0",'
    b'"backend":{"type":"socket","data":{"addr":{"type":"unix",'
    b'"data":{"path":7}}}}}}',
    b'{"execute":"object-add","arguments":{"qom-type":true,"id":"o"}}',
    # missing members
    b'{"execute":"qom-list-properties"}',
    b'{"execute":"qom-list-properties","arguments":{}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0"}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0",'
    b'"backend":{"type":"socket"}}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0",'
    b'"backend":{"type":"socket","data":{}}}}',
    b'{"execute":"chardev-remove","arguments":{}}',
    b'{"execute":"object-add","arguments":{"id":"o"}}',
    # unexpected members
    b'{"execute":"query-chardev","arguments":{"x":1}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0","x":1,'
    b'"backend":{"type":"socket","data":{}}}}',
    b'{"execute":"chardev-add","arguments":{"id":"c0",'
    b'"backend":{"type":"socket","data":{"y":2,"addr":{"type":"unix",'
    b'"data":{"path":"p"}}}}}}',
    b'{"execute":"qom-list-types","arguments":{"abstract":true,"z":0}}',
    # bad values
    b'{"execute":"chardev-add","arguments":{"id":"c0",'
    b'"backend":{"type":"nosuch","data":{}}}}',
    b'{"execute":"object-add","arguments":{"qom-type":"nosuch","id":"o"}}',
    b'{"execute":"chardev-remove","arguments":{"id":"nosuch"}}',
    b'{"execute":"object-del","arguments":{"id":"nosuch"}}',
    b'{"execute":"qom-list-properties","arguments":{"typename":"nosuch"}}',
    # unknown commands
    b'{"execute":"nosuch"}',
    b'{"execute":"blockdev-nosuch","arguments":{},"id":"x1"}',
    # malformed JSON and requests
    b'{"execute":}',
    b'{"execute":"query-chardev",}',
    b'[]',
    b'{"execute":"query-chardev","arguments":[]}',
    b'{"arguments":{}}',
    # and still alive
    b'{"execute":"query-chardev","id":"last"}',
]


class QmpErrorTests(TestCase):

    def session(self, binary):
        path = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = ['--chardev', f'socket,id=qmp0,path={path},server=on,wait=off',
                '--monitor', 'chardev=qmp0']
        daemon = (self.start_daemon(args) if binary == 'blockd'
                  else self.start_qsd(args))
        daemon.wait_for_socket_file(path)
        client = self.qmp(path, negotiate=False)
        replies = [client.execute('qmp_capabilities')]
        commands = client.command('query-commands')
        tmp = os.path.dirname(path)
        for request in SESSION:
            client.send_raw(request + b'\n')
            # the socket's path differs: compare what follows it
            replies.append(json.loads(
                json.dumps(client.receive()).replace(tmp, 'DIR')))
        replies.append(client.execute('quit'))
        status = daemon.wait()
        return replies, {c['name'] for c in commands}, status

    def test_same_replies(self):
        mine, my_commands, my_status = self.session('blockd')
        peer, peer_commands, peer_status = self.session('qsd')
        self.assertEqual(len(mine), len(peer))
        for request, got, want in zip([b'caps'] + SESSION + [b'quit'],
                                      mine, peer):
            with self.subTest(request=request.decode()):
                self.assertEqual(got, want)
        self.assertEqual(my_status, peer_status)
        # every command this session uses is listed by both
        for name in ('qmp_capabilities', 'query-commands', 'quit',
                     'chardev-add', 'chardev-remove', 'query-chardev',
                     'object-add', 'object-del', 'qom-list-types',
                     'qom-list-properties'):
            with self.subTest(command=name):
                self.assertIn(name, my_commands)
                self.assertIn(name, peer_commands)
        # blockd's commands are qsd's, except its own additions
        # (query-iothreads is QEMU 7.2's, but only its system emulators
        # have it)
        self.assertEqual(my_commands - peer_commands,
                         {'query-plugins', 'query-iothreads'})

    def test_malformed_json_error_class(self):
        replies, _, _ = self.session('blockd')
        index = 1 + SESSION.index(b'{"execute":}')
        self.assertEqual(replies[index]['error']['class'], 'GenericError')
        self.assertTrue(replies[index]['error']['desc'].startswith(
            'JSON parse error'), replies[index])


if __name__ == '__main__':
    blockd_harness.main()
