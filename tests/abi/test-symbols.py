#!/usr/bin/env python3
"""The daemon exports exactly the plugin API: the bd_* functions it
defines in its dynamic symbol table are the functions declared in
plugin-api/blockd/*.h and the names in core/blockd.dynlist, and no other
symbol the project defines is exported.
"""
import argparse
import glob
import os
import re

import abitest


def strip_c_comments(text):
    return re.sub(r'/\*.*?\*/|//[^\n]*', ' ', text, flags=re.S)


def without_static_inline(text):
    """@text without its static inline functions (header-only helpers
    such as <blockd/json.h>'s, which are not exported): each from
    "static inline" to the brace that closes its body."""
    out = []
    pos = 0
    while True:
        start = text.find('static inline', pos)
        if start < 0:
            break
        brace = text.find('{', start)
        depth, j = 0, brace
        while True:
            if text[j] == '{':
                depth += 1
            elif text[j] == '}':
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append(text[pos:start])
        pos = j + 1
    out.append(text[pos:])
    return ' '.join(out)


def header_functions(headers_dir):
    """Names of the bd_* functions declared in the public headers."""
    names = set()
    for path in sorted(glob.glob(os.path.join(headers_dir, '*.h'))):
        with open(path, encoding='utf-8') as f:
            text = strip_c_comments(f.read())
        # Drop preprocessor directives, with their continuation lines.
        text = re.sub(r'^[ \t]*#(?:[^\n]*\\\n)*[^\n]*', ' ', text, flags=re.M)
        text = without_static_inline(text)
        for stmt in re.split(r'[;{}]', text):
            stmt = ' '.join(stmt.split())
            if stmt.startswith('typedef '):
                continue
            m = re.match(r'(?:extern )?[A-Za-z_][\w \*]*?\b(bd_\w+) ?\(',
                         stmt)
            if m:
                names.add(m.group(1))
    return names


def dynlist_names(path):
    with open(path, encoding='utf-8') as f:
        text = strip_c_comments(f.read())
    return set(re.findall(r'([A-Za-z_]\w*)\s*;', text))


def nm_defined(nm, path, dynamic):
    """{name: type letter} of the defined global symbols of @path."""
    cmd = [nm, '--defined-only'] + (['-D'] if dynamic else ['-g'])
    out = abitest.run_ok(cmd + [path])
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2].split('@')[0]] = parts[1]
    return syms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--nm', required=True)
    ap.add_argument('--blockd', required=True)
    ap.add_argument('--headers', required=True,
                    help='plugin-api/blockd in the source tree')
    ap.add_argument('--dynlist', required=True)
    ap.add_argument('--objects', required=True, nargs='+',
                    help="the project's own archives and objects")
    args = ap.parse_args()
    t = abitest.Checker('exported symbols')

    declared = header_functions(args.headers)
    listed = dynlist_names(args.dynlist)
    exported = nm_defined(args.nm, args.blockd, dynamic=True)
    functions = {n for n, ty in exported.items()
                 if n.startswith('bd_') and ty in 'TtWi'}
    t.check(len(declared) > 0, 'no function found in %s' % args.headers)

    def differ(a, a_name, b, b_name):
        t.check(a == b, '%s and %s differ:\n  only in %s: %s\n  only in %s: '
                '%s' % (a_name, b_name, a_name, sorted(a - b) or '-',
                        b_name, sorted(b - a) or '-'))

    differ(functions, 'functions blockd exports', declared,
           'functions the public headers declare')
    differ(listed, 'core/blockd.dynlist', declared,
           'functions the public headers declare')

    own = {}
    for path in args.objects:
        own.update(nm_defined(args.nm, path, dynamic=False))
    own.pop('main', None)
    leaked = sorted(n for n in exported if n not in declared and
                    (n in own or re.match(r'(bd_|Bd|BD_|blockd)', n)))
    t.check(not leaked, 'blockd exports project symbols outside the plugin '
            'API: %s' % leaked)
    print('exported API: %s' % ', '.join(sorted(functions)))
    t.finish()


if __name__ == '__main__':
    main()
