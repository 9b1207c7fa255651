"""A guest kernel under QEMU (TCG) for the tests of exports that a virtual
machine uses (vhost-user-blk): the Debian 6.1 cloud kernel, whose own
virtio-blk driver does the I/O, and a busybox initramfs that runs a test
script and powers off.

The kernel and busybox packages are downloaded once with `apt-get
download` into a cache outside the tree (BLOCKD_VM_CACHE, default
~/.cache/blockd-vm), so a fresh CI machine fetches them on its first run.
"""
import glob
import os
import re
import shutil
import subprocess

CACHE = os.environ.get('BLOCKD_VM_CACHE',
                       os.path.expanduser('~/.cache/blockd-vm'))

# Loaded in this order (dependencies first); 6.1 cloud has them as modules.
MODULES = ['virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev',
           'virtio', 'virtio_pci', 'virtio_blk']

HERE = os.path.dirname(os.path.abspath(__file__))


def _download(pattern, package):
    found = sorted(glob.glob(os.path.join(CACHE, pattern)))
    if found:
        return found[-1]
    os.makedirs(CACHE, exist_ok=True)
    subprocess.run(['apt-get', 'download', package], cwd=CACHE, check=True,
                   stdout=subprocess.DEVNULL)
    found = sorted(glob.glob(os.path.join(CACHE, pattern)))
    if not found:
        raise RuntimeError('apt-get download %s left no %s in %s'
                           % (package, pattern, CACHE))
    return found[-1]


def ensure_guest():
    """The kernel, its virtio modules and busybox, extracted in CACHE:
    returns a dict with 'kernel', 'modules' (paths in load order) and
    'busybox'."""
    ready = os.path.join(CACHE, 'guest')
    stamp = os.path.join(ready, 'ready')
    if not os.path.exists(stamp):
        meta = subprocess.run(['apt-cache', 'depends',
                               'linux-image-cloud-amd64'],
                              check=True, capture_output=True,
                              text=True).stdout
        m = re.search(r'Depends: (linux-image-\S+-cloud-amd64)', meta)
        if not m:
            raise RuntimeError('no kernel package behind '
                               'linux-image-cloud-amd64:\n' + meta)
        kdeb = _download(m.group(1) + '_*.deb', m.group(1))
        bdeb = _download('busybox-static_*.deb', 'busybox-static')
        tmp = ready + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        listing = subprocess.run(['dpkg-deb', '-c', kdeb], check=True,
                                 capture_output=True, text=True).stdout
        wanted = []
        for line in listing.splitlines():
            path = line.split()[-1]
            base = os.path.basename(path)
            if path.startswith('./boot/vmlinuz-') or \
               re.sub(r'\.ko(\.xz)?$', '', base) in MODULES and \
               '/kernel/drivers/' in path:
                wanted.append(path)
        ex = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', kdeb],
                              stdout=subprocess.PIPE)
        subprocess.run(['tar', '-x', '-C', tmp] + wanted, stdin=ex.stdout,
                       check=True)
        ex.stdout.close()
        ex.wait()
        ex = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', bdeb],
                              stdout=subprocess.PIPE)
        subprocess.run(['tar', '-x', '-C', tmp, './bin/busybox'],
                       stdin=ex.stdout, check=True)
        ex.stdout.close()
        ex.wait()
        for xz in glob.glob(os.path.join(tmp, '**/*.ko.xz'), recursive=True):
            subprocess.run(['xz', '-d', xz], check=True)
        shutil.rmtree(ready, ignore_errors=True)
        os.rename(tmp, ready)
        open(stamp, 'w').close()
    kernel = glob.glob(os.path.join(ready, 'boot', 'vmlinuz-*'))[0]
    mods = {}
    for ko in glob.glob(os.path.join(ready, 'lib', '**', '*.ko'),
                        recursive=True):
        mods[os.path.basename(ko)[:-3]] = ko
    return {'kernel': kernel,
            'modules': [mods[m] for m in MODULES if m in mods],
            'busybox': os.path.join(ready, 'bin', 'busybox')}


INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
exec </dev/console >/dev/console 2>&1
for m in %(modules)s; do insmod /lib/modules/$m.ko; done
for i in $(seq 100); do
    [ -b /dev/vda ] && break
    sleep 0.1
done
sh /test.sh
echo "BLOCKD-VM-EXIT=$?"
poweroff -f
'''


def make_initramfs(workdir, script, extra_files=None):
    """An initramfs (newc cpio) in @workdir running @script (sh text) as
    /test.sh; @extra_files maps guest paths to host files.  Returns its
    path."""
    g = ensure_guest()
    root = os.path.join(workdir, 'initramfs')
    shutil.rmtree(root, ignore_errors=True)
    for d in ('bin', 'dev', 'proc', 'sys', 'lib/modules', 'tmp'):
        os.makedirs(os.path.join(root, d))
    shutil.copy(g['busybox'], os.path.join(root, 'bin', 'busybox'))
    names = []
    for ko in g['modules']:
        name = os.path.basename(ko)[:-3]
        names.append(name)
        shutil.copy(ko, os.path.join(root, 'lib', 'modules', name + '.ko'))
    with open(os.path.join(root, 'init'), 'w') as f:
        f.write(INIT % {'modules': ' '.join(names)})
    os.chmod(os.path.join(root, 'init'), 0o755)
    with open(os.path.join(root, 'test.sh'), 'w') as f:
        f.write(script)
    for gpath, hpath in (extra_files or {}).items():
        dst = os.path.join(root, gpath.lstrip('/'))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(hpath, dst)
    out = os.path.join(workdir, 'initramfs.cpio')
    files = subprocess.run(['find', '.'], cwd=root, check=True,
                           capture_output=True).stdout
    with open(out, 'wb') as f:
        subprocess.run([g['busybox'], 'cpio', '-o', '-H', 'newc'], cwd=root,
                       input=files, stdout=f, stderr=subprocess.DEVNULL,
                       check=True)
    return out


def build_static_tool(workdir, name):
    """Compile tests/vm/NAME.c statically for the guest; returns the path."""
    out = os.path.join(workdir, name)
    subprocess.run(['cc', '-static', '-O2', '-o', out,
                    os.path.join(HERE, name + '.c')], check=True)
    return out


def qemu_vhost_user_blk_cmd(initrd, sock, num_queues=1, smp=1, mem='256M',
                            reconnect=None, append=''):
    """The QEMU command line: a q35 guest with shared memfd memory and one
    vhost-user-blk-pci disk on @sock."""
    g = ensure_guest()
    chardev = 'socket,id=vub0,path=%s' % sock
    if reconnect:
        chardev += ',reconnect=%d' % reconnect
    return ['qemu-system-x86_64', '-accel', 'tcg', '-M', 'q35,memory-backend=mem',
            '-object', 'memory-backend-memfd,id=mem,size=%s,share=on' % mem,
            '-m', mem, '-smp', str(smp),
            '-kernel', g['kernel'], '-initrd', initrd,
            '-append', 'console=ttyS0 panic=-1 loglevel=3 ' + append,
            '-nodefaults', '-no-user-config', '-display', 'none',
            '-serial', 'stdio', '-no-reboot',
            '-chardev', chardev,
            '-device', 'vhost-user-blk-pci,chardev=vub0,num-queues=%d'
            % num_queues]
