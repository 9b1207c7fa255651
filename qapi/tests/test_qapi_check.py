#!/usr/bin/env python3
"""Tests of the QAPI fragment checker and embedder (stdlib unittest)."""
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr

# qapi/, where the tools under test are
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

_spec = importlib.util.spec_from_file_location(
    'blockd_qapi_embed', os.path.join(HERE, 'blockd-qapi-embed.py'))
embedmod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(embedmod)

from qapi_check import SchemaError  # noqa: E402
from qapi_parser import QAPIParseError  # noqa: E402

CORE = """
##
# @Drv:
#
# Drivers.
##
{ 'enum': 'Drv', 'data': [] }
{ 'union': 'Opts', 'base': { 'driver': 'Drv', '*ro': 'bool' },
  'discriminator': 'driver', 'data': {} }
"""


class EmbedTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='qapi-test-')
        os.chmod(self.dir, 0o700)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        return path

    def embed(self, text, bases=(), origin='t', name='frag.json'):
        path = self.write(name, text)
        return json.loads(embedmod.embed(path, origin, bases=bases))

    def fails(self, text, needle, bases=()):
        with self.assertRaises((SchemaError, QAPIParseError)) as cm:
            self.embed(text, bases)
        self.assertIn(needle, str(cm.exception))
        return str(cm.exception)

    def test_canonical_form(self):
        out = self.embed(CORE, origin='core')
        self.assertEqual(out['origin'], 'core')
        self.assertEqual([e['info'] for e in out['exprs']],
                         ['frag.json:7', 'frag.json:8'])
        self.assertEqual(out['exprs'][0]['expr'],
                         {'enum': 'Drv', 'data': []})
        self.assertEqual(out['exprs'][0]['doc'], '@Drv:\n\nDrivers.\n')
        self.assertIsNone(out['exprs'][1]['doc'])

    def test_include_and_pragma(self):
        self.write('sub/mod.json', "{ 'struct': 'S', 'data': {'a': 'int'} }")
        out = self.embed("{ 'pragma': { 'doc-required': true } }\n"
                         "{ 'include': 'sub/mod.json' }\n"
                         "{ 'command': 'c', 'data': 'S' }\n")
        self.assertEqual([e['info'] for e in out['exprs']],
                         ['mod.json:1', 'frag.json:3'])

    def test_missing_include(self):
        self.fails("{ 'include': 'nope.json' }",
                   "frag.json:1: cannot find included file 'nope.json'")

    def test_if_evaluated(self):
        out = self.embed(
            "{ 'enum': 'E', 'data': [ 'a', { 'name': 'w', 'if': '_WIN32' },"
            " { 'name': 'l', 'if': 'CONFIG_LINUX' } ] }\n"
            "{ 'struct': 'W', 'data': {}, 'if': { 'not': 'CONFIG_POSIX' } }\n"
            "{ 'struct': 'S', 'data': { 'x': { 'type': 'int',"
            " 'if': { 'any': [ 'CONFIG_SPICE', 'CONFIG_LINUX' ] } },"
            " 'y': { 'type': 'int', 'if': { 'all': [ 'CONFIG_SPICE',"
            " 'CONFIG_LINUX' ] } } } }\n")
        exprs = [e['expr'] for e in out['exprs']]
        self.assertEqual(exprs, [{'enum': 'E', 'data': ['a', 'l']},
                                 {'struct': 'S', 'data': {'x': 'int'}}])

    def test_unknown_key(self):
        self.fails("\n{ 'struct': 'S', 'data': {}, 'bogus': true }",
                   "frag.json:2: struct 'S' has unknown key 'bogus'")

    def test_missing_key(self):
        self.fails("{ 'union': 'U', 'data': {} }", "lacks key 'base'")

    def test_unknown_type(self):
        self.fails("{ 'struct': 'S', 'data': { 'a': 'Nope' } }",
                   "member 'a' uses unknown type 'Nope'")
        self.fails("{ 'command': 'c', 'returns': ['Nope'] }",
                   "unknown type 'Nope'")

    def test_bad_names(self):
        self.fails("{ 'struct': 'S', 'data': { 'a b': 'int' } }",
                   "invalid member name 'a b'")
        self.fails("{ 'struct': 'S', 'data': { '*has-x': 'int' } }",
                   "reserved")
        self.fails("{ 'struct': 'q_s', 'data': {} }", "invalid struct name")
        self.fails("{ 'enum': 'E', 'data': [ 'a', 'a' ] }",
                   "enum 'E' already has value 'a'")

    def test_duplicate_definition(self):
        self.fails("{ 'enum': 'E', 'data': [] }\n{ 'enum': 'E', 'data': [] }",
                   "frag.json:2: 'E' is already defined at frag.json:1")

    def test_union_rules(self):
        self.fails("{ 'enum': 'E', 'data': ['a'] }\n"
                   "{ 'union': 'U', 'base': { 'k': 'str' },"
                   " 'discriminator': 'k', 'data': {} }",
                   "must be of enum type")
        self.fails("{ 'enum': 'E', 'data': ['a'] }\n"
                   "{ 'union': 'U', 'base': { '*k': 'E' },"
                   " 'discriminator': 'k', 'data': {} }",
                   "not a mandatory member")
        self.fails("{ 'enum': 'E', 'data': ['a'] }\n"
                   "{ 'struct': 'S', 'data': {} }\n"
                   "{ 'union': 'U', 'base': { 'k': 'E' },"
                   " 'discriminator': 'k', 'data': { 'b': 'S' } }",
                   "branch 'b' of union 'U' is not a value of enum 'E'")
        self.fails("{ 'enum': 'E', 'data': ['a'] }\n"
                   "{ 'union': 'U', 'base': { 'k': 'E' },"
                   " 'discriminator': 'k', 'data': { 'a': 'int' } }",
                   "must be struct")

    def test_alternate_rules(self):
        self.embed("{ 'struct': 'S', 'data': {} }\n"
                   "{ 'alternate': 'A', 'data': { 's': 'S', 'n': 'null',"
                   " 'i': 'int', 'b': 'bool', 't': 'str' } }")
        self.fails("{ 'enum': 'E', 'data': [] }\n"
                   "{ 'alternate': 'A', 'data': { 'e': 'E', 't': 'str' } }",
                   "cannot be told apart")
        self.fails("{ 'alternate': 'A', 'data': { 'i': 'int',"
                   " 'n': 'number' } }", "cannot be told apart")
        self.fails("{ 'alternate': 'A', 'data': { '*i': 'int' } }",
                   "invalid branch name")

    def test_features(self):
        out = self.embed("{ 'struct': 'S', 'data': { 'a': { 'type': 'int',"
                         " 'features': [ 'deprecated' ] } },"
                         " 'features': [ { 'name': 'x', 'if': '_WIN32' } ] }")
        self.assertEqual(out['exprs'][0]['expr'],
                         {'struct': 'S', 'data': {'a': {
                             'type': 'int', 'features': ['deprecated']}}})
        self.fails("{ 'struct': 'S', 'data': {}, 'features': [ [] ] }",
                   "feature must be")

    def test_extensions_with_base(self):
        core = self.write('core.json', CORE)
        out = self.embed("{ 'struct': 'O', 'data': { '*n': 'int' } }\n"
                         "{ 'extend-union': 'Opts', 'data': { 'x': 'O' } }\n"
                         "{ 'extend-enum': 'Drv', 'data': [ 'y' ] }\n",
                         bases=[core])
        self.assertEqual(len(out['exprs']), 3)
        self.fails("{ 'extend-union': 'Opts', 'data': { 'x': 'int' } }",
                   "must be struct", bases=[core])
        self.fails("{ 'extend-enum': 'Opts', 'data': [ 'x' ] }",
                   "'Opts' is a union, not a enum", bases=[core])
        self.fails("{ 'struct': 'O', 'data': {} }\n"
                   "{ 'extend-union': 'Opts', 'data': { 'x': 'O' } }\n"
                   "{ 'extend-union': 'Opts', 'data': { 'x': 'O' } }\n",
                   "frag.json:3: union 'Opts' already has branch 'x'",
                   bases=[core])

    def test_extension_needs_base(self):
        self.fails("{ 'extend-enum': 'Drv', 'data': [ 'y' ] }",
                   "unknown enum 'Drv' (is the schema that defines it "
                   "passed with --base?)")

    def test_command_and_event(self):
        self.embed("{ 'struct': 'S', 'data': {} }\n"
                   "{ 'command': 'c', 'data': { '*a': ['S'] },"
                   " 'returns': 'S', 'allow-oob': true }\n"
                   "{ 'event': 'EV', 'data': 'S' }\n"
                   "{ 'command': 'b', 'data': 'S', 'boxed': true }\n")
        self.fails("{ 'command': 'c', 'allow-oob': 'yes' }",
                   "'allow-oob' must be true or false")
        self.fails("{ 'command': 'c', 'data': 'int' }", "must be struct")

    def test_parse_error_location(self):
        self.fails("{ 'struct': 'S',\n  'data': { 'a' 'int' } }",
                   "frag.json:2:")

    def test_command_line(self):
        frag = self.write('p.json', "{ 'struct': 'S', 'data': {} }\n")
        out = os.path.join(self.dir, 'p.h')
        dep = os.path.join(self.dir, 'p.d')
        self.assertEqual(embedmod.main(['--name', 'p_schema', '--output', out,
                                        '--depfile', dep, frag]), 0)
        with open(out, encoding='utf-8') as f:
            text = f.read()
        self.assertIn('static const char p_schema[] =', text)
        self.assertIn('\\"origin\\":\\"p\\"', text)
        with open(dep, encoding='utf-8') as f:
            self.assertIn(frag, f.read())
        bad = self.write('bad.json', "{ 'struct': 'S' }\n")
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(embedmod.main(['--name', 'x', '--output', out,
                                            bad]), 1)
        self.assertIn("bad.json:1: struct 'S' lacks key 'data'",
                      err.getvalue())

    def test_c_string_escapes(self):
        self.assertEqual(embedmod.c_string('a"b\\??'),
                         '    "a\\"b\\\\\\?\\?"')


if __name__ == '__main__':
    unittest.main()
