"""Helpers shared by the ABI tests: private temporary directories, running
blockd (always killed by pid), parsing `blockd --list-plugins`, staging an
install, and collecting failures so one run reports all of them.
Python 3 standard library only.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class TempDir:
    """A private (mode 0700) temporary directory, removed on exit."""

    def __init__(self, prefix='blockd-abi-'):
        self.prefix = prefix
        self.path = None

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix=self.prefix)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


class Checker:
    """Collects failed checks; finish() exits 1 if there was any."""

    def __init__(self, name):
        self.name = name
        self.failures = []

    def check(self, cond, msg):
        if not cond:
            self.failures.append(msg)
            print('FAIL: ' + msg, file=sys.stderr)
        return cond

    def equal(self, got, want, what):
        return self.check(got == want,
                          '%s: expected %r, got %r' % (what, want, got))

    def finish(self):
        if self.failures:
            print('%s: %d check(s) failed' % (self.name, len(self.failures)),
                  file=sys.stderr)
            sys.exit(1)
        print('%s: all checks passed' % self.name)
        sys.exit(0)


def abi_version(plugin_h):
    """(major, minor) as #defined in a copy of <blockd/plugin.h>."""
    with open(plugin_h, encoding='utf-8') as f:
        text = f.read()
    major = re.search(r'^#define BD_PLUGIN_ABI_MAJOR (\d+)$', text, re.M)
    minor = re.search(r'^#define BD_PLUGIN_ABI_MINOR (\d+)$', text, re.M)
    if not major or not minor:
        raise RuntimeError('%s: no BD_PLUGIN_ABI_MAJOR/MINOR' % plugin_h)
    return int(major.group(1)), int(minor.group(1))


def run(cmd, env=None, timeout=120):
    """Run @cmd to completion; returns (status, stdout, stderr) as text."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, universal_newlines=True)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err


def run_ok(cmd, env=None):
    """Run @cmd and raise with its output if it fails."""
    status, out, err = run(cmd, env=env)
    if status != 0:
        raise RuntimeError('%s exited with %d:\n%s%s'
                           % (' '.join(cmd), status, out, err))
    return out


def run_daemon(cmd, env=None, seconds=1.0):
    """Start the daemon, let it run @seconds, then SIGTERM it.

    Returns (still_running_before_sigterm, status, stdout, stderr).  The
    process is killed by pid in every outcome."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, universal_newlines=True)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        alive = p.poll() is None
        if alive:
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
        return alive, p.returncode, out, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


_HEADER = re.compile(r'^(\S+?)(?: (\S+) \(ABI (\d+)\.(\d+)\))?: '
                     r'(available|loaded|failed)$')


def parse_listing(text):
    """Parse `blockd --list-plugins` output into {file path: entry}.

    An entry is a dict with 'name', 'version', 'abi' ((major, minor) or
    None), 'state', and one key per indented "key: value" line."""
    plugins = {}
    entry = None
    for line in text.splitlines():
        if line.startswith('plugin directories:') or line == \
                'no plugins found':
            continue
        if line.startswith('  '):
            if entry is None:
                raise ValueError('indented line before a plugin: ' + line)
            key, _, value = line.strip().partition(': ')
            entry[key] = value
            if key == 'file':
                plugins[value] = entry
            continue
        m = _HEADER.match(line)
        if not m:
            raise ValueError('unexpected line in the listing: ' + line)
        entry = {
            'name': m.group(1),
            'version': m.group(2),
            'abi': (int(m.group(3)), int(m.group(4))) if m.group(3) else None,
            'state': m.group(5),
        }
    return plugins


def list_plugins(blockd, plugin_dir, env=None):
    """Run `blockd --plugin-dir DIR --list-plugins`.

    Returns (status, {path: entry}, stdout, stderr)."""
    status, out, err = run([blockd, '--plugin-dir', plugin_dir,
                            '--list-plugins'], env=env)
    return status, parse_listing(out), out, err


def stage_install(meson, build_root, stage):
    """`meson install` the build tree into @stage; returns the directory
    holding the staged blockd-plugin.pc."""
    run_ok(meson + ['install', '-C', build_root, '--no-rebuild',
                    '--destdir', stage])
    for root, _dirs, files in os.walk(stage):
        if 'blockd-plugin.pc' in files:
            return root
    raise RuntimeError('the install has no blockd-plugin.pc')


def pkg_config_env(stage, pc_dir):
    env = dict(os.environ)
    env['PKG_CONFIG_PATH'] = pc_dir
    env['PKG_CONFIG_SYSROOT_DIR'] = stage
    return env


def staged_variable(pkg_config, stage, pc_dir, name):
    """A path variable of the staged blockd-plugin.pc, inside @stage."""
    value = run_ok([pkg_config, '--variable=' + name, 'blockd-plugin'],
                   env=pkg_config_env(stage, pc_dir)).strip()
    # pkgconf prefixes variables with the sysroot, pkg-config does not.
    if not value.startswith(stage + '/'):
        value = stage + value
    return value


def staged_cflags(pkg_config, stage, pc_dir, libs=False):
    """`pkg-config --cflags blockd-plugin` against the staged install (with
    --libs too if @libs).

    With PKG_CONFIG_SYSROOT_DIR every -I path (glib's and json-glib's too)
    points into the stage, as in a cross build where the sysroot holds the
    dependencies.  The stage holds only blockd, so the dependencies' header
    directories are linked into it from the host; blockd's own headers
    must be the staged files."""
    query = ['--cflags', '--libs'] if libs else ['--cflags']
    flags = shlex.split(run_ok([pkg_config] + query + ['blockd-plugin'],
                               env=pkg_config_env(stage, pc_dir)))
    own = staged_variable(pkg_config, stage, pc_dir, 'includedir')
    if not os.path.isfile(os.path.join(own, 'blockd', 'plugin.h')):
        raise RuntimeError('staged include dir %s lacks blockd/plugin.h' % own)
    for flag in flags:
        if not flag.startswith('-I'):
            continue
        path = flag[2:]
        if not path.startswith(stage + '/'):
            raise RuntimeError('pkg-config gave %s outside the stage' % flag)
        host = path[len(stage):]
        if not os.path.lexists(path) and os.path.isdir(host):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(host, path)
    return flags, own
