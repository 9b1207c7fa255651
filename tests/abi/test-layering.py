#!/usr/bin/env python3
"""The dependency rules of DESIGN.md, checked on the source tree:

- a plugin includes only its own headers (or generated headers of its
  own, or the shared ones of plugins/lib/) with "...", and never a core
  header;
- a plugin-api header includes only <blockd/...>, glib, json-glib and
  libc headers;
- core/ never names a plugin: no plugin directory name, and no name a
  plugin provides (from the built manifests), as a whole word outside
  comments.
"""
import argparse
import configparser
import glob
import os
import re

import abitest

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', re.M)

# ISO C11 and the POSIX headers a public header may reasonably need.
LIBC_HEADERS = {
    'assert.h', 'complex.h', 'ctype.h', 'errno.h', 'fenv.h', 'float.h',
    'inttypes.h', 'iso646.h', 'limits.h', 'locale.h', 'math.h', 'setjmp.h',
    'signal.h', 'stdalign.h', 'stdarg.h', 'stdatomic.h', 'stdbool.h',
    'stddef.h', 'stdint.h', 'stdio.h', 'stdlib.h', 'stdnoreturn.h',
    'string.h', 'tgmath.h', 'threads.h', 'time.h', 'uchar.h', 'wchar.h',
    'wctype.h', 'fcntl.h', 'unistd.h', 'sys/types.h', 'sys/uio.h',
    'sys/socket.h', 'sys/stat.h', 'poll.h',
}

PROVIDE_KEYS = ('BlockDrivers', 'ExportTypes', 'ObjectTypes', 'JobTypes',
                'QmpCommands')


def strip_c_comments(text):
    return re.sub(r'/\*.*?\*/|//[^\n]*', ' ', text, flags=re.S)


def source_files(root):
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        for f in sorted(files):
            yield os.path.join(dirpath, f)


def is_c(path):
    return path.endswith(('.c', '.h'))


def within(path, directory):
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return path == directory or path.startswith(directory + os.sep)


def check_plugins(t, src, build):
    plugins_dir = os.path.join(src, 'plugins')
    lib_dir = os.path.join(plugins_dir, 'lib')
    core_headers = {os.path.basename(p)
                    for p in glob.glob(os.path.join(src, 'core', '**', '*.h'),
                                       recursive=True)}
    for path in source_files(plugins_dir):
        if not is_c(path):
            continue
        rel = os.path.relpath(path, plugins_dir)
        plugin = rel.split(os.sep)[0]
        own_dir = os.path.join(plugins_dir, plugin)
        own_build = os.path.join(build, 'plugins', plugin)
        with open(path, encoding='utf-8') as f:
            text = strip_c_comments(f.read())
        for kind, name in INCLUDE.findall(text):
            where = 'plugins/%s includes %s%s%s' % (
                rel, kind, name, '"' if kind == '"' else '>')
            if 'core/' in name or (kind == '<' and name in core_headers):
                t.check(False, where + ': a core header')
                continue
            if kind == '<':
                continue
            here = os.path.join(os.path.dirname(path), name)
            # generated headers sit in the plugin's build directory, or in
            # build/plugins named after the plugin (its embedded schema)
            ok = ((os.path.exists(here) and within(here, own_dir))
                  or os.path.exists(os.path.join(own_build, name))
                  or (name.startswith(plugin + '-') and os.path.exists(
                      os.path.join(build, 'plugins', name)))
                  or (os.path.exists(here) and within(here, lib_dir))
                  or glob.glob(os.path.join(lib_dir, '**', name),
                               recursive=True))
            t.check(ok, where + ': not a header of this plugin, a header '
                    'it generates, or one of plugins/lib/')


def check_plugin_api(t, src):
    api = os.path.join(src, 'plugin-api')
    for path in source_files(api):
        if not path.endswith('.h'):
            continue
        rel = os.path.relpath(path, src)
        with open(path, encoding='utf-8') as f:
            text = strip_c_comments(f.read())
        for kind, name in INCLUDE.findall(text):
            ok = kind == '<' and (
                (name.startswith('blockd/') and
                 os.path.exists(os.path.join(api, name)))
                or name in ('glib.h', 'glib-object.h')
                or name.startswith(('glib/', 'gobject/', 'json-glib/'))
                or name in LIBC_HEADERS)
            t.check(ok, '%s includes %s%s%s: a public header may include '
                    'only <blockd/...>, glib, json-glib and libc headers'
                    % (rel, kind, name, '"' if kind == '"' else '>'))


def provided_names(build):
    names = {}
    manifests = sorted(glob.glob(os.path.join(build, 'plugins', '*.plugin')))
    for path in manifests:
        kf = configparser.ConfigParser(interpolation=None)
        kf.optionxform = str
        kf.read(path, encoding='utf-8')
        for key in PROVIDE_KEYS:
            for name in kf.get('Plugin', key, fallback='').split(';'):
                if name:
                    names[name] = os.path.basename(path)
    return names, manifests


# Provided names that are also words of the core's own vocabulary: "file"
# is a block driver and the role of a node's protocol child ("file"
# child, QEMU's name), and a chardev backend kind.  The core may say those
# words; it must still not look the driver up by them, which the other
# names and tests/integration (drivers found through the registry) cover.
#
# qemu-storage-daemon's command line is the core's too: its --help names
# the 'nbd' export type, and --nbd-server is defined as the QMP command
# nbd-server-start, which core/cli/nbd-server-cli.c runs by name through the
# QMP dispatcher (the registry finds whichever plugin provides it).
CORE_WORDS = {'file', 'nbd', 'nbd-server-start'}
# "iothread" is also the core's: it runs IOThreads itself (they are found
# by id, never through the object-iothread plugin), and
# x-blockdev-set-iothread's argument and the help text name them.
CORE_WORDS |= {'iothread'}


def whole_word(name):
    # Driver and plugin names contain '-': it is part of the word.
    return re.compile(r'(?<![\w-])%s(?![\w-])' % re.escape(name))


def check_core(t, src, build):
    plugins_dir = os.path.join(src, 'plugins')
    dirs = sorted(d for d in os.listdir(plugins_dir)
                  if os.path.isdir(os.path.join(plugins_dir, d))
                  and d != 'lib')
    provided, manifests = provided_names(build)
    t.check(manifests, 'no built manifest in %s/plugins' % build)
    t.check(dirs, 'no plugin directory in %s' % plugins_dir)
    words = [(d, 'the plugin directory plugins/%s' % d) for d in dirs]
    words += [(n, 'a name %s provides' % m) for n, m in provided.items()
              if n not in CORE_WORDS]
    patterns = [(whole_word(w), w, why) for w, why in words]
    for path in source_files(os.path.join(src, 'core')):
        rel = os.path.relpath(path, src)
        with open(path, encoding='utf-8', errors='replace') as f:
            text = f.read()
        if is_c(path) or path.endswith('.dynlist'):
            text = strip_c_comments(text)
        elif path.endswith('meson.build'):
            text = re.sub(r'#[^\n]*', ' ', text)
        for pattern, word, why in patterns:
            m = pattern.search(text)
            t.check(not m, "%s names '%s' (%s): core must find plugins "
                    'through the registry' % (rel, word, why))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--source-root', required=True)
    ap.add_argument('--build-root', required=True)
    args = ap.parse_args()
    t = abitest.Checker('layering')
    check_plugins(t, args.source_root, args.build_root)
    check_plugin_api(t, args.source_root)
    check_core(t, args.source_root, args.build_root)
    t.finish()


if __name__ == '__main__':
    main()
