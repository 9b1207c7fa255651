#!/usr/bin/env python3
"""Check a QAPI schema fragment and embed it in a C header.

Usage: blockd-qapi-embed.py --name VAR --output OUT.h [--origin NAME]
           [--include-path DIR]... [--base TOP.json]... [--depfile DEP]
           FRAGMENT.json

The fragment (and every file it includes) is read, its 'if' conditions are
evaluated for blockd's build, and its expressions are checked: keys of each
kind of definition, names, that referenced types exist (in the fragment,
in the --base schemas such as the core's qapi/blockd-schema.json, or as
built-in types), unions, alternates, features and blockd's 'extend-enum' /
'extend-union' expressions.  The header then defines
`static const char VAR[]` holding the canonical JSON form the daemon's
schema engine reads:

  {"origin": NAME, "exprs": [{"expr": {...}, "doc": TEXT|null,
                              "info": "file.json:LINE"}, ...]}

Errors name the file and line and exit with status 1.
"""
import argparse
import json
import os
import sys

from qapi_parser import QAPIParseError, parse_schema_text
from qapi_check import Checker, SchemaError, check_all, DEFAULT_DEFINES


def doc_text(lines):
    """The last '##' ... '##' comment block of @lines without its '#'
    prefixes, or None."""
    end = None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == '##':
            if end is None:
                end = i
            else:
                body = []
                for line in lines[i + 1:end]:
                    line = line[1:]
                    body.append(line[1:] if line.startswith(' ') else line)
                return '\n'.join(body).strip('\n') + '\n' if body else None
    return None


class Loader:
    """Reads a schema file and its includes into (expr, doc, info)."""

    def __init__(self, include_path):
        self.include_path = include_path
        self.files = []         # every file read, for the depfile

    def _find(self, name, from_dir, info):
        for d in [from_dir] + self.include_path:
            path = os.path.join(d, name)
            if os.path.exists(path):
                return path
        raise SchemaError(info, "cannot find included file '%s'" % name)

    def load(self, path, seen=None):
        seen = set() if seen is None else seen
        real = os.path.realpath(path)
        if real in seen:
            return []
        seen.add(real)
        self.files.append(path)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        fname = os.path.basename(path)
        out = []
        for expr, doc, line in parse_schema_text(text, fname):
            info = '%s:%d' % (fname, line)
            if 'include' in expr:
                if set(expr) != {'include'} or \
                        not isinstance(expr['include'], str):
                    raise SchemaError(info, "'include' must be alone and "
                                      "name a file")
                inc = self._find(expr['include'], os.path.dirname(path), info)
                out.extend(self.load(inc, seen))
            elif 'pragma' in expr:
                if set(expr) != {'pragma'} or \
                        not isinstance(expr['pragma'], dict):
                    raise SchemaError(info, "'pragma' must be alone and "
                                      "hold an object")
            else:
                out.append((expr, doc_text(doc), info))
        return out


def c_string(text, width=72):
    """@text as a sequence of C string literal lines."""
    out = []
    for i in range(0, len(text), width):
        chunk = text[i:i + width]
        esc = (chunk.replace('\\', '\\\\').replace('"', '\\"')
               .replace('?', '\\?').replace('\n', '\\n'))
        out.append('    "%s"' % esc)
    return '\n'.join(out) if out else '    ""'


def embed(fragment, origin, include_path=(), bases=(),
          defines=DEFAULT_DEFINES, loaded=None):
    """Check @fragment and return its canonical JSON text."""
    checker = Checker(defines)
    loader = Loader(list(include_path))
    for base in bases:
        check_all(checker, [(e, i) for e, _, i in loader.load(base)])
    kept = []
    for expr, doc, info in loader.load(fragment):
        pruned = checker.prune(expr, info)
        if pruned is not None:
            kept.append({'expr': pruned, 'doc': doc, 'info': info})
    for e in kept:
        checker.define(e['expr'], e['info'])
    for e in kept:
        checker.check(e['expr'], e['info'])
    if loaded is not None:
        loaded.extend(loader.files)
    return json.dumps({'origin': origin, 'exprs': kept},
                      separators=(',', ':'), ensure_ascii=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--name', required=True, help='C variable name')
    ap.add_argument('--output', required=True, help='header to write')
    ap.add_argument('--origin', help="'core' or the plugin's name "
                    "(default: the fragment's file stem)")
    ap.add_argument('--include-path', action='append', default=[],
                    metavar='DIR', help='where included files are searched '
                    'after the including file\'s directory')
    ap.add_argument('--base', action='append', default=[], metavar='FILE',
                    help='a schema whose definitions the fragment may use '
                    '(not embedded)')
    ap.add_argument('--define', action='append', default=[], metavar='SYM',
                    help="an extra configuration symbol that is true for "
                    "'if' conditions")
    ap.add_argument('--depfile', help='write a Makefile dependency file')
    ap.add_argument('fragment', help='QAPI schema fragment (.json)')
    args = ap.parse_args(argv)

    origin = args.origin or os.path.splitext(
        os.path.basename(args.fragment))[0]
    files = []
    try:
        text = embed(args.fragment, origin, args.include_path, args.base,
                     DEFAULT_DEFINES | set(args.define), files)
    except (QAPIParseError, SchemaError) as e:
        print('%s: %s' % (os.path.basename(sys.argv[0]), e), file=sys.stderr)
        return 1
    except OSError as e:
        print('%s: %s' % (os.path.basename(sys.argv[0]), e), file=sys.stderr)
        return 1

    guard = args.name.upper() + '_H'
    with open(args.output, 'w', encoding='utf-8') as f:
        f.write('/* Generated by blockd-qapi-embed.py from %s; do not edit. */\n'
                % os.path.basename(args.fragment))
        f.write('#ifndef %s\n#define %s\n\n' % (guard, guard))
        f.write('static const char %s[] =\n%s;\n\n' % (args.name,
                                                        c_string(text)))
        f.write('#endif\n')
    if args.depfile:
        with open(args.depfile, 'w', encoding='utf-8') as f:
            f.write('%s: %s\n' % (args.output.replace(' ', '\\ '),
                                  ' '.join(p.replace(' ', '\\ ')
                                           for p in files)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
