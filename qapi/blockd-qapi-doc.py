#!/usr/bin/env python3
"""Generate blockd's QMP reference manual (reStructuredText) from the doc
comments of the core schema and of plugin schema fragments.

Usage: blockd-qapi-doc.py --output FILE.rst TOP-SCHEMA.json [FRAGMENT.json...]

The first file is the core's top schema file; its 'include' expressions
are followed (relative to the including file).  Every further file is a
plugin fragment, whose origin is its file stem (as with
blockd-qapi-embed.py).  Each module that starts with a '= Heading' doc block
becomes a section; each plugin fragment gets a section of its own, and the
values and branches it adds with 'extend-enum'/'extend-union' are also
listed, with their plugin, under the enum or union they extend.

Doc comments follow the QAPI schema language's rules
(docs: specs/qapi-code-gen.rst): a '##' block starting with '@NAME:'
documents NAME; '@member:' paragraphs describe members, arguments and
enum values; 'Features:' introduces feature descriptions; the tagged
sections are Returns, Errors (a blockd addition: the error classes a
command reports, and when), Note/Notes, Example/Examples, Since and TODO.
Continuation lines must be indented at least as far as the text after the
tag.  A malformed doc comment is an error: the manual is part of the
build, so missing or broken documentation fails it.
"""
import argparse
import os
import re
import sys

from qapi_parser import QAPIParseError, parse_schema_text

META_KEYS = ('enum', 'struct', 'union', 'alternate', 'command', 'event',
             'extend-enum', 'extend-union')
TAGS = ('Returns', 'Errors', 'Note', 'Notes', 'Example', 'Examples',
        'Since', 'TODO')
TAG_RE = re.compile(r'(%s):\s*' % '|'.join(TAGS))
MEMBER_RE = re.compile(r'@([A-Za-z0-9_.-]+):\s*')


class DocError(Exception):
    pass


class Entry:
    """One schema expression with its origin and parsed documentation."""

    def __init__(self, expr, doc_lines, fname, line, origin):
        self.expr = expr
        self.fname = fname
        self.line = line
        self.origin = origin
        self.meta = next((k for k in META_KEYS if k in expr), None)
        self.name = expr[self.meta] if self.meta else None
        self.blocks = split_doc_blocks(doc_lines)

    def where(self):
        return '%s:%d' % (self.fname, self.line)


def split_doc_blocks(doc_lines):
    """Return the '##' ... '##' blocks of doc_lines, '#' prefixes removed.

    Comment lines outside such blocks (file headers, remarks) are not
    documentation and are dropped.
    """
    blocks = []
    cur = None
    for raw in doc_lines:
        raw = raw.rstrip()
        if raw == '##':
            if cur is None:
                cur = []
            else:
                blocks.append(cur)
                cur = None
            continue
        if cur is None:
            continue
        if raw == '#':
            cur.append('')
        elif raw.startswith('# '):
            cur.append(raw[2:])
        else:
            raise DocError("doc comment line must start with '# ': %r" % raw)
    if cur is not None:
        raise DocError('doc comment block is not closed with ##')
    return blocks


class DefDoc:
    """The parsed documentation of one definition."""

    def __init__(self, name):
        self.name = name
        self.body = []          # lines of the overview
        self.members = []       # [name, lines]
        self.features = []      # [name, lines]
        self.sections = []      # [tag, lines]
        self.trailer = []       # free text after the members

    def member(self, name):
        for m, text in self.members:
            if m == name:
                return text
        return None


def _add_line(item, line, indent, lineno_desc, strict):
    if line.strip() == '':
        item.append('')
        return
    lead = len(line) - len(line.lstrip(' '))
    if lead < indent:
        # QEMU 7.2 wants continuation lines aligned with the text after
        # the tag; later QEMU indents them by 4.  Accept both unless
        # strict, which the core schema's own test asks for.
        if strict or lead == 0:
            raise DocError('%s: unexpected de-indent (expected at least %d '
                           'spaces): %r' % (lineno_desc, indent, line))
        indent = lead
    item.append(line[indent:])


def parse_def_doc(block, where='<doc>', strict=False):
    """Parse a definition doc block (lines without '#'); first line @NAME:."""
    m = re.fullmatch(r'@([A-Za-z0-9_.-]+):', block[0].strip())
    if not m:
        raise DocError('%s: a definition doc must start with @NAME:' % where)
    doc = DefDoc(m.group(1))
    cur = doc.body
    indent = 0
    mode = 'body'           # body, members, features, sections, trailer
    prev_blank = False
    for line in block[1:]:
        mm = MEMBER_RE.match(line)
        tm = TAG_RE.match(line)
        if line.strip() == 'Features:':
            mode = 'features'
            cur, indent = None, 0
        elif mm and mode in ('body', 'members', 'features'):
            item = [mm.group(1), []]
            if mode == 'features':
                doc.features.append(item)
            else:
                mode = 'members'
                doc.members.append(item)
            cur = item[1]
            rest = line[mm.end():]
            indent = mm.end() if rest else 0
            if rest:
                cur.append(rest)
        elif tm:
            mode = 'sections'
            tag = tm.group(1)
            item = [tag, []]
            doc.sections.append(item)
            cur = item[1]
            rest = line[tm.end():]
            indent = tm.end() if rest else 0
            if rest:
                cur.append(rest)
        elif (mode == 'members' and prev_blank and line.strip()
              and not line.startswith(' ')):
            # Unindented text after a blank line ends the member list.
            mode = 'trailer'
            cur, indent = doc.trailer, 0
            cur.append(line)
        elif cur is None:
            if line.strip():
                raise DocError('%s: text after Features: must describe a '
                               'feature: %r' % (where, line))
        else:
            _add_line(cur, line, indent, where, strict)
        prev_blank = line.strip() == ''
    return doc


def entry_doc(entry):
    """Return (headings, free-form blocks, DefDoc or None) of an entry."""
    headings = []
    freeform = []
    ddoc = None
    for block in entry.blocks:
        if not block:
            continue
        first = block[0]
        if first.startswith('='):
            level = len(first) - len(first.lstrip('='))
            headings.append((level, first[level:].strip(), block[1:]))
        elif first.startswith('@'):
            if ddoc is not None:
                raise DocError('%s: two definition docs for one expression'
                               % entry.where())
            ddoc = parse_def_doc(block, entry.where())
        else:
            freeform.append(block)
    if ddoc is not None and entry.name is not None and ddoc.name != entry.name:
        raise DocError('%s: doc is for %s, but the definition is %s'
                       % (entry.where(), ddoc.name, entry.name))
    return headings, freeform, ddoc


def load_schema(path, origin, seen=None):
    """Parse path and, recursively, the files it includes."""
    if seen is None:
        seen = set()
    path = os.path.normpath(path)
    if path in seen:
        return []
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    entries = []
    for expr, doc, line in parse_schema_text(text, path):
        if 'include' in expr:
            inc = os.path.join(os.path.dirname(path), expr['include'])
            entries.extend(load_schema(inc, origin, seen))
        elif 'pragma' in expr:
            continue
        else:
            entries.append(Entry(expr, doc, path, line, origin))
    return entries


# ---------------------------------------------------------------- rendering

def inline(text):
    """QAPI doc markup to rST: @name references become literals."""
    return re.sub(r'(?<![\w`@])@([A-Za-z0-9_.-]*[A-Za-z0-9_])', r'``\1``',
                  text)


def paragraphs(lines, indent=''):
    out = []
    for line in lines:
        out.append(indent + inline(line) if line else '')
    while out and out[-1] == '':
        out.pop()
    while out and out[0] == '':
        out.pop(0)
    return out


def type_str(t):
    if isinstance(t, list):
        return 'array of ``%s``' % t[0]
    return '``%s``' % t


def member_type(value):
    if isinstance(value, dict):
        return value['type']
    return value


def feature_names(value):
    if not isinstance(value, dict):
        return []
    return [f['name'] if isinstance(f, dict) else f
            for f in value.get('features', [])]


def heading(text, char):
    return [text, char * len(text), '']


class Manual:
    def __init__(self):
        self.out = []
        self.types = {}         # name -> Entry
        self.enum_adds = {}     # enum name -> [(value, origin)]
        self.union_adds = {}    # union name -> [(value, type, origin)]

    def emit(self, lines=()):
        self.out.extend(lines)

    def collect(self, entries):
        for e in entries:
            if e.meta in ('enum', 'struct', 'union', 'alternate'):
                self.types[e.name] = e
        for e in entries:
            if e.meta == 'extend-enum':
                self.enum_adds.setdefault(e.name, []).extend(
                    (v['name'] if isinstance(v, dict) else v, e.origin)
                    for v in e.expr['data'])
            elif e.meta == 'extend-union':
                adds = self.union_adds.setdefault(e.name, [])
                union = self.types.get(e.name)
                tag_enum = None
                if union is not None:
                    base = union.expr.get('base')
                    if isinstance(base, dict):
                        tag_enum = member_type(
                            base.get(union.expr['discriminator']))
                for value, branch in e.expr['data'].items():
                    adds.append((value, member_type(branch), e.origin))
                    known = [v for v, _ in self.enum_adds.get(tag_enum, [])]
                    if tag_enum and value not in known:
                        self.enum_adds.setdefault(tag_enum, []).append(
                            (value, e.origin))

    def member_list(self, title, data, ddoc, where):
        if not data:
            return
        self.emit(['**%s:**' % title, ''])
        for key, value in data.items():
            name = key[1:] if key.startswith('*') else key
            opt = ', optional' if key.startswith('*') else ''
            feats = feature_names(value)
            fstr = ''.join(', %s' % f for f in feats)
            self.emit(['``%s`` (%s%s%s)' % (name, type_str(member_type(value)),
                                           opt, fstr)])
            text = ddoc.member(name) if ddoc else None
            if text is None:
                raise DocError('%s: member %s is not documented'
                               % (where, name))
            self.emit(paragraphs(text, '    ') or ['    (no description)'])
            self.emit([''])

    def enum_values(self, entry, ddoc):
        values = [(v['name'] if isinstance(v, dict) else v, None)
                  for v in entry.expr['data']]
        values += self.enum_adds.get(entry.name, [])
        if not values:
            self.emit(['No values are defined by the core; plugins add '
                       'them.', ''])
            return
        self.emit(['**Values:**', ''])
        for value, origin in values:
            self.emit(['``%s``' % value])
            text = ddoc.member(value) if ddoc else None
            if text:
                self.emit(paragraphs(text, '    '))
            elif origin:
                self.emit(['    provided by plugin %s' % origin])
            else:
                raise DocError('%s: value %s is not documented'
                               % (entry.where(), value))
            if text and origin:
                self.emit(['    (provided by plugin %s)' % origin])
            self.emit([''])

    def sections(self, ddoc, entry):
        for tag, text in ddoc.sections:
            if tag in ('Example', 'Examples'):
                self.emit(['**%s:**' % tag, '', '::', ''])
                lines = list(text)
                while lines and lines[0] == '':
                    lines.pop(0)
                while lines and lines[-1] == '':
                    lines.pop()
                self.emit(['    ' + l if l else '' for l in lines])
                self.emit([''])
            elif tag == 'TODO':
                continue
            else:
                label = {'Notes': 'Note'}.get(tag, tag)
                body = paragraphs(text)
                if body:
                    self.emit(['**%s:** %s' % (label, body[0])] + body[1:])
                self.emit([''])

    def definition(self, entry):
        _, freeform, ddoc = entry_doc(entry)
        expr = entry.expr
        kind = {'enum': 'Enum', 'struct': 'Object', 'union': 'Object',
                'alternate': 'Alternate', 'command': 'Command',
                'event': 'Event'}[entry.meta]
        if ddoc is None:
            raise DocError('%s: %s %s has no documentation'
                           % (entry.where(), entry.meta, entry.name))
        self.emit(heading('%s %s' % (kind, entry.name), '-'))
        for block in freeform:
            self.emit(paragraphs(block) + [''])
        if ddoc.body:
            self.emit(paragraphs(ddoc.body) + [''])
        feats = feature_names(expr)
        if feats:
            self.emit(['This %s has the features: %s.'
                       % (entry.meta, ', '.join('``%s``' % f for f in feats)),
                       ''])
        where = entry.where()
        if entry.meta == 'enum':
            self.enum_values(entry, ddoc)
        elif entry.meta in ('struct', 'union'):
            base = expr.get('base')
            if isinstance(base, str):
                self.emit(['The members of ``%s``, and:' % base, ''])
            elif isinstance(base, dict):
                self.member_list('Members', base, ddoc, where)
            if entry.meta == 'struct':
                self.member_list('Members', expr.get('data', {}), ddoc, where)
            else:
                self.union_branches(entry)
        elif entry.meta == 'alternate':
            self.member_list('One of', expr['data'], ddoc, where)
        elif entry.meta in ('command', 'event'):
            data = expr.get('data')
            title = 'Arguments' if entry.meta == 'command' else 'Data'
            if isinstance(data, str):
                self.emit(['**%s:** the members of ``%s``' % (title, data),
                           ''])
            elif data:
                self.member_list(title, data, ddoc, where)
            else:
                self.emit(['**%s:** none' % title, ''])
            if entry.meta == 'command':
                documented = any(t == 'Returns' for t, _ in ddoc.sections)
                if 'returns' in expr and not documented:
                    self.emit(['**Returns:** %s' % type_str(expr['returns']),
                               ''])
                elif 'returns' not in expr:
                    self.emit(['**Returns:** an empty object', ''])
                if expr.get('allow-oob'):
                    self.emit(['This command may be executed out of band.',
                               ''])
        if ddoc.features:
            self.emit(['**Features:**', ''])
            for name, text in ddoc.features:
                self.emit(['``%s``' % name] + paragraphs(text, '    ') + [''])
        if ddoc.trailer:
            self.emit(paragraphs(ddoc.trailer) + [''])
        self.sections(ddoc, entry)

    def union_branches(self, entry):
        disc = entry.expr['discriminator']
        branches = [(v, member_type(t), None)
                    for v, t in entry.expr.get('data', {}).items()]
        branches += self.union_adds.get(entry.name, [])
        if not branches:
            self.emit(['The core defines no variants: plugins add the '
                       'members for each value of ``%s``.' % disc, ''])
            return
        self.emit(['**Variants**, by the value of ``%s``:' % disc, ''])
        for value, typ, origin in branches:
            by = ' (plugin %s)' % origin if origin else ''
            self.emit(['``%s``%s' % (value, by),
                       '    the members of ``%s``' % typ, ''])

    def extension(self, entry):
        expr = entry.expr
        if entry.meta == 'extend-enum':
            vals = ', '.join('``%s``' % (v['name'] if isinstance(v, dict)
                                         else v) for v in expr['data'])
            self.emit(['* enum ``%s``: adds %s' % (entry.name, vals)])
        else:
            for value, branch in expr['data'].items():
                self.emit(['* union ``%s``: adds the variant ``%s`` (members '
                           'of ``%s``)' % (entry.name, value,
                                           member_type(branch))])

    def render(self, core, fragments):
        self.collect(core + [e for _, es in fragments for e in es])
        self.emit(['=' * 14, 'blockd-qmp-ref', '=' * 14, '',
                   '-' * 27, 'blockd QMP reference manual', '-' * 27, '',
                   ':Manual section: 7',
                   ':Manual group: blockd', ''])
        self.emit(heading('DESCRIPTION', '='))
        self.emit([
            'blockd is controlled through QMP, the QEMU Machine Protocol, '
            'exactly like qemu-storage-daemon 7.2: a monitor (see the '
            '``--monitor`` option of blockd(1)) reads one JSON object per '
            'command and answers with one JSON object per reply, and sends '
            'events as they happen.  This manual lists the commands and '
            'the types of their arguments and results, generated from the '
            'QAPI schema blockd is built from.',
            '',
            'Many types are extensible: the block drivers, export types and '
            'object types are plugins, each of which adds its values and '
            'options.  The plugins known when this manual was built are '
            'included; ``query-qmp-schema`` describes what the running '
            'daemon has, and ``query-plugins`` lists the plugins.',
            ''])
        self.module_sections(core)
        for origin, entries in fragments:
            self.emit(heading('PLUGIN %s' % origin.upper(), '='))
            self.module_sections(entries, nested=True)
            adds = [e for e in entries
                    if e.meta in ('extend-enum', 'extend-union')]
            if adds:
                self.emit(['The plugin extends these core types:', ''])
                for e in adds:
                    self.extension(e)
                self.emit([''])
        self.emit(heading('SEE ALSO', '='))
        self.emit(['blockd(1), qemu-storage-daemon(1)', ''])
        return '\n'.join(self.out) + '\n'

    def module_sections(self, entries, nested=False):
        for e in entries:
            headings, _, _ = entry_doc(e)
            for level, title, text in headings:
                if nested:
                    self.emit(heading(title, '-'))
                else:
                    self.emit(heading(title.upper(), '='))
                if text:
                    self.emit(paragraphs(text) + [''])
            if e.meta in ('extend-enum', 'extend-union'):
                continue
            if e.meta is None:
                raise DocError('%s: unknown expression' % e.where())
            self.definition(e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--output', required=True, help='.rst file to write')
    ap.add_argument('schema', help="the core's top schema file")
    ap.add_argument('fragments', nargs='*', help='plugin schema fragments')
    args = ap.parse_args()
    try:
        core = load_schema(args.schema, 'core')
        frags = []
        for path in args.fragments:
            origin = os.path.splitext(os.path.basename(path))[0]
            frags.append((origin, load_schema(path, origin)))
        text = Manual().render(core, frags)
    except (QAPIParseError, DocError, OSError) as e:
        print('blockd-qapi-doc: %s' % e, file=sys.stderr)
        return 1
    tmp = args.output + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
