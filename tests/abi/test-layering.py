#!/usr/bin/env python3
"""The dependency rules of DESIGN.md, checked on the source tree:

- a plugin includes only its own headers (or generated headers of its
  own, or the shared ones of plugins/lib/) with "...", and never a core
  header;
- a plugin-api header includes only <blockd/...>, glib, json-glib and
  libc headers;
- core/ never names a plugin: no plugin directory name, and no name a
  plugin provides (from the built manifests), as a whole word outside
  comments;
- core/ is folders of subsystems, and a folder includes only the folders
  its row of the table in core/README.md allows ("folder/file.h"); the
  table, the folders and the headers have no cycle; a -int.h header is
  private to its folder; only *-qmp.c files register QMP commands;
  *-cli.c files live in cli/; only the top (main.c, core-init.c) sees
  the top;
- core/ and plugins/ set a GenericError with bd_error_setg(), never
  spelled out as g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC, ...).  A self-test plants each kind of break in a synthetic core
  and checks that it is reported.
"""
import argparse
import configparser
import glob
import os
import re
import shutil
import tempfile

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
        t.check(not SPELLED_OUT_ERROR.search(text),
                'plugins/%s sets a GenericError by hand: use '
                'bd_error_setg()' % rel)
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
# "create" is the job type of blockdev-create (plugin job-create) and an
# everyday word of the core (export and object types' create callbacks,
# creating a pid file or a socket); the job manager finds job types only
# through the registry, which the other job type names would show.
CORE_WORDS |= {'create'}
# "main-loop" is the object type of plugin object-iothread (the main
# thread's event-loop parameters) and the core's own main loop
# (core/aio/main-loop.c), which it runs itself, never through the plugin.
CORE_WORDS |= {'main-loop'}
# "stream" is the job type of block-stream (plugin job-stream) and the
# core's word for a byte stream (the JSON stream parser, a monitor's
# character stream).
CORE_WORDS |= {'stream'}
# "commit" is the job type of block-commit (plugin job-commit) and the
# job manager's word for a job's successful end (BdJobType.commit, the
# commit of a transaction, a reopen's commit).
CORE_WORDS |= {'commit'}
# "qcow2" is the format blockdev-snapshot-sync defaults to (QAPI's
# "@format: ... default is 'qcow2'"); core/block passes the name to the
# registry, which finds whichever plugin provides it, as for any format.
CORE_WORDS |= {'qcow2'}


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


# ---- the core's folders (core/README.md has the table) ----

# The table's rows: "| folder | what it holds | folders it may include |"
# between these two lines of core/README.md.
TABLE_BEGIN = '<!-- layering table: checked by tests/abi/test-layering.py -->'
TABLE_END = '<!-- end of layering table -->'
TOP = '(top)'
# Headers the build generates inside a folder of the core's build tree.
GENERATED = {'schema/core-schema.h', 'aio/aio-config.h'}
# Generated at the top of the build tree, and seen by every folder.
GENERATED_TOP = {'blockd-config.h'}
REGISTER = re.compile(r'\bbd_qmp_register_command\s*\(')
# A GenericError set by hand instead of with bd_error_setg().
SPELLED_OUT_ERROR = re.compile(
    r'\bg_set_error(?:_literal)?\s*\([^;]*?\bBD_ERROR\s*,\s*'
    r'BD_ERROR_GENERIC\b')


def read_table(readme):
    """{folder: set of folders it may include}, in the order of the
    table, from core/README.md."""
    with open(readme, encoding='utf-8') as f:
        text = f.read()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError('%s has no layering table' % readme)
    body = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    table = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) != 3 or not cells[0] or set(cells[0]) <= set('-: '):
            continue
        folder = cells[0].strip('`/')
        if folder == 'folder':          # the header row
            continue
        allowed = {w.strip('`/,') for w in cells[2].split()}
        table[folder] = {w for w in allowed if w and w not in ('-', '—')}
    return table


def find_cycle(graph):
    """A cycle of @graph ({node: set of nodes}) as a list, or None."""
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def core_layering_errors(core):
    """Every break of the folder rules in the core tree @core (a list of
    messages; empty when the tree keeps them)."""
    errors = []
    try:
        table = read_table(os.path.join(core, 'README.md'))
    except (OSError, ValueError) as e:
        return [str(e)]
    cycle = find_cycle({f: a for f, a in table.items() if f != TOP})
    if cycle:
        errors.append('core/README.md: the table allows a cycle: %s'
                      % ' -> '.join(cycle))
    for folder, allowed in table.items():
        for a in sorted(allowed - set(table)):
            errors.append('core/README.md: row %s names %s, which is not '
                          'a folder of the table' % (folder, a))

    folder_graph = {}
    file_graph = {}
    for path in source_files(core):
        rel = os.path.relpath(path, core)
        parts = rel.split(os.sep)
        folder = parts[0] if len(parts) > 1 else TOP
        name = parts[-1]
        if len(parts) > 2:
            errors.append('core/%s: folders of the core are one level deep'
                          % rel)
            continue
        if folder != TOP and folder not in table:
            errors.append('core/%s: folder %s/ is not in core/README.md\'s '
                          'table' % (rel, folder))
            continue
        if not is_c(path):
            continue
        if name.endswith(('-cli.c', '-cli.h')) and folder != 'cli':
            errors.append('core/%s: command-line front ends (*-cli.c) live '
                          'in cli/' % rel)
        with open(path, encoding='utf-8', errors='replace') as f:
            text = strip_c_comments(f.read())
        if (path.endswith('.c') and not name.endswith('-qmp.c')
                and rel != os.path.join('qmp', 'qmp-dispatch.c')
                and REGISTER.search(text)):
            errors.append('core/%s registers a QMP command: only *-qmp.c '
                          'files do' % rel)
        if SPELLED_OUT_ERROR.search(text):
            errors.append('core/%s sets a GenericError by hand: use '
                          'bd_error_setg()' % rel)
        me = rel.replace(os.sep, '/')
        file_graph.setdefault(me, set())
        for kind, inc in INCLUDE.findall(text):
            if kind != '"':
                continue
            where = 'core/%s includes "%s"' % (rel, inc)
            if inc in GENERATED_TOP:
                continue
            if '/' not in inc:
                if os.path.exists(os.path.join(core, inc)):
                    if folder == TOP:
                        file_graph[me].add(inc)
                    else:
                        errors.append(where + ': only the top sees the top')
                    continue
                errors.append(where + ': name the folder ("dir/file.h")')
                continue
            dep = inc.split('/')[0]
            if not (os.path.exists(os.path.join(core, inc))
                    or inc in GENERATED):
                errors.append(where + ': no such header in core/')
                continue
            file_graph[me].add(inc)
            if dep == folder:
                continue
            if dep not in table:
                errors.append(where + ': %s/ is not a folder of the table'
                              % dep)
                continue
            if inc.endswith(('-int.h', '-internal.h')):
                errors.append(where + ': a -int.h header is private to its '
                              'folder')
            if folder == TOP:
                continue
            folder_graph.setdefault(folder, set()).add(dep)
            if dep not in table[folder]:
                errors.append(where + ': %s/ may not include %s/ (its row '
                              'in core/README.md allows: %s)'
                              % (folder, dep,
                                 ', '.join(sorted(table[folder])) or
                                 'nothing'))
    cycle = find_cycle(folder_graph)
    if cycle:
        errors.append('the folders of core/ include each other in a '
                      'cycle: %s' % ' -> '.join(cycle))
    cycle = find_cycle(file_graph)
    if cycle:
        errors.append('the headers of core/ include each other in a '
                      'cycle: %s' % ' -> '.join(cycle))
    return errors


def check_core_layering(t, src):
    for e in core_layering_errors(os.path.join(src, 'core')):
        t.check(False, e)


# A small core that keeps every rule, and changes that each break one:
# the check must find each (and only) the break planted.
SYNTHETIC_README = '''# core
%s
| folder | holds | may include |
|--------|-------|-------------|
| `util/` | errors | — |
| `json/` | JSON | `util/` |
| `qmp/` | dispatch | `util/` `json/` |
| `cli/` | options | `util/` `json/` `qmp/` |
%s
''' % (TABLE_BEGIN, TABLE_END)

SYNTHETIC = {
    'README.md': SYNTHETIC_README,
    'main.c': '#include "top.h"\n#include "cli/opt-cli.h"\n',
    'top.h': '',
    'util/error.h': '#include <glib.h>\n',
    'util/error.c': '#include "util/error.h"\n',
    'json/json-int.h': '#include "util/error.h"\n',
    'json/json.h': '',
    'json/json.c': '#include "json/json-int.h"\n#include "json/json.h"\n',
    'qmp/qmp-dispatch.c': '#include "json/json.h"\n'
                          'void bd_qmp_register_command(void) {}\n',
    'qmp/control-qmp.c': 'void f(void) { bd_qmp_register_command("x"); }\n',
    'cli/opt-cli.h': '',
    'cli/opt-cli.c': '#include "cli/opt-cli.h"\n#include "qmp/x.h"\n',
    'qmp/x.h': '#include "util/error.h"\n',
}

PLANTED = [
    # (what, file, text, a word the message must contain)
    ('a wrong-way include', 'util/bad.c', '#include "json/json.h"\n',
     'may not include'),
    ('an include without its folder', 'json/bad.c', '#include "json.h"\n',
     'name the folder'),
    ('another folder\'s -int.h', 'qmp/bad.c', '#include "json/json-int.h"\n',
     'private'),
    ('a QMP command registered outside *-qmp.c', 'qmp/control.c',
     'void g(void) { bd_qmp_register_command("y"); }\n', 'registers'),
    ('a *-cli.c outside cli/', 'qmp/thing-cli.c', '', 'live in cli/'),
    ('a folder not in the table', 'extra/a.c', '', 'not in core/README.md'),
    ('a header cycle', 'json/json.h', '#include "json/json.c"\n', 'cycle'),
    ('the top included from a folder', 'util/top-user.c',
     '#include "top.h"\n', 'only the top'),
    ('a header that does not exist', 'util/ghost.c',
     '#include "util/ghost.h"\n', 'no such header'),
    ('a GenericError spelled out', 'util/err.c',
     'void e(GError **errp)\n{\n    g_set_error(errp, BD_ERROR,\n'
     '                BD_ERROR_GENERIC, "x");\n}\n', 'bd_error_setg'),
]


def write_tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)


def self_test(t, build):
    """The check finds nothing in SYNTHETIC and finds each planted break
    (proof that the test can fail)."""
    parent = os.path.join(build, 'tests', 'abi')
    os.makedirs(parent, exist_ok=True)
    root = tempfile.mkdtemp(prefix='layering-selftest-', dir=parent)
    try:
        clean = os.path.join(root, 'clean')
        write_tree(clean, SYNTHETIC)
        errors = core_layering_errors(clean)
        t.check(not errors, 'self-test: the clean synthetic core has '
                'errors: %s' % errors)
        for i, (what, rel, text, word) in enumerate(PLANTED):
            tree = os.path.join(root, 'planted%d' % i)
            write_tree(tree, dict(SYNTHETIC, **{rel: text}))
            errors = core_layering_errors(tree)
            t.check(any(word in e for e in errors),
                    'self-test: %s (%s) is not reported: %s'
                    % (what, rel, errors))
        # a row that allows a cycle is refused too
        tree = os.path.join(root, 'table-cycle')
        write_tree(tree, dict(SYNTHETIC, **{'README.md': SYNTHETIC_README
                   .replace('| `util/` | errors | — |',
                            '| `util/` | errors | `cli/` |')}))
        errors = core_layering_errors(tree)
        t.check(any('allows a cycle' in e for e in errors),
                'self-test: a table with a cycle is not reported: %s'
                % errors)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--source-root', required=True)
    ap.add_argument('--build-root', required=True)
    args = ap.parse_args()
    t = abitest.Checker('layering')
    check_plugins(t, args.source_root, args.build_root)
    check_plugin_api(t, args.source_root)
    check_core(t, args.source_root, args.build_root)
    check_core_layering(t, args.source_root)
    self_test(t, args.build_root)
    t.finish()


if __name__ == '__main__':
    main()
