#!/usr/bin/env python3
"""Checks of blockd's core QAPI schema modules (qapi/*.json).

- every module parses; no name is defined twice; every referenced type
  is defined;
- every definition, member, argument, enum value and feature has a doc
  comment in the strict (QEMU 7.2) layout;
- only the commands and events the core implements are declared;
- every definition has the same members, types, optional flags, features,
  enum values, bases, discriminators and branches as qemu-storage-daemon
  7.2's schema, with 'if' conditions evaluated for a Linux build, except
  where blockd departs on purpose (EXCEPTIONS below).

The 7.2 schema is read from $BLOCKD_QEMU_QAPI_DIR, or else from the
project's shared/specs/qapi-qemu-7.2 beside the checkout; without it the
comparison is skipped (and says so), or fails under BLOCKD_TEST_NO_SKIP=1.
"""
import importlib.util
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
QAPI_DIR = os.path.dirname(HERE)
sys.path.insert(0, QAPI_DIR)

from qapi_parser import parse_schema_text  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    'blockd_qapi_doc', os.path.join(QAPI_DIR, 'blockd-qapi-doc.py'))
qapi_doc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qapi_doc)

TOP = os.path.join(QAPI_DIR, 'blockd-schema.json')
def _reference_dir():
    """QEMU 7.2's schema: $BLOCKD_QEMU_QAPI_DIR, else the project's shared
    specs beside the checkout (read there, never copied into it)."""
    if os.environ.get('BLOCKD_QEMU_QAPI_DIR'):
        return os.environ['BLOCKD_QEMU_QAPI_DIR']
    candidates = [os.path.join(QAPI_DIR, '..', '..'), '/work']
    for base in candidates:
        path = os.path.normpath(os.path.join(base, 'shared', 'specs',
                                             'qapi-qemu-7.2'))
        if os.path.isdir(path):
            return path
    return os.path.normpath(os.path.join(candidates[0], 'shared', 'specs',
                                         'qapi-qemu-7.2'))


REFERENCE_DIR = _reference_dir()
# tools/dev test forbids skips: there a missing reference is a failure.
NO_SKIP = os.environ.get('BLOCKD_TEST_NO_SKIP') == '1'

BUILTINS = {'str', 'int', 'int8', 'int16', 'int32', 'int64', 'uint8',
            'uint16', 'uint32', 'uint64', 'size', 'number', 'bool', 'null',
            'any', 'QType'}
TYPE_KINDS = ('enum', 'struct', 'union', 'alternate')
KINDS = TYPE_KINDS + ('command', 'event')

# The commands the core declares in this issue; the others come with
# their implementations.
CORE_COMMANDS = {
    'qmp_capabilities', 'query-version', 'query-commands', 'quit',
    'query-qmp-schema', 'object-add', 'object-del', 'qom-list-types',
    'qom-list-properties', 'chardev-add', 'chardev-remove',
    'query-chardev', 'query-chardev-backends', 'query-plugins',
    'chardev-change', 'chardev-send-break', 'ringbuf-write', 'ringbuf-read',
    'qom-list', 'qom-get', 'qom-set',
    'blockdev-add', 'blockdev-del', 'x-blockdev-set-iothread',
    'block-export-add', 'block-export-del', 'query-block-exports',
    'query-named-block-nodes', 'query-block', 'query-blockstats',
    'x-debug-query-block-graph', 'block_resize', 'blockdev-reopen',
    'block-set-write-threshold',
    'block-dirty-bitmap-add', 'block-dirty-bitmap-remove',
    'block-dirty-bitmap-clear', 'block-dirty-bitmap-enable',
    'block-dirty-bitmap-disable', 'block-dirty-bitmap-merge',
    'x-debug-block-dirty-bitmap-sha256',
    'blockdev-snapshot-internal-sync',
    'blockdev-snapshot-delete-internal-sync',
    'query-jobs', 'job-pause', 'job-resume', 'job-cancel', 'job-complete',
    'job-dismiss', 'job-finalize', 'query-block-jobs',
    'block-job-set-speed', 'block-job-cancel', 'block-job-pause',
    'block-job-resume', 'block-job-complete', 'block-job-dismiss',
    'block-job-finalize',
    'blockdev-snapshot', 'blockdev-snapshot-sync', 'change-backing-file',
    'transaction',
}
# The events the core emits.
CORE_EVENTS = {'BLOCK_EXPORT_DELETED', 'BLOCK_IO_ERROR',
               'BLOCK_WRITE_THRESHOLD', 'JOB_STATUS_CHANGE',
               'BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED',
               'BLOCK_JOB_ERROR', 'BLOCK_JOB_READY', 'BLOCK_JOB_PENDING',
               'BLOCK_IMAGE_CORRUPTED'}
# Conditions true for qemu-storage-daemon 7.2 on Linux as Debian builds it
# (checked against its query-qmp-schema), for the definitions blockd has.
TRUE_CONDITIONS = {'CONFIG_LINUX', 'CONFIG_POSIX', 'HAVE_IPPROTO_MPTCP'}
# Departures from 7.2, each on purpose.
EXTENSIBLE_ENUMS = {'BlockdevDriver', 'BlockExportType', 'ObjectType',
                    'ImageInfoSpecificKind'}
EXTENSIBLE_UNIONS = {'BlockdevOptions', 'BlockExportOptions',
                     'ObjectOptions', 'ImageInfoSpecific',
                     'BlockStatsSpecific', 'BlockdevCreateOptions',
                     'BlockdevAmendOptions'}
SUBSET_ENUMS = {'ChardevBackendKind'}       # socket and stdio only
SUBSET_UNIONS = {'ChardevBackend'}
BLOCKD_OWN = {'PluginState', 'PluginInfo', 'query-plugins'}
# Definitions taken from a QEMU newer than 7.2, as that QEMU has them.
NEWER_QEMU = {'BlockExportIothreads'}           # 10.1: multi-threaded exports
# Members whose type a newer QEMU widened: (definition, member) -> 7.2's
# type, and the type blockd has (the newer QEMU's).
WIDENED_MEMBERS = {
    ('BlockExportOptions', 'iothread'): ('str', 'BlockExportIothreads'),
}


def load(path, seen=None):
    """Return [(expr, doc_lines, file, line)] of path and its includes."""
    seen = set() if seen is None else seen
    path = os.path.normpath(path)
    if path in seen:
        return []
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    out = []
    for expr, doc, line in parse_schema_text(text, path):
        if 'include' in expr:
            out += load(os.path.join(os.path.dirname(path),
                                     expr['include']), seen)
        elif 'pragma' not in expr:
            out.append((expr, doc, path, line))
    return out


def kind_of(expr):
    return next(k for k in KINDS if k in expr)


def definitions(entries):
    defs = {}
    dups = []
    for expr, _, fname, line in entries:
        name = expr[kind_of(expr)]
        if name in defs:
            dups.append('%s:%d: %s is already defined' % (fname, line, name))
        defs[name] = expr
    return defs, dups


def cond_true(cond):
    if cond is None:
        return True
    if isinstance(cond, str):
        return cond in TRUE_CONDITIONS
    if 'all' in cond:
        return all(cond_true(c) for c in cond['all'])
    if 'any' in cond:
        return any(cond_true(c) for c in cond['any'])
    if 'not' in cond:
        return not cond_true(cond['not'])
    raise ValueError('bad condition %r' % (cond,))


def features(value):
    if not isinstance(value, dict):
        return ()
    return tuple(sorted((f['name'] if isinstance(f, dict) else f)
                        for f in value.get('features', [])
                        if not isinstance(f, dict) or cond_true(f.get('if'))))


def type_ref(value):
    t = value['type'] if isinstance(value, dict) else value
    return tuple(t) if isinstance(t, list) else t


def members(data):
    """Normalize a MEMBERS object: [(name, optional, type, features)]."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict) and not cond_true(value.get('if')):
            continue
        out.append((key.lstrip('*'), key.startswith('*'), type_ref(value),
                    features(value)))
    return out


def branches(data):
    return {k: type_ref(v) for k, v in data.items()
            if not isinstance(v, dict) or cond_true(v.get('if'))}


def enum_values(data):
    return [(v['name'] if isinstance(v, dict) else v, features(v))
            for v in data
            if not isinstance(v, dict) or cond_true(v.get('if'))]


def normalize(expr):
    """The parts of a definition that the wire protocol depends on."""
    kind = kind_of(expr)
    n = {'kind': kind, 'features': features(expr)}
    base = expr.get('base')
    if isinstance(base, dict):
        base = members(base)
    data = expr.get('data')
    if kind == 'enum':
        n['values'] = enum_values(data)
    elif kind == 'struct':
        n['base'] = base
        n['members'] = members(data)
    elif kind == 'union':
        n['base'] = base
        n['discriminator'] = expr['discriminator']
        n['branches'] = branches(data)
    elif kind == 'alternate':
        n['branches'] = branches(data)
    else:
        n['data'] = members(data) if isinstance(data, dict) else data
        for key in ('returns', 'boxed', 'allow-oob', 'allow-preconfig',
                    'coroutine'):
            if key in expr:
                n[key] = type_ref(expr[key]) if key == 'returns' else expr[key]
    return n


def referenced_types(expr):
    kind = kind_of(expr)
    refs = []

    def add(t):
        if isinstance(t, list):
            t = t[0]
        refs.append(t)

    def add_members(data):
        for value in data.values():
            add(value['type'] if isinstance(value, dict) else value)

    base = expr.get('base')
    if isinstance(base, str):
        add(base)
    elif isinstance(base, dict):
        add_members(base)
    data = expr.get('data')
    if kind in ('struct', 'union', 'alternate'):
        add_members(data)
    elif kind in ('command', 'event'):
        if isinstance(data, str):
            add(data)
        elif data:
            add_members(data)
        if 'returns' in expr:
            add(expr['returns'])
    return refs


class CoreSchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.entries = load(TOP)
        cls.defs, cls.dups = definitions(cls.entries)

    def test_top_file_includes_every_module(self):
        modules = {os.path.normpath(os.path.join(QAPI_DIR, f))
                   for f in os.listdir(QAPI_DIR)
                   if f.endswith('.json') and f != 'blockd-schema.json'}
        loaded = {fname for _, _, fname, _ in self.entries}
        self.assertEqual(modules, loaded)
        with open(TOP, encoding='utf-8') as f:
            top = parse_schema_text(f.read(), TOP)
        self.assertTrue(all('include' in e for e, _, _ in top),
                        'the top file holds only include lines')

    def test_no_duplicates(self):
        self.assertEqual(self.dups, [])

    def test_references_defined(self):
        missing = []
        for expr, _, fname, line in self.entries:
            for t in referenced_types(expr):
                if t not in BUILTINS and t not in self.defs:
                    missing.append('%s:%d: %s' % (fname, line, t))
        self.assertEqual(missing, [])

    def test_union_discriminators(self):
        for name, expr in self.defs.items():
            if 'union' not in expr:
                continue
            base = expr['base']
            base = base if isinstance(base, dict) else \
                self.defs[base]['data']
            tag = base.get(expr['discriminator'])
            self.assertIsNotNone(tag, '%s: discriminator is a required '
                                 'base member' % name)
            tag_enum = self.defs[type_ref(tag)]
            self.assertIn('enum', tag_enum, name)
            values = {v for v, _ in enum_values(tag_enum['data'])}
            self.assertLessEqual(set(expr['data']), values, name)

    def test_only_core_commands_and_events(self):
        commands = {n for n, e in self.defs.items() if 'command' in e}
        self.assertEqual(commands, CORE_COMMANDS)
        self.assertEqual({n for n, e in self.defs.items() if 'event' in e},
                         CORE_EVENTS)

    def test_everything_documented(self):
        problems = []
        for expr, doc, fname, line in self.entries:
            where = '%s:%d' % (fname, line)
            name = expr[kind_of(expr)]
            try:
                blocks = [b for b in qapi_doc.split_doc_blocks(doc)
                          if b and b[0].startswith('@')]
                if len(blocks) != 1:
                    problems.append('%s: %s needs one doc block' %
                                    (where, name))
                    continue
                ddoc = qapi_doc.parse_def_doc(blocks[0], where, strict=True)
            except qapi_doc.DocError as e:
                problems.append(str(e))
                continue
            if ddoc.name != name:
                problems.append('%s: doc names %s' % (where, ddoc.name))
            if not ''.join(ddoc.body).strip():
                problems.append('%s: %s has no description' % (where, name))
            want = []
            data = expr.get('data')
            base = expr.get('base')
            if isinstance(base, dict):
                want += [m[0] for m in members(base)]
            if 'enum' in expr:
                want += [v for v, _ in enum_values(data)]
            elif 'union' not in expr and isinstance(data, dict):
                want += [k.lstrip('*') for k in data]
            got = [m for m, _ in ddoc.members]
            for m, text in ddoc.members:
                if not ''.join(text).strip():
                    problems.append('%s: @%s has no text' % (where, m))
            if sorted(got) != sorted(want):
                problems.append('%s: %s documents %s, has %s'
                                % (where, name, got, want))
            feats = set(features(expr))
            for value in (data.values() if isinstance(data, dict) else []):
                feats |= set(features(value))
            if sorted(f for f, _ in ddoc.features) != sorted(feats):
                problems.append('%s: %s features documented %s, has %s'
                                % (where, name, ddoc.features, feats))
        self.assertEqual(problems, [])

    def test_manual_generates(self):
        core = qapi_doc.load_schema(TOP, 'core')
        frag = os.path.join(QAPI_DIR, '..', 'plugins', 'block-null',
                            'block-null.json')
        text = qapi_doc.Manual().render(
            core, [('block-null', qapi_doc.load_schema(frag, 'block-null'))])
        for name in CORE_COMMANDS:
            self.assertIn('Command %s\n' % name, text)
        # The plugin's values appear under the core enum and union.
        driver = text[text.index('Enum BlockdevDriver\n'):]
        driver = driver[:driver.index('\nEnum ')]
        self.assertIn('``null-co``', driver)
        self.assertIn('plugin block-null', driver)
        self.assertIn('Object BlockdevOptionsNull\n', text)

    def test_doc_parser_rejects_bad_layout(self):
        block = ['@T:', '', 'A type.', '', '@m: first line',
                 '  misaligned continuation']
        with self.assertRaises(qapi_doc.DocError):
            qapi_doc.parse_def_doc(block, 'x.json:1', strict=True)
        doc = qapi_doc.parse_def_doc(block, 'x.json:1')
        self.assertEqual(doc.member('m'),
                         ['first line', 'misaligned continuation'])


@unittest.skipUnless(NO_SKIP or os.path.isdir(REFERENCE_DIR),
                     'no qemu 7.2 QAPI schema at %s' % REFERENCE_DIR)
class SameAsQemu72Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.core, _ = definitions(load(TOP))
        # qsd-qapi-schema.json names the modules by their place in the
        # QEMU tree; the reference copy has them side by side.
        with open(os.path.join(REFERENCE_DIR, 'qsd-qapi-schema.json'),
                  encoding='utf-8') as f:
            top = parse_schema_text(f.read(), 'qsd-qapi-schema.json')
        ref, seen = [], set()
        for expr, _, _ in top:
            ref += load(os.path.join(REFERENCE_DIR,
                                     os.path.basename(expr['include'])),
                        seen)
        cls.ref = {}
        for expr, _, _, _ in ref:
            if cond_true(expr.get('if')):
                cls.ref[expr[kind_of(expr)]] = expr

    def test_blockd_own_definitions_are_not_in_qemu(self):
        for name in BLOCKD_OWN:
            self.assertIn(name, self.core)
            self.assertNotIn(name, self.ref)

    def test_same_as_qemu(self):
        diffs = []
        for name, expr in sorted(self.core.items()):
            if name in BLOCKD_OWN or name in NEWER_QEMU:
                continue
            if name not in self.ref:
                diffs.append('%s: not in qemu 7.2' % name)
                continue
            mine, theirs = normalize(expr), normalize(self.ref[name])
            for part in ('base', 'members'):
                for i, m in enumerate(mine.get(part) or []):
                    widened = WIDENED_MEMBERS.get((name, m[0]))
                    if widened and m[2] == widened[1]:
                        mine[part][i] = (m[0], m[1], widened[0], m[3])
            if name in EXTENSIBLE_ENUMS:
                self.assertEqual(mine['values'], [], name)
                mine['values'] = theirs['values']
            elif name in EXTENSIBLE_UNIONS:
                self.assertEqual(mine['branches'], {}, name)
                mine['branches'] = theirs['branches']
            elif name in SUBSET_ENUMS:
                self.assertTrue(mine['values'])
                kept = [v for v in theirs['values'] if v in mine['values']]
                self.assertEqual(mine['values'], kept, name)
                theirs['values'] = kept
            elif name in SUBSET_UNIONS:
                self.assertTrue(mine['branches'])
                kept = {k: v for k, v in theirs['branches'].items()
                        if k in mine['branches']}
                theirs['branches'] = kept
            if mine != theirs:
                diffs.append('%s:\n  blockd %r\n  qemu   %r'
                             % (name, mine, theirs))
        self.assertEqual(diffs, [], '\n'.join(diffs))

    def test_departures_are_real(self):
        """Each listed exception still differs from 7.2 (else drop it)."""
        for name in NEWER_QEMU:
            self.assertIn(name, self.core)
            self.assertNotIn(name, self.ref)
        for (name, member), (old, new) in WIDENED_MEMBERS.items():
            n = normalize(self.core[name])
            types = {m[0]: m[2] for m in (n.get('base') or [])
                     + (n.get('members') or [])}
            self.assertEqual(types.get(member), new, (name, member))
        for name in EXTENSIBLE_ENUMS | SUBSET_ENUMS:
            self.assertNotEqual(normalize(self.core[name])['values'],
                                normalize(self.ref[name])['values'], name)
        for name in EXTENSIBLE_UNIONS | SUBSET_UNIONS:
            self.assertNotEqual(normalize(self.core[name])['branches'],
                                normalize(self.ref[name])['branches'], name)


if __name__ == '__main__':
    unittest.main()
