"""rpm/blockd.spec parses, and packages every plugin of plugins/ on its own.

A new plugin directory in plugins/ without a blockd-<plugin> subpackage
fails here, so the spec cannot silently fall behind the tree."""

import os
import re
import shutil

import blockd_harness as h

SPEC = os.path.join(h.SOURCE_ROOT, 'rpm', 'blockd.spec')
PLUGINS = os.path.join(h.SOURCE_ROOT, 'plugins')


def plugin_names():
    """The plugins of the source tree: every directory of plugins/ except
    lib/, which holds helpers shared by plugins."""
    return sorted(entry.name for entry in os.scandir(PLUGINS)
                  if entry.is_dir() and entry.name != 'lib')


def files_sections(parsed):
    """{package name: [file lines]} from the %files sections of a parsed
    spec."""
    sections = {}
    current = None
    for line in parsed.splitlines():
        if line.startswith('%'):
            words = line.split()
            if words[0] == '%files':
                args = words[1:]
                if args[:1] == ['-n']:
                    current = args[1]
                elif args:
                    current = 'blockd-' + args[0]
                else:
                    current = 'blockd'
                sections[current] = []
                continue
            if not words[0].startswith(('%dir', '%doc', '%license',
                                        '%config', '%attr')):
                current = None
        if current is not None and line.strip():
            sections[current].append(line)
    return sections


class RpmSpec(h.TestCase):

    def setUp(self):
        super().setUp()
        self.rpmspec = shutil.which('rpmspec')
        if self.rpmspec is None:
            self.skipTest('rpmspec is not installed (Debian package rpm)')

    def rpmspec_run(self, *args):
        res = self.run_command([self.rpmspec] + list(args) + [SPEC])
        self.assertEqual(res.returncode, 0,
                         f'rpmspec {" ".join(args)} failed:\n{res.stderr}')
        return res.stdout

    def test_parses(self):
        parsed = self.rpmspec_run('-P')
        self.assertRegex(parsed, r'(?m)^Name:\s+blockd$')

    def test_version_is_the_project_version(self):
        out = self.rpmspec_run('-q', '--srpm', '--qf', '%{VERSION}\n')
        self.assertEqual(out.strip(), h.BLOCKD_VERSION)

    def test_every_plugin_has_a_subpackage(self):
        names = plugin_names()
        self.assertIn('block-null', names)
        packages = self.rpmspec_run('-q', '--qf', '%{NAME}\n').split()
        self.assertIn('blockd', packages)
        self.assertIn('blockd-devel', packages)
        sections = files_sections(self.rpmspec_run('-P'))
        for name in names:
            with self.subTest(plugin=name):
                package = 'blockd-' + name
                self.assertIn(package, packages)
                files = sections.get(package, [])
                for suffix in ('.so', '.plugin'):
                    self.assertTrue(
                        any(f.endswith(f'/blockd/plugins/{name}{suffix}')
                            for f in files),
                        f'{package} does not package {name}{suffix}')

    def test_subpackages_require_this_exact_main_package(self):
        out = self.rpmspec_run('-q', '--qf', '%{NAME}|[%{REQUIRENEVRS},]\n')
        exact = re.compile(r'^blockd(\(\S+\))? = ' +
                           re.escape(h.BLOCKD_VERSION) + r'-\S+$')
        for line in out.splitlines():
            package, _, requires = line.partition('|')
            if package == 'blockd':
                continue
            with self.subTest(package=package):
                self.assertTrue(
                    any(exact.match(r) for r in requires.split(',')),
                    f'{package} does not require blockd = version-release: '
                    f'{requires}')


if __name__ == '__main__':
    h.main()
