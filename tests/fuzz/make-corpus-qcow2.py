#!/usr/bin/python3
"""Write the seed corpus of fuzz-qcow2 into corpus-qcow2/.

Each seed is one input of fuzz-qcow2.c: byte 0 the mode, bytes 1-8 the
offsets the target picks, then a small qcow2 image made by qemu-img and
filled by qemu-io, with one feature of the format each: both versions,
small cluster sizes, refcount widths, lazy refcounts, extended L2
entries, zlib and zstd compressed clusters, an external data file, a
backing file name, persistent bitmaps, zero clusters and discarded
ones.  The images are kept small (512-byte clusters where the feature
allows) so that the fuzzer's mutations hit metadata often.

Run it after changing it (needs qemu-img and qemu-io; standard library
only):  /usr/bin/python3 tests/fuzz/make-corpus-qcow2.py
"""

import os
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'corpus-qcow2')

# mode bits of fuzz-qcow2.c
READ_ONLY = 1
DATA_FILE = 2
SMALL_CACHE = 4
LAZY = 8

FILL = ['write -P 0x11 0 4k', 'write -P 0x22 6k 3k', 'write -z 16k 4k',
        'write -z -u 20k 8k', 'discard 2k 1k', 'write -P 0x33 200k 1k']


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def image(work, opts='', size='256k', cmds=FILL, extra=()):
    path = os.path.join(work, 'img.qcow2')
    for f in os.listdir(work):
        os.unlink(os.path.join(work, f))
    argv = ['qemu-img', 'create', '-f', 'qcow2'] + list(extra)
    if opts:
        argv += ['-o', opts]
    run(*argv, path, size)
    if cmds:
        io = ['qemu-io', '-f', 'qcow2']
        for c in cmds:
            io += ['-c', c]
        run(*io, path)
    return path


def compressed(work, ctype, cluster):
    raw = os.path.join(work, 'src.raw')
    path = os.path.join(work, 'img.qcow2')
    for f in os.listdir(work):
        os.unlink(os.path.join(work, f))
    with open(raw, 'wb') as f:
        for i in range(8):
            f.write(bytes([i + 1]) * (cluster // 2) +
                    bytes(range(256)) * (cluster // 512))
        f.truncate(64 * 1024)
    run('qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o',
        f'compression_type={ctype},cluster_size={cluster}', raw, path)
    return path


def with_snapshots(work):
    """Two internal snapshots sharing clusters with the active image."""
    path = image(work, 'cluster_size=512')
    run('qemu-img', 'snapshot', '-c', 's0', path)
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x77 1k 2k', path)
    run('qemu-img', 'snapshot', '-c', 's1', path)
    return path


def bitmaps_with_data(work, in_use=False):
    """Bitmaps that recorded writes (data clusters, tables), one disabled;
    with `in_use` the first is marked in use, as a killed writer leaves
    it."""
    path = image(work, 'cluster_size=512', cmds=[])
    run('qemu-img', 'bitmap', '--add', '-g', '512', path, 'd0')
    run('qemu-img', 'bitmap', '--add', '-g', '4096', path, 'd1')
    io = ['qemu-io', '-f', 'qcow2']
    for c in FILL:
        io += ['-c', c]
    run(*io, path)
    run('qemu-img', 'bitmap', '--disable', path, 'd1')
    if in_use:
        with open(path, 'r+b') as f:
            hdr = f.read(512)
            off = struct.unpack('>I', hdr[100:104])[0]
            while True:
                typ, ln = struct.unpack('>II', hdr[off:off + 8])
                if typ == 0x23852875:
                    dir_off = struct.unpack('>Q', hdr[off + 24:off + 32])[0]
                    break
                off += 8 + (ln + 7) // 8 * 8
            f.seek(dir_off + 12)
            flags = struct.unpack('>I', f.read(4))[0]
            f.seek(dir_off + 12)
            f.write(struct.pack('>I', flags | 1))
    return path


def seeds(work):
    """(name, mode, picks, image path) for every seed."""
    c = 'cluster_size=512'
    yield 'v3-512', 0, 0, image(work, c)
    yield 'v3-512-ro', READ_ONLY, 0, image(work, c)
    yield 'v3-512-small-cache', SMALL_CACHE, 0x0000100000000800, \
        image(work, c)
    yield 'v2-512', 0, 0, image(work, 'compat=0.10,' + c)
    yield 'v3-1k-refcount1', 0, 0, image(work, c + ',refcount_bits=1')
    yield 'v3-512-refcount64', 0, 0, image(work, c + ',refcount_bits=64')
    yield 'v3-4k-lazy', LAZY, 0, image(work, 'cluster_size=4096,'
                                       'lazy_refcounts=on')
    yield 'v3-16k-extl2', 0, 0x0000300000001200, \
        image(work, 'cluster_size=16384,extended_l2=on',
              cmds=['write -P 0x44 0 2k', 'write -P 0x45 5k 1k',
                    'write -z 8k 2k', 'write -P 0x46 40k 1k'])
    yield 'zlib-512', 0, 0, compressed(work, 'zlib', 512)
    yield 'zstd-512', 0, 0, compressed(work, 'zstd', 512)
    yield 'zstd-512-ro', READ_ONLY, 0, compressed(work, 'zstd', 512)
    data = os.path.join(work, 'data.raw')
    yield 'data-file', DATA_FILE, 0, \
        image(work, f'{c},data_file={data}', cmds=[])
    yield 'data-file-raw', DATA_FILE, 0, \
        image(work, f'{c},data_file={data},data_file_raw=on', cmds=[])
    base = os.path.join(work, 'base.qcow2')
    path = image(work, c, cmds=[])
    os.rename(path, base)
    run('qemu-img', 'create', '-f', 'qcow2', '-o', c, '-b', base, '-F',
        'qcow2', os.path.join(work, 'img.qcow2'))
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x55 1k 1k',
        os.path.join(work, 'img.qcow2'))
    yield 'backing-name', 0, 0, os.path.join(work, 'img.qcow2')
    path = image(work, 'cluster_size=4096')
    run('qemu-img', 'bitmap', '--add', path, 'b0')
    run('qemu-img', 'bitmap', '--add', '-g', '65536', path, 'b1')
    yield 'bitmaps', 0, 0, path
    yield 'snapshots', 0, 0x0000040000000200, with_snapshots(work)
    yield 'bitmaps-data', 0, 0x0000080000000400, bitmaps_with_data(work)
    yield 'bitmaps-in-use', 0, 0, bitmaps_with_data(work, in_use=True)
    yield 'big-virtual-size', 0, 0xfffffff0ffffff00, \
        image(work, 'cluster_size=2048', size='1G',
              cmds=['write -P 0x66 0 1k', 'write -P 0x67 1023m 1k'])


def main():
    work = tempfile.mkdtemp(prefix='blockd-corpus-')
    try:
        if os.path.isdir(OUT):
            shutil.rmtree(OUT)
        os.makedirs(OUT)
        for name, mode, picks, path in seeds(work):
            with open(path, 'rb') as f:
                img = f.read()
            with open(os.path.join(OUT, name), 'wb') as f:
                f.write(struct.pack('<BQ', mode, picks) + img)
            print(f'{name}: {len(img)} bytes')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
