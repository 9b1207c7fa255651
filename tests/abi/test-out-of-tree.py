#!/usr/bin/env python3
"""An out-of-tree plugin, built only from the installed blockd: stage
`meson install`, compile out-of-tree/block-hello.c with nothing but
`pkg-config --cflags --libs blockd-plugin`, embed its schema and write its
manifest with the staged tools, then check that the build tree's blockd
lists it as loaded and that it loads lazily.
"""
import argparse
import glob
import os
import shutil

import abitest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--meson', required=True, nargs='+')
    ap.add_argument('--build-root', required=True)
    ap.add_argument('--blockd', required=True)
    ap.add_argument('--cc', required=True)
    ap.add_argument('--pkg-config', required=True)
    ap.add_argument('--nm', required=True)
    ap.add_argument('--python', required=True)
    ap.add_argument('--source', required=True,
                    help='the directory holding block-hello.c/.json')
    args = ap.parse_args()
    t = abitest.Checker('out-of-tree plugin')

    with abitest.TempDir() as tmp:
        stage = os.path.join(tmp, 'stage')
        work = os.path.join(tmp, 'work')
        plugins = os.path.join(tmp, 'plugins')
        for d in (stage, work, plugins):
            os.mkdir(d, 0o700)
        pc_dir = abitest.stage_install(args.meson, args.build_root, stage)
        # --libs as well: the plugin calls json-glib, and the daemon does
        # not promise to have loaded it (the .pc file's Requires name it).
        flags, incdir = abitest.staged_cflags(args.pkg_config, stage, pc_dir,
                                              libs=True)
        abi = abitest.abi_version(os.path.join(incdir, 'blockd', 'plugin.h'))
        # the plugin writer's guide is installed with the headers (when
        # rst2man, which tools/dev installs, is there to build it)
        guides = glob.glob(os.path.join(stage, '**', 'man7',
                                        'blockd-plugin.7'), recursive=True)
        t.check(guides or not shutil.which('rst2man'),
                'blockd-plugin(7) is not installed')

        embed = abitest.staged_variable(args.pkg_config, stage, pc_dir,
                                        'qapi_embed')
        abitest.run_ok([args.python, embed, '--name', 'block_hello_schema',
                        '--output', os.path.join(work, 'block-hello-schema.h'),
                        os.path.join(args.source, 'block-hello.json')])

        so = os.path.join(plugins, 'block-hello.so')
        abitest.run_ok([args.cc, '-shared', '-fPIC', '-fvisibility=hidden',
                        '-Wl,-z,now', '-Wall', '-Wextra', '-Werror']
                       + ['-I', work, '-o', so,
                          os.path.join(args.source, 'block-hello.c')]
                       + flags)

        # One exported symbol: the descriptor.
        out = abitest.run_ok([args.nm, '-D', '--defined-only', so])
        exported = sorted(line.split()[-1] for line in out.splitlines()
                          if line.strip())
        t.equal(exported, ['bd_plugin_descriptor'],
                'symbols exported by block-hello.so')

        tool = abitest.staged_variable(args.pkg_config, stage, pc_dir,
                                       'manifest_tool')
        manifest = os.path.join(plugins, 'block-hello.plugin')
        abitest.run_ok([tool, so, manifest])
        t.check(os.path.isfile(manifest), 'the manifest tool wrote nothing')

        env = dict(os.environ)
        env.pop('BLOCKD_PLUGIN_DIR', None)
        marker = os.path.join(tmp, 'hello-was-loaded')
        env['BLOCKD_HELLO_MARKER'] = marker

        # Started without --list-plugins: only the manifest is read.
        alive, status, out, err = abitest.run_daemon(
            [args.blockd, '--plugin-dir', plugins], env=env)
        t.check(alive, 'blockd --plugin-dir DIR exited by itself (status '
                '%s): %s' % (status, err))
        t.equal(status, 0, 'exit status after SIGTERM')
        t.equal(err, '', 'stderr of blockd --plugin-dir DIR')
        t.check(not os.path.exists(marker),
                'block-hello.so was loaded although nothing used it')

        status, listing, out, err = abitest.list_plugins(
            args.blockd, plugins, env=env)
        t.equal(status, 0, 'exit status of --list-plugins')
        t.equal(err, '', 'stderr of --list-plugins')
        t.check(os.path.exists(marker),
                '--list-plugins did not load block-hello.so (marker missing)')
        entry = listing.get(so)
        if t.check(entry is not None, 'block-hello.so not listed:\n' + out):
            t.equal(entry['name'], 'block-hello', 'listed name')
            t.equal(entry['state'], 'loaded', 'state (%s)'
                    % entry.get('error'))
            t.equal(entry['version'], '2.3.4', 'listed version')
            t.equal(entry['abi'], abi, 'listed ABI')
            t.equal(entry.get('block drivers'), 'hello', 'block drivers')
            t.equal(entry.get('QMP commands'), 'x-hello', 'QMP commands')
            t.equal(entry.get('license'), 'MIT', 'license')
        t.equal(len(listing), 1, 'number of plugins listed')

        with open(manifest, encoding='utf-8') as f:
            text = f.read()
        t.check('"command":"x-hello"' in text,
                'the manifest lacks the embedded schema:\n' + text)

    t.finish()


if __name__ == '__main__':
    main()
