#!/usr/bin/python3
"""The secret, authz-simple, authz-list and authz-listfile object types
(plugins object-secret and object-authz), side by side with
qemu-storage-daemon 7.2: the same --object options and the same object-add
requests must get the same replies and error messages, and the type and
property listings must agree.

Encrypted secrets are made with openssl(1), independently of both daemons.

qsd 7.2 cannot create authz-listfile objects at all (its schema calls the
type 'authz-listfile', its object model 'authz-list-file'), so blockd's
working authz-listfile is checked on its own: its errors against the
messages in QEMU's code, and its refresh through the errors a failed
reload reports on stderr.
"""
import base64
import json
import os
import subprocess

import blockd_harness
from blockd_harness import BLOCKD, TestCase

KEY = bytes(range(32))
IV = bytes(range(0xa0, 0xb0))
B64 = lambda data: base64.b64encode(data).decode()


def openssl_encrypt(plain, key=KEY, iv=IV):
    """AES-256-CBC with PKCS#7 padding, by openssl."""
    return subprocess.run(
        ['openssl', 'enc', '-aes-256-cbc', '-K', key.hex(), '-iv', iv.hex()],
        input=plain, capture_output=True, check=True).stdout


class SecretAuthzTests(TestCase):

    def setUp(self):
        super().setUp()
        if blockd_harness.find_qsd() is None:
            self.skipTest('qemu-storage-daemon is not installed')
        self.ct = openssl_encrypt(b'the password')
        self.ct_path = os.path.join(self.tmpdir, 'ct.bin')
        with open(self.ct_path, 'wb') as f:
            f.write(self.ct)
        self.bad_ct_path = os.path.join(self.tmpdir, 'ct16.bin')
        with open(self.bad_ct_path, 'wb') as f:
            f.write(b'sixteen bytes!!!')
        self.text_path = os.path.join(self.tmpdir, 'secret.txt')
        with open(self.text_path, 'w') as f:
            f.write('from a file\n')

    def start_qmp(self, qsd=False, extra=()):
        path = os.path.join(self.make_tmpdir(), 'qmp.sock')
        args = ['--chardev', f'socket,id=qmp0,path={path},server=on,wait=off',
                '--monitor', 'chardev=qmp0'] + list(extra)
        daemon = self.start_qsd(args) if qsd else self.start_daemon(args)
        daemon.wait_for_socket_file(path)
        return daemon, self.qmp(path)

    # object-add arguments; the session starts with secrets 'key' (32
    # bytes), 'short' (5 bytes) and authz-simple 'az'.
    def session(self):
        ct64, iv64 = B64(self.ct), B64(IV)
        sec = lambda **kw: ('object-add', dict({'qom-type': 'secret'}, **kw))
        return [
            sec(id='key', data=B64(KEY), format='base64'),
            sec(id='short', data='short'),
            ('object-add', {'qom-type': 'authz-simple', 'id': 'az',
                            'identity': 'CN=x'}),
            # good secrets
            sec(id='s1', data='plain'),
            sec(id='s2', data='cGFzcw==', format='base64'),
            sec(id='s3', file=self.text_path),
            sec(id='s4', data=ct64, format='base64', keyid='key', iv=iv64),
            sec(id='s5', file=self.ct_path, keyid='key', iv=iv64),
            sec(id='s6', data=''),
            sec(id='s7', data='', format='base64'),
            # bad ones
            sec(id='e'),
            sec(id='e', data='x', file=self.text_path),
            sec(id='e', file=os.path.join(self.tmpdir, 'nosuch')),
            sec(id='e', file=self.tmpdir),
            sec(id='e', data='%%%', format='base64'),
            sec(id='e', data='x', format='hex'),
            sec(id='e', data='x', loaded=True),
            sec(id='e', data='x', loaded=False),
            sec(id='e', data=ct64, format='base64', keyid='nosuch', iv=iv64),
            sec(id='e', data=ct64, format='base64', keyid='az', iv=iv64),
            sec(id='e', data=ct64, format='base64', keyid='e', iv=iv64),
            sec(id='e', data=ct64, format='base64', keyid='short', iv=iv64),
            sec(id='e', data=ct64, format='base64', keyid='key'),
            sec(id='e', data=ct64, format='base64', keyid='key', iv='AAAA'),
            sec(id='e', data=ct64, format='base64', keyid='key', iv='!'),
            sec(id='e', data='%', format='base64', keyid='key', iv=iv64),
            sec(id='e', data='abc', keyid='key', iv=iv64),
            sec(id='e', file=self.bad_ct_path, keyid='key', iv=iv64),
            sec(id='e', data=1),
            sec(id='s1', data='again'),
            # authz
            ('object-add', {'qom-type': 'authz-simple', 'id': 'a1',
                            'identity': 'CN=client'}),
            ('object-add', {'qom-type': 'authz-simple', 'id': 'a2',
                            'identity': ''}),
            ('object-add', {'qom-type': 'authz-simple', 'id': 'e'}),
            ('object-add', {'qom-type': 'authz-simple', 'id': 'e',
                            'identity': 1}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'l1'}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'l2',
                            'policy': 'allow', 'rules': [
                                {'match': 'CN=*', 'policy': 'deny',
                                 'format': 'glob'},
                                {'match': 'CN=x', 'policy': 'allow'}]}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'e',
                            'policy': 'maybe'}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'e',
                            'rules': [{'match': 'x'}]}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'e',
                            'rules': [{'match': 'x', 'policy': 'no'}]}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'e',
                            'rules': [{'match': 'x', 'policy': 'deny',
                                       'format': 'regex'}]}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'e',
                            'rules': [{'policy': 'deny', 'x': 1}]}),
            ('object-add', {'qom-type': 'authz-list', 'id': 'e',
                            'rules': {}}),
            ('object-del', {'id': 's4'}),
            ('object-del', {'id': 'key'}),
            ('object-del', {'id': 'l2'}),
            ('object-del', {'id': 'az'}),
            ('qom-list-types', {'implements': 'secret'}),
        ]

    def test_qmp_like_qsd(self):
        _, ours = self.start_qmp()
        _, theirs = self.start_qmp(qsd=True)
        for name, args in self.session():
            with self.subTest(command=name, arguments=args):
                self.assertEqual(ours.execute(name, args),
                                 theirs.execute(name, args))

    def run_both(self, objects):
        """Each daemon's (exit status, message) for these --object options,
        followed by one that fails, so that both exit after accepting (or
        not) the given ones."""
        results = []
        for binary in (BLOCKD, blockd_harness.find_qsd()):
            argv = [binary]
            for opt in objects + ['secret,id=last']:
                argv += ['--object', opt]
            res = self.run_command(argv, timeout=30)
            results.append((res.returncode, res.stderr.split(': ', 1)[-1]))
        return results

    def test_command_line_like_qsd(self):
        ct64, iv64 = B64(self.ct), B64(IV)
        key = f'secret,id=key,data={B64(KEY)},format=base64'
        cases = [
            [key],
            [key, f'secret,id=s,data={ct64},format=base64,keyid=key,'
                  f'iv={iv64}'],
            [key, f'secret,id=s,file={self.ct_path},keyid=key,iv={iv64}'],
            [key, f'secret,id=s,file={self.bad_ct_path},keyid=key,'
                  f'iv={iv64}'],
            [key, f'secret,id=s,data=abc,keyid=key,iv={iv64}'],
            [key, f'secret,id=s,data={ct64},format=base64,keyid=key'],
            [f'secret,id=s,data={ct64},keyid=key,iv={iv64}', key],
            [f'secret,id=s,file={self.text_path}'],
            ['secret,id=s,data=x,file=/nonexistent'],
            ['secret,id=s,file=/nonexistent'],
            ['secret,id=s,data=%,format=base64'],
            ['secret,id=s,data=x,format=hex'],
            ['secret,id=s,data=x,loaded=on'],
            ['secret,id=s,data=x,loaded=off'],
            ['secret,id=s,data=x,foo=1'],
            ['authz-simple,id=a,identity=CN=x'],
            ['authz-simple,id=a'],
            ['authz-list,id=a,policy=allow,rules.0.match=CN=*,'
             'rules.0.policy=deny,rules.0.format=glob'],
            ['authz-list,id=a,policy=foo'],
            ['authz-list,id=a,rules.0.match=x'],
            ['authz-list,id=a,rules.0.match=x,rules.0.policy=y'],
            ['{"qom-type": "authz-list", "id": "a", "rules": '
             '[{"match": "x", "policy": "allow", "format": "glob"}]}'],
            ['{"qom-type": "secret", "id": "a", "data": "x", "iv": 1}'],
        ]
        for case in cases:
            with self.subTest(objects=case):
                ours, theirs = self.run_both(case)
                self.assertEqual(ours, theirs)
                self.assertEqual(ours[0], 1)

    def test_listings_like_qsd(self):
        _, ours = self.start_qmp()
        _, theirs = self.start_qmp(qsd=True)
        # qsd's object model calls authz-listfile 'authz-list-file'
        rename = lambda t: dict(t, name='authz-listfile') \
            if t['name'] == 'authz-list-file' else t
        key = lambda t: t['name']
        for args in ({'implements': 'authz'},
                     {'implements': 'authz', 'abstract': True},
                     {'implements': 'secret'},
                     {'implements': 'secret_common', 'abstract': True}):
            with self.subTest(arguments=args):
                want = [rename(t) for t in
                        theirs.command('qom-list-types', args)]
                self.assertEqual(
                    sorted(ours.command('qom-list-types', args), key=key),
                    sorted(want, key=key))
        # QEMU lists properties in its hash table's order
        for ours_name, their_name in (('secret', 'secret'),
                                      ('authz-simple', 'authz-simple'),
                                      ('authz-list', 'authz-list'),
                                      ('authz-listfile', 'authz-list-file')):
            with self.subTest(typename=ours_name):
                args = {'typename': ours_name}
                self.assertEqual(
                    sorted(ours.command('qom-list-properties', args),
                           key=key),
                    sorted(theirs.command('qom-list-properties',
                                          {'typename': their_name}),
                           key=key))

    def test_listfile_qsd_cannot(self):
        """The one difference: qsd 7.2 refuses every authz-listfile."""
        acl = os.path.join(self.tmpdir, 'acl.json')
        with open(acl, 'w') as f:
            json.dump({'policy': 'allow'}, f)
        _, ours = self.start_qmp()
        _, theirs = self.start_qmp(qsd=True)
        args = {'qom-type': 'authz-listfile', 'id': 'f', 'filename': acl}
        self.assertEqual(theirs.execute('object-add', args)['error']['desc'],
                         'invalid object type: authz-listfile')
        self.assertEqual(ours.execute('object-add', args), {'return': {}})

    def listfile_error(self, client, contents, filename=None, **extra):
        path = filename or os.path.join(self.tmpdir, 'acl.json')
        if contents is not None:
            with open(path, 'w') as f:
                f.write(contents)
        reply = client.execute('object-add', dict(
            {'qom-type': 'authz-listfile', 'id': 'f', 'filename': path},
            **extra))
        return reply['error']['desc']

    def test_listfile_errors(self):
        """QEMU's messages (from its code: qsd cannot create the type)."""
        _, client = self.start_qmp()
        acl = os.path.join(self.tmpdir, 'acl.json')
        missing = os.path.join(self.tmpdir, 'nosuch.json')
        self.assertEqual(
            self.listfile_error(client, None, filename=missing),
            f"Unable to read '{missing}': Failed to open file "
            f"\u201c{missing}\u201d: No such file or directory")
        self.assertEqual(self.listfile_error(client, ''),
                         'Expecting a JSON value')
        self.assertEqual(self.listfile_error(client, '[]'),
                         f"File '{acl}' must contain a JSON object")
        self.assertTrue(self.listfile_error(client, '{"policy": ').startswith(
            'JSON parse error, '))
        self.assertEqual(self.listfile_error(client, '{"policy": "maybe"}'),
                         "Parameter 'policy' does not accept value 'maybe'")
        self.assertEqual(self.listfile_error(client, '{"policy": 1}'),
                         "Invalid parameter type for 'policy', expected: "
                         "string")
        self.assertEqual(self.listfile_error(client, '{"rules": [{}]}'),
                         "Parameter 'rules[0].match' is missing")
        self.assertEqual(self.listfile_error(client, '{"rules": [1]}'),
                         "Invalid parameter type for 'rules[0]', expected: "
                         "object")
        self.assertEqual(self.listfile_error(client, '{"rules": 1}'),
                         "Invalid parameter type for 'rules', expected: "
                         "array")
        self.assertEqual(self.listfile_error(client, '{"x": 1}'),
                         "Property 'authz-list.x' not found")
        # a watched file needs a directory part
        with open(os.path.join(self.tmpdir, 'rel.json'), 'w') as f:
            f.write('{}')
        self.assertEqual(self.listfile_error(client, None,
                                             filename='rel.json'),
                         'Filename must be an absolute path')
        # nothing was left behind
        with open(acl, 'w') as f:
            f.write('{}')
        self.assertEqual(client.execute('object-add', {
            'qom-type': 'authz-listfile', 'id': 'f', 'filename': acl,
            'refresh': False}), {'return': {}})

    def test_listfile_refresh(self):
        """A replaced or rewritten file is read again; a reload that
        fails is reported on stderr (and, as in QEMU, leaves no rules)."""
        acl = os.path.join(self.tmpdir, 'acl.json')

        def replace(contents):
            with open(acl + '.new', 'w') as f:
                f.write(contents)
            os.rename(acl + '.new', acl)

        replace('{"policy": "allow"}')
        daemon, client = self.start_qmp(
            extra=['--object', f'authz-listfile,id=f,filename={acl}'])
        replace('{"policy": "sometimes"}')
        daemon.wait_until(
            lambda: "Parameter 'policy' does not accept value 'sometimes'"
            in daemon.stderr(), 'the failed reload to be reported')
        with open(acl, 'w') as f:
            f.write('{"rules": 7}')
        daemon.wait_until(
            lambda: "Invalid parameter type for 'rules', expected: array"
            in daemon.stderr(), 'the rewritten file to be read')
        self.assertEqual(client.execute('object-del', {'id': 'f'}),
                         {'return': {}})
        # 'f' no longer watches: when 'g', watching the same file, reports
        # the next failure, only 'g' has
        replace('{}')
        self.assertEqual(client.execute('object-add', {
            'qom-type': 'authz-listfile', 'id': 'g', 'filename': acl}),
            {'return': {}})
        replace('{"policy": "never"}')
        message = "Parameter 'policy' does not accept value 'never'"
        daemon.wait_until(lambda: message in daemon.stderr(),
                          'the failed reload of g to be reported')
        self.assertEqual(daemon.stderr().count(message), 1)

if __name__ == '__main__':
    blockd_harness.main()
