#!/usr/bin/env python3
"""The plugin loader against hand-made plugins (built by meson in
tests/abi) and the real block-null: every refusal gives its documented
message in `blockd --list-plugins`, a plugin built for an older minor
still loads, and a plugin directory full of bad plugins does not stop the
daemon from starting.

Usage: test-loader.py --case CASE [paths...]; one meson test per case.
"""
import argparse
import ctypes
import os
import re
import shutil

import abitest

# Not an ELF file: what a truncated download or a stray file looks like.
GARBAGE = b'this is not a shared object\n' * 64


class Env:
    def __init__(self, args, tmp, checker):
        self.args = args
        self.tmp = tmp
        self.t = checker
        self.major, self.minor = abitest.abi_version(args.plugin_h)
        self.env = dict(os.environ)
        self.env.pop('BLOCKD_PLUGIN_DIR', None)
        self.env.pop('BLOCKD_ABI_MARKER', None)

    def plugin_dir(self, name):
        path = os.path.join(self.tmp, name)
        os.mkdir(path, 0o700)
        return path

    def add(self, directory, plugin, src_dir=None):
        """Copy the built @plugin.so into @directory; returns its path."""
        src = os.path.join(src_dir or self.args.test_plugins, plugin + '.so')
        dst = os.path.join(directory, plugin + '.so')
        shutil.copy(src, dst)
        return dst

    def add_corrupt(self, directory, plugin):
        path = os.path.join(directory, plugin + '.so')
        with open(path, 'wb') as f:
            f.write(GARBAGE)
        return path

    def add_block_null(self, directory):
        for ext in ('.so', '.plugin'):
            shutil.copy(os.path.join(self.args.plugins, 'block-null' + ext),
                        directory)
        return os.path.join(directory, 'block-null.so')

    def make_manifest(self, so):
        """Write @so's manifest with the build tree's manifest tool."""
        manifest = so[:-3] + '.plugin'
        abitest.run_ok([self.args.manifest_tool, so, manifest], env=self.env)
        return manifest

    def list(self, plugin_dir, env=None):
        status, listing, out, err = abitest.list_plugins(
            self.args.blockd, plugin_dir, env=env or self.env)
        self.t.equal(status, 0, '--list-plugins exit status in %s' %
                     plugin_dir)
        return listing, out

    def expect(self, listing, out, so, state, error=None, pattern=None):
        """Check the listing entry of @so; returns the entry or None."""
        entry = listing.get(so)
        if not self.t.check(entry is not None, '%s is not listed:\n%s'
                            % (so, out)):
            return None
        self.t.equal(entry['state'], state, 'state of %s' % so)
        if error is not None:
            self.t.equal(entry.get('error'), error, 'error of %s' % so)
        if pattern is not None:
            self.t.check(re.fullmatch(pattern, entry.get('error', '')),
                         'error of %s: %r does not match %r'
                         % (so, entry.get('error'), pattern))
        return entry

    def abi_major_message(self):
        return ('built for plugin ABI %d.0; this blockd provides %d.%d'
                % (self.major + 1, self.major, self.minor))


class Layout10(ctypes.Structure):
    """BdBlockDriver as ABI 1.0 defined it."""
    _fields_ = [('struct_size', ctypes.c_uint32),
                ('name', ctypes.c_char_p),
                ('description', ctypes.c_char_p)]


def case_bad_descriptors(e):
    d = e.plugin_dir('bad')
    so = {name: e.add(d, name) for name in (
        'block-abi-major', 'block-abi-minor', 'block-bad-magic',
        'block-misnamed', 'block-no-descriptor', 'block-init-fails',
        'block-big-struct', 'block-small-struct')}
    so['block-corrupt'] = e.add_corrupt(d, 'block-corrupt')
    listing, out = e.list(d)
    e.t.equal(len(listing), len(so), 'number of plugins listed')

    e.expect(listing, out, so['block-abi-major'], 'failed',
             e.abi_major_message())
    e.expect(listing, out, so['block-abi-minor'], 'failed',
             'built for plugin ABI %d.%d; this blockd provides %d.%d'
             % (e.major, e.minor + 1, e.major, e.minor))
    e.expect(listing, out, so['block-bad-magic'], 'failed',
             'not a blockd plugin: bad magic 0x0123456789abcdef in '
             'bd_plugin_descriptor (expected 0x424c4b44504c5547)')
    e.expect(listing, out, so['block-misnamed'], 'failed',
             "descriptor names the plugin 'block-other', but the file is "
             "named 'block-misnamed.so'")
    e.expect(listing, out, so['block-no-descriptor'], 'failed',
             'not a blockd plugin: it does not export bd_plugin_descriptor')
    e.expect(listing, out, so['block-corrupt'], 'failed',
             'failed to load: %s: invalid ELF header' % so['block-corrupt'])
    e.expect(listing, out, so['block-init-fails'], 'failed',
             'init failed: the frobnicator of block-init-fails is missing')

    size_1_0 = ctypes.sizeof(Layout10)
    pointer = ctypes.sizeof(ctypes.c_void_p)
    accepts = r'; this blockd accepts %d to (\d+)' % size_1_0
    entry = e.expect(listing, out, so['block-big-struct'], 'failed',
                     pattern=r'init failed: block-big-struct\.so registers '
                     r'a block driver of (\d+) bytes' + accepts)
    m = entry and re.fullmatch(r'.* of (\d+) bytes.* to (\d+)',
                               entry.get('error', ''))
    if m:
        # The plugin appends two pointers to the daemon's own structure.
        e.t.equal(int(m.group(1)), int(m.group(2)) + 2 * pointer,
                  'size block-big-struct registers')
    small = Layout10.name.offset + pointer
    e.expect(listing, out, so['block-small-struct'], 'failed',
             pattern=r'init failed: block-small-struct\.so registers a '
             r'block driver of %d bytes' % small + accepts)
    # Refused before init(): nothing of the descriptor is believed.
    for name in ('block-abi-major', 'block-abi-minor', 'block-bad-magic',
                 'block-misnamed', 'block-no-descriptor', 'block-corrupt'):
        entry = listing.get(so[name], {})
        e.t.equal(entry.get('version'), None, 'version listed for ' + name)


def case_manifests(e):
    # A wrong-ABI plugin with a manifest is refused from the manifest:
    # its constructor, which leaves a marker, must never run.
    marker = os.path.join(e.tmp, 'abi-major-code-ran')
    env = dict(e.env, BLOCKD_ABI_MARKER=marker)
    d = e.plugin_dir('with-manifest')
    so = e.add(d, 'block-abi-major')
    with open(so[:-3] + '.plugin', 'w', encoding='utf-8') as f:
        f.write('[Plugin]\nName=block-abi-major\nFile=block-abi-major.so\n'
                'ABI=%d.0\nVersion=1.0\nBlockDrivers=abi-major;\n'
                % (e.major + 1))
    listing, out = e.list(d, env=env)
    e.expect(listing, out, so, 'failed', e.abi_major_message())
    e.t.check(not os.path.exists(marker), 'block-abi-major.so ran code '
              'although its manifest already refused it')
    alive, status, out, err = abitest.run_daemon(
        [e.args.blockd, '--plugin-dir', d], env=env)
    e.t.check(alive and status == 0, 'blockd with a refused plugin: alive '
              '%s, status %s' % (alive, status))
    e.t.check(not os.path.exists(marker), 'block-abi-major.so ran code at '
              'start-up although its manifest refused it')

    # The control: without a manifest the code does run (so the marker
    # works), and the descriptor gives the same refusal.
    d = e.plugin_dir('without-manifest')
    so = e.add(d, 'block-abi-major')
    listing, out = e.list(d, env=env)
    e.expect(listing, out, so, 'failed', e.abi_major_message())
    e.t.check(os.path.exists(marker), 'the marker of block-abi-major.so '
              'does not work: loading it left none')

    # A stale manifest: it lists a driver the plugin does not register.
    d = e.plugin_dir('stale')
    so = e.add(d, 'block-stale')
    manifest = e.make_manifest(so)
    with open(manifest, encoding='utf-8') as f:
        text = f.read()
    e.t.check('BlockDrivers=stale;\n' in text, 'manifest of block-stale:\n'
              + text)
    with open(manifest, 'w', encoding='utf-8') as f:
        f.write(text.replace('BlockDrivers=stale;\n',
                             'BlockDrivers=stale;stale-extra;\n'))
    listing, out = e.list(d)
    e.expect(listing, out, so, 'failed',
             "manifest %s lists block driver 'stale-extra', which the plugin "
             "does not register; regenerate the manifest" % manifest)

    # The same manifest as generated loads.
    d = e.plugin_dir('fresh')
    so = e.add(d, 'block-stale')
    e.make_manifest(so)
    listing, out = e.list(d)
    entry = e.expect(listing, out, so, 'loaded')
    if entry:
        e.t.equal(entry.get('block drivers'), 'stale', 'drivers of '
                  'block-stale')


def case_duplicates(e):
    # Two plugins registering the same driver, without manifests: the one
    # found second (in name order) is refused and the message names both.
    d = e.plugin_dir('dup')
    a = e.add(d, 'block-dup-a')
    b = e.add(d, 'block-dup-b')
    listing, out = e.list(d)
    e.expect(listing, out, a, 'loaded')
    e.expect(listing, out, b, 'failed',
             "init failed: block-dup-b.so: block driver 'dup' is already "
             "provided by block-dup-a (%s)" % a)

    # The same with manifests: refused from the manifests alone.
    d = e.plugin_dir('dup-manifests')
    a = e.add(d, 'block-dup-a')
    b = e.add(d, 'block-dup-b')
    e.make_manifest(a)
    e.make_manifest(b)
    listing, out = e.list(d)
    e.expect(listing, out, a, 'loaded')
    e.expect(listing, out, b, 'failed',
             "block driver 'dup' is already provided by block-dup-a (%s)" % a)

    # The same plugin in two directories of the search path.
    first = e.plugin_dir('first')
    second = e.plugin_dir('second')
    a = e.add_block_null(first)
    b = e.add_block_null(second)
    listing, out = e.list(first + '::' + second)
    e.expect(listing, out, a, 'loaded')
    e.expect(listing, out, b, 'failed',
             "duplicate plugin name 'block-null': already found at %s" % a)


def case_older_minor(e):
    for manifest in (False, True):
        d = e.plugin_dir('older-%s' % ('manifest' if manifest else 'bare'))
        so = e.add(d, 'block-older-minor')
        if manifest:
            e.make_manifest(so)
        listing, out = e.list(d)
        entry = e.expect(listing, out, so, 'loaded')
        if entry:
            e.t.equal(entry['abi'], (e.major, 0), 'ABI of block-older-minor')
            e.t.equal(entry['version'], '1.0.0', 'its version')
            e.t.equal(entry.get('block drivers'), 'older', 'its drivers')
            e.t.equal(entry.get('QMP commands'), 'x-older', 'its commands')
        alive, status, out, err = abitest.run_daemon(
            [e.args.blockd, '--plugin-dir', d], env=e.env, seconds=0.3)
        e.t.check(alive and status == 0 and err == '',
                  'blockd with block-older-minor: alive %s, status %s, '
                  'stderr %r' % (alive, status, err))


def case_startup(e):
    d = e.plugin_dir('mixed')
    corrupt = e.add_corrupt(d, 'block-corrupt')
    e.add(d, 'block-abi-major')
    dup_a = e.add(d, 'block-dup-a')
    e.add(d, 'block-dup-b')
    null = e.add_block_null(d)

    env = dict(e.env)
    alive, status, out, err = abitest.run_daemon(
        [e.args.blockd, '--plugin-dir', d], env=env, seconds=1.0)
    e.t.check(alive, 'blockd exited by itself with status %s; stderr:\n%s'
              % (status, err))
    e.t.equal(status, 0, 'exit status after SIGTERM')
    e.t.equal(out, '', 'stdout')
    want = [
        'blockd: warning: block-abi-major.so: ' + e.abi_major_message(),
        'blockd: warning: block-corrupt.so: failed to load: %s: invalid ELF '
        'header' % corrupt,
        "blockd: warning: block-dup-b.so: init failed: block-dup-b.so: "
        "block driver 'dup' is already provided by block-dup-a (%s)" % dup_a,
    ]
    e.t.equal(sorted(err.splitlines()), want, 'start-up warnings')

    listing, out = e.list(d)
    e.t.equal(len(listing), 5, 'number of plugins listed')
    e.expect(listing, out, null, 'loaded')
    e.expect(listing, out, dup_a, 'loaded')
    for line in want:
        file, _, reason = line[len('blockd: warning: '):].partition(': ')
        e.expect(listing, out, os.path.join(d, file), 'failed', reason)


CASES = {
    'bad-descriptors': case_bad_descriptors,
    'manifests': case_manifests,
    'duplicates': case_duplicates,
    'older-minor': case_older_minor,
    'startup': case_startup,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--case', required=True, choices=sorted(CASES))
    ap.add_argument('--blockd', required=True)
    ap.add_argument('--manifest-tool', required=True)
    ap.add_argument('--plugin-h', required=True)
    ap.add_argument('--plugins', required=True,
                    help="the build tree's plugin directory")
    ap.add_argument('--test-plugins', required=True,
                    help='where meson built the hand-made plugins')
    args = ap.parse_args()
    t = abitest.Checker('loader: ' + args.case)
    with abitest.TempDir() as tmp:
        CASES[args.case](Env(args, tmp, t))
    t.finish()


if __name__ == '__main__':
    main()
