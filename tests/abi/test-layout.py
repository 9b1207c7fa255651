#!/usr/bin/env python3
"""The 1.0 layout of the plugin ABI's structs, pinned: the size of every
public struct and the offset of every member, as a plugin built against
the headers sees them, must stay what layout-1.0.txt records.

A later minor may append a member to a size-prefixed struct (one with
struct_size, or one the core allocates: BdBlockLimits): the new member
must lie beyond the struct's pinned size, and is then reported so that
it gets pinned too (--update).  Anything
else that moves (a member's offset, a pinned size shrinking, a member
gone, a struct without struct_size growing) fails.

  test-layout.py --cc CC --pkg-config PKG --headers DIR --pinned FILE
                 --workdir DIR [--update]
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import abitest

STRUCT = re.compile(
    r'(?:typedef\s+)?struct\s+(Bd\w+)\s*\{(.*?)\}\s*(?:\w+\s*)?;', re.S)


def strip_c_comments(text):
    return re.sub(r'/\*.*?\*/|//[^\n]*', ' ', text, flags=re.S)


def public_structs(headers):
    """[(struct name, [member names])] of every struct the headers define
    with a body, in header order."""
    found = []
    for path in sorted(glob.glob(os.path.join(headers, '*.h'))):
        with open(path, encoding='utf-8') as f:
            text = strip_c_comments(f.read())
        text = re.sub(r'^[ \t]*#(?:[^\n]*\\\n)*[^\n]*', ' ', text, flags=re.M)
        for m in STRUCT.finditer(text):
            members = []
            for stmt in m.group(2).split(';'):
                stmt = ' '.join(stmt.split())
                if not stmt:
                    continue
                fp = re.search(r'\(\s*\*\s*(\w+)\s*\)', stmt)
                if fp:
                    members.append(fp.group(1))
                    continue
                name = re.search(r'(\w+)\s*(?:\[[^\]]*\])?\s*$', stmt)
                members.append(name.group(1))
            found.append((m.group(1), members))
    return found


def measure(cc, pkg_config, headers, structs, workdir):
    """{'S': size, 'S.m': offset} as the compiler lays them out."""
    src = ['#include <stddef.h>', '#include <stdio.h>',
           '#include <blockd/blockd.h>', '', 'int main(void)', '{']
    for name, members in structs:
        src.append('    printf("%s %%zu\\n", sizeof(struct %s));'
                   % (name, name))
        for m in members:
            src.append('    printf("%s.%s %%zu\\n", offsetof(struct %s, %s));'
                       % (name, m, name, m))
    src += ['    return 0;', '}', '']
    c = os.path.join(workdir, 'layout.c')
    exe = os.path.join(workdir, 'layout')
    with open(c, 'w', encoding='utf-8') as f:
        f.write('\n'.join(src))
    flags = subprocess.run([pkg_config, '--cflags', 'glib-2.0',
                            'json-glib-1.0'], check=True, text=True,
                           capture_output=True).stdout.split()
    subprocess.run([cc, '-std=gnu11', '-I', os.path.dirname(headers)] +
                   flags + ['-o', exe, c], check=True)
    out = subprocess.run([exe], check=True, text=True,
                         capture_output=True).stdout
    return dict(line.split() for line in out.splitlines())


def read_pinned(path):
    pinned = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                key, value = line.split()
                pinned[key] = value
    return pinned


# Structs the core allocates for the plugin (it fills them in): they may
# grow at the end without a struct_size.
CORE_ALLOCATED = {'BdBlockLimits'}


def compare(t, pinned, got, structs):
    sized = {name for name, members in structs
             if 'struct_size' in members or name in CORE_ALLOCATED}
    for key, value in pinned.items():
        if key not in got:
            t.check(False, '%s is pinned at %s but is gone' % (key, value))
            continue
        if '.' in key or key not in sized:
            t.equal(got[key], value, key)
        else:
            t.check(int(got[key]) >= int(value),
                    '%s: pinned size %s, now %s (smaller)'
                    % (key, value, got[key]))
    for key, value in got.items():
        if key in pinned:
            continue
        struct = key.split('.')[0]
        if '.' in key and struct in sized and struct in pinned and \
                int(value) >= int(pinned[struct]):
            t.check(False, '%s (offset %s) is appended after the pinned '
                    'layout: pin it with --update' % (key, value))
        else:
            t.check(False, '%s (%s) is not in the pinned layout, and is not '
                    'appended to a size-prefixed struct' % (key, value))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cc', required=True)
    ap.add_argument('--pkg-config', required=True)
    ap.add_argument('--headers', required=True)
    ap.add_argument('--pinned', required=True)
    ap.add_argument('--workdir', required=True)
    ap.add_argument('--update', action='store_true')
    args = ap.parse_args()
    structs = public_structs(args.headers)
    os.makedirs(args.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='layout-', dir=args.workdir)
    try:
        got = measure(args.cc, args.pkg_config, args.headers, structs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.update:
        with open(args.pinned, 'w', encoding='utf-8') as f:
            f.write('# The layout of the plugin ABI 1.0 on x86_64 (LP64), '
                    'pinned by\n# tests/abi/test-layout.py: STRUCT size, '
                    'STRUCT.MEMBER offset.\n')
            for name, members in structs:
                f.write('%s %s\n' % (name, got[name]))
                for m in members:
                    f.write('%s.%s %s\n' % (name, m, got[name + '.' + m]))
        return
    t = abitest.Checker('layout')
    t.check(structs, 'no public struct found in %s' % args.headers)
    compare(t, read_pinned(args.pinned), got, structs)
    t.finish()


if __name__ == '__main__':
    main()
