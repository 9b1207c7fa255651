#!/usr/bin/env python3
"""Every installed public header compiles on its own, as C11 and as C++11,
with only the staged include directory and the flags of glib and
json-glib.  The headers are those the staged install holds, so a new
header is covered without touching this test.
"""
import argparse
import os

import abitest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--meson', required=True, nargs='+')
    ap.add_argument('--build-root', required=True)
    ap.add_argument('--cc', required=True)
    ap.add_argument('--cxx', required=True)
    ap.add_argument('--pkg-config', required=True)
    args = ap.parse_args()
    t = abitest.Checker('public headers')

    with abitest.TempDir() as tmp:
        stage = os.path.join(tmp, 'stage')
        work = os.path.join(tmp, 'work')
        os.mkdir(stage, 0o700)
        os.mkdir(work, 0o700)
        pc_dir = abitest.stage_install(args.meson, args.build_root, stage)
        cflags, incdir = abitest.staged_cflags(args.pkg_config, stage, pc_dir)
        headers = sorted(h for h in os.listdir(os.path.join(incdir, 'blockd'))
                         if h.endswith('.h'))
        t.check('plugin.h' in headers and 'blockd.h' in headers,
                'installed headers: %s' % headers)
        for h in headers:
            for lang, compiler, std, ext in (
                    ('C11', args.cc, '-std=c11', 'c'),
                    ('C++11', args.cxx, '-std=c++11', 'cc')):
                src = os.path.join(work, '%s.%s' % (h[:-2], ext))
                with open(src, 'w', encoding='utf-8') as f:
                    f.write('#include <blockd/%s>\n' % h)
                status, out, err = abitest.run(
                    [compiler, std, '-Wall', '-Wextra', '-Werror',
                     '-fsyntax-only'] + cflags + [src])
                t.check(status == 0, '<blockd/%s> does not compile alone as '
                        '%s:\n%s%s' % (h, lang, out, err))
                if status == 0:
                    print('ok: <blockd/%s> as %s' % (h, lang))
    t.finish()


if __name__ == '__main__':
    main()
