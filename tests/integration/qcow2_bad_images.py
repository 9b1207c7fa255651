#!/usr/bin/python3
"""The test set of corrupt and unsupported qcow2 images.

Each image starts as a good one made by qemu-img (so only what the case
names is wrong with it) and then has its header, header extensions or
tables patched in place.  test_qcow2_bad_images.py opens every one with
blockd and with qemu-storage-daemon 7.2 and compares the errors; by hand,

    /usr/bin/python3 qcow2_bad_images.py DIR

writes the whole set into DIR (one NAME.qcow2 per case) to look at with
qemu-img info/check.

Field offsets are those of docs/interop/qcow2.txt (specs/qcow2.txt).
Only the Python standard library is used.
"""

import os
import struct
import subprocess
import sys

MIB = 1024 * 1024

# header fields: (offset, struct format)
MAGIC = (0, '>I')
VERSION = (4, '>I')
BACKING_OFFSET = (8, '>Q')
BACKING_SIZE = (16, '>I')
CLUSTER_BITS = (20, '>I')
SIZE = (24, '>Q')
CRYPT_METHOD = (32, '>I')
L1_SIZE = (36, '>I')
L1_OFFSET = (40, '>Q')
REFTABLE_OFFSET = (48, '>Q')
REFTABLE_CLUSTERS = (56, '>I')
NB_SNAPSHOTS = (60, '>I')
SNAPSHOTS_OFFSET = (64, '>Q')
INCOMPAT = (72, '>Q')
COMPAT = (80, '>Q')
AUTOCLEAR = (88, '>Q')
REFCOUNT_ORDER = (96, '>I')
HEADER_LENGTH = (100, '>I')
COMPRESSION_TYPE = (104, '>B')

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
COMPAT_LAZY_REFCOUNTS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

EXT_END = 0
EXT_BACKING_FORMAT = 0xe2792aca
EXT_FEATURE_TABLE = 0x6803f857
EXT_CRYPTO = 0x0537be77

# L2 entry bits
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1


class Image:
    """A qcow2 file opened for patching."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, 'r+b')

    def close(self):
        self.f.close()

    def get(self, field):
        off, fmt = field
        self.f.seek(off)
        return struct.unpack(fmt, self.f.read(struct.calcsize(fmt)))[0]

    def set(self, field, value):
        off, fmt = field
        self.f.seek(off)
        self.f.write(struct.pack(fmt, value))

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def write(self, off, data):
        self.f.seek(off)
        self.f.write(data)

    def u64(self, off):
        return struct.unpack('>Q', self.read(off, 8))[0]

    def put_u64(self, off, v):
        self.write(off, struct.pack('>Q', v))

    @property
    def cluster_size(self):
        return 1 << self.get(CLUSTER_BITS)

    def file_size(self):
        self.f.seek(0, os.SEEK_END)
        return self.f.tell()

    # --- header extensions (version 3) ---

    def extensions(self):
        """[(type, data)] up to the end marker."""
        off = self.get(HEADER_LENGTH)
        exts = []
        while off + 8 <= self.cluster_size:
            etype, elen = struct.unpack('>II', self.read(off, 8))
            if etype == EXT_END:
                break
            exts.append((etype, self.read(off + 8, elen)))
            off += 8 + ((elen + 7) & ~7)
        return exts

    def set_extensions(self, exts, raw_lengths=None):
        """Rewrite the extension area; raw_lengths maps an index to the
        length field to write instead of the data's real one."""
        off = self.get(HEADER_LENGTH)
        out = b''
        for i, (etype, data) in enumerate(exts):
            elen = len(data)
            if raw_lengths and i in raw_lengths:
                elen = raw_lengths[i]
            out += struct.pack('>II', etype, elen) + data
            out += b'\0' * (-len(data) % 8)
        out += struct.pack('>II', EXT_END, 0)
        self.write(off, out)

    # --- tables ---

    def l1_entry(self, index):
        return self.u64(self.get(L1_OFFSET) + 8 * index)

    def first_l2_offset(self):
        return self.l1_entry(0) & 0x00fffffffffffe00

    def l2_entry_offset(self, index):
        """File offset of entry `index` of the first L2 table."""
        return self.first_l2_offset() + 8 * index


def qemu_img(*args):
    subprocess.run(['qemu-img'] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def qemu_io(path, *cmds, fmt='qcow2'):
    argv = ['qemu-io', '-f', fmt]
    for c in cmds:
        argv += ['-c', c]
    subprocess.run(argv + [path], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def create(path, opts='', size='64M', data=True):
    """A qemu-img image; with `data`, the first clusters are written so
    that an L2 table and data clusters exist."""
    argv = ['create', '-f', 'qcow2']
    if opts:
        argv += ['-o', opts]
    qemu_img(*argv, path, size)
    if data:
        qemu_io(path, 'write -P 0x5a 0 192k')


def patched(opts='', size='64M', data=True):
    """Decorator: the case makes a qemu-img image, then patches it."""
    def wrap(fn):
        def make(path):
            create(path, opts, size, data)
            img = Image(path)
            try:
                fn(img)
            finally:
                img.close()
        make.__doc__ = fn.__doc__
        return make
    return wrap


# --- the cases ------------------------------------------------------------
#
# Each returns a function that builds the image at a path.  CASES lists
# (name, builder, read_only): read_only opens the node with read-only=on
# (the case is about what a read-only open accepts).

@patched()
def bad_magic(img):
    """not a qcow2 magic"""
    img.set(MAGIC, 0x514649fc)


@patched()
def version_1(img):
    img.set(VERSION, 1)


@patched()
def version_4(img):
    img.set(VERSION, 4)


@patched()
def unknown_incompat_unnamed(img):
    """incompatible bit 10, which the feature table does not name"""
    img.set(INCOMPAT, img.get(INCOMPAT) | (1 << 10))


@patched()
def unknown_incompat_named(img):
    """incompatible bits 10 and 40 with feature-table entries"""
    exts = img.extensions()
    for i, (etype, data) in enumerate(exts):
        if etype == EXT_FEATURE_TABLE:
            data += struct.pack('>BB46s', 0, 10, b'frobnication')
            data += struct.pack('>BB46s', 0, 40, b'x' * 46)
            exts[i] = (etype, data)
    img.set_extensions(exts)
    img.set(INCOMPAT, img.get(INCOMPAT) | (1 << 10) | (1 << 40))


@patched()
def unknown_incompat_one_named(img):
    """incompatible bits 11 (named) and 12 (not named)"""
    exts = img.extensions()
    for i, (etype, data) in enumerate(exts):
        if etype == EXT_FEATURE_TABLE:
            data += struct.pack('>BB46s', 0, 11, b'teleportation')
            exts[i] = (etype, data)
    img.set_extensions(exts)
    img.set(INCOMPAT, img.get(INCOMPAT) | (1 << 11) | (1 << 12))


@patched()
def unknown_compat_autoclear(img):
    """unknown compatible and autoclear bits are not errors"""
    img.set(COMPAT, img.get(COMPAT) | (1 << 20))
    img.set(AUTOCLEAR, img.get(AUTOCLEAR) | (1 << 30))


@patched()
def cluster_bits_8(img):
    img.set(CLUSTER_BITS, 8)


@patched()
def cluster_bits_22(img):
    img.set(CLUSTER_BITS, 22)


@patched()
def cluster_bits_huge(img):
    img.set(CLUSTER_BITS, 0xffffffff)


@patched()
def header_length_short(img):
    img.set(HEADER_LENGTH, 96)


@patched()
def header_length_unaligned(img):
    img.set(HEADER_LENGTH, 105)


@patched()
def header_length_past_cluster(img):
    img.set(HEADER_LENGTH, 65536 + 8)


@patched()
def refcount_order_7(img):
    img.set(REFCOUNT_ORDER, 7)


@patched()
def refcount_order_huge(img):
    """a width whose top bit is set (negative as a signed int)"""
    img.set(REFCOUNT_ORDER, 0xff000004)


@patched()
def header_length_huge(img):
    img.set(HEADER_LENGTH, 0xfffffff8)


@patched()
def l1_size_top_bit(img):
    img.set(L1_SIZE, 0x80000001)


@patched()
def backing_size_huge(img):
    img.set(BACKING_OFFSET, 0x1000)
    img.set(BACKING_SIZE, 0xffffffff)


@patched()
def snapshots_count_huge(img):
    img.set(NB_SNAPSHOTS, 0xffffffff)
    img.set(SNAPSHOTS_OFFSET, 0x10000)


@patched()
def l1_offset_unaligned(img):
    img.set(L1_OFFSET, img.get(L1_OFFSET) + 512)


@patched()
def l1_offset_zero(img):
    """the L1 table on top of the header"""
    img.set(L1_OFFSET, 0)


@patched()
def l1_offset_past_end(img):
    img.set(L1_OFFSET, 1 << 40)


@patched()
def l1_offset_beyond_limit(img):
    img.set(L1_OFFSET, 0x00fffffffffff0000 & ~0xffff)


@patched()
def l1_size_too_large(img):
    img.set(L1_SIZE, 0x10000000)


@patched()
def l1_size_too_small(img):
    img.set(L1_SIZE, 0)


@patched()
def l1_overlaps_refcount_table(img):
    img.set(L1_OFFSET, img.get(REFTABLE_OFFSET))


@patched()
def reftable_offset_unaligned(img):
    img.set(REFTABLE_OFFSET, img.get(REFTABLE_OFFSET) + 8)


@patched()
def reftable_offset_zero(img):
    img.set(REFTABLE_OFFSET, 0)


@patched()
def reftable_past_end(img):
    img.set(REFTABLE_OFFSET, 1 << 40)


@patched()
def reftable_too_large(img):
    img.set(REFTABLE_CLUSTERS, 0x01000000)


@patched()
def reftable_zero_clusters(img):
    img.set(REFTABLE_CLUSTERS, 0)


@patched()
def size_too_large(img):
    img.set(SIZE, 1 << 62)


@patched()
def size_not_multiple(img):
    """an image size that is not a multiple of 512 is fine"""
    img.set(SIZE, 64 * MIB - 100)


@patched()
def snapshots_too_many(img):
    img.set(NB_SNAPSHOTS, 70000)
    img.set(SNAPSHOTS_OFFSET, 0x10000)


@patched()
def snapshots_offset_unaligned(img):
    img.set(NB_SNAPSHOTS, 1)
    img.set(SNAPSHOTS_OFFSET, 0x10008)


@patched()
def backing_offset_past_cluster(img):
    img.set(BACKING_OFFSET, 0x20000)
    img.set(BACKING_SIZE, 8)


@patched()
def backing_name_too_long(img):
    img.set(BACKING_OFFSET, 0x1000)
    img.set(BACKING_SIZE, 2048)


@patched()
def crypt_method_aes(img):
    """old AES-CBC encryption, without a key"""
    img.set(CRYPT_METHOD, 1)


@patched()
def crypt_method_unknown(img):
    img.set(CRYPT_METHOD, 3)


@patched()
def corrupt_bit(img):
    img.set(INCOMPAT, img.get(INCOMPAT) | INCOMPAT_CORRUPT)


@patched()
def dirty_bit_without_lazy(img):
    """dirty without lazy_refcounts: qemu repairs it on open"""
    img.set(INCOMPAT, img.get(INCOMPAT) | INCOMPAT_DIRTY)


@patched(opts='lazy_refcounts=on')
def dirty_bit_lazy(img):
    """dirty with lazy refcounts and refcounts left at zero, as after a
    crash: repaired on a read-write open"""
    img.set(INCOMPAT, img.get(INCOMPAT) | INCOMPAT_DIRTY)
    # forget the refcounts of the data clusters (the L2 table and three
    # data clusters after the L1 table)
    rt = img.get(REFTABLE_OFFSET)
    block = img.u64(rt) & ~0x1ff
    for cluster in range(4, 8):
        img.write(block + 2 * cluster, b'\0\0')


@patched()
def compression_type_unknown(img):
    img.set(INCOMPAT, img.get(INCOMPAT) | INCOMPAT_COMPRESSION)
    img.set(COMPRESSION_TYPE, 7)


@patched()
def compression_type_without_bit(img):
    """zstd named in the header without the incompatible bit"""
    img.set(COMPRESSION_TYPE, 1)


@patched()
def compression_bit_zlib(img):
    """the compression bit set with zlib is an error"""
    img.set(INCOMPAT, img.get(INCOMPAT) | INCOMPAT_COMPRESSION)


@patched()
def data_file_bit_without_name(img):
    img.set(INCOMPAT, img.get(INCOMPAT) | INCOMPAT_DATA_FILE)


@patched()
def data_file_raw_without_data_file(img):
    img.set(AUTOCLEAR, img.get(AUTOCLEAR) | AUTOCLEAR_DATA_FILE_RAW)


@patched()
def extension_length_past_cluster(img):
    exts = img.extensions()
    img.set_extensions(exts, raw_lengths={0: 0x20000})


@patched()
def backing_format_too_long(img):
    exts = img.extensions()
    exts.insert(0, (EXT_BACKING_FORMAT, b'q' * 40))
    img.set_extensions(exts)


@patched()
def crypto_header_without_encryption(img):
    exts = img.extensions()
    exts.insert(0, (EXT_CRYPTO, struct.pack('>QQ', 0x30000, 0x10000)))
    img.set_extensions(exts)


@patched(opts='compat=0.10')
def v2_garbage_after_header(img):
    """a version 2 header ends at byte 72, where header extensions
    begin: garbage there is an extension of a bad length"""
    img.write(72, b'\xff' * 32)


def luks_encrypted(path):
    """a LUKS-encrypted image opened without its key secret"""
    argv = ['create', '--object', 'secret,id=sec0,data=123456',
            '-f', 'qcow2', '-o',
            'encrypt.format=luks,encrypt.key-secret=sec0,'
            'encrypt.iter-time=10', path, '16M']
    # qemu-img times its PBKDF on the CPU clock and gives up when the
    # machine is too busy to measure it: retry, that is the tool's limit
    for _ in range(9):
        try:
            qemu_img(*argv)
            return
        except subprocess.CalledProcessError as e:
            if b'Unable to get accurate CPU usage' not in e.stderr:
                raise
            if os.path.exists(path):
                os.unlink(path)
    qemu_img(*argv)


# --- the bitmaps extension and directory (two bitmaps, b0 with data) ---

EXT_BITMAPS = 0x23852875
AUTOCLEAR_BITMAPS = 1 << 0


def with_bitmaps(fn):
    """Decorator: an image with bitmaps b0 (which recorded a write, so it
    has a table and a data cluster) and b1, then patched."""
    def make(path):
        create(path, data=False)
        qemu_img('bitmap', '--add', path, 'b0')
        qemu_io(path, 'write -P 0x5a 0 192k')
        qemu_img('bitmap', '--add', path, 'b1')
        img = Image(path)
        try:
            fn(img)
        finally:
            img.close()
    make.__doc__ = fn.__doc__
    return make


def bitmaps_ext(img):
    """(index of the extension, its data as a bytearray, all of them)"""
    exts = img.extensions()
    for i, (etype, data) in enumerate(exts):
        if etype == EXT_BITMAPS:
            return i, bytearray(data), exts
    raise AssertionError('no bitmaps extension')


def set_bitmaps_ext(img, nb=None, size=None, offset=None):
    i, data, exts = bitmaps_ext(img)
    if nb is not None:
        data[0:4] = struct.pack('>I', nb)
    if size is not None:
        data[8:16] = struct.pack('>Q', size)
    if offset is not None:
        data[16:24] = struct.pack('>Q', offset)
    exts[i] = (EXT_BITMAPS, bytes(data))
    img.set_extensions(exts)


def bitmap_dir(img):
    _, data, _ = bitmaps_ext(img)
    return struct.unpack('>Q', data[16:24])[0]


@with_bitmaps
def bitmaps_dir_size_zero(img):
    set_bitmaps_ext(img, size=0)


@with_bitmaps
def bitmaps_dir_offset_unaligned(img):
    set_bitmaps_ext(img, offset=bitmap_dir(img) + 8)


@with_bitmaps
def bitmaps_count_more(img):
    """the header counts 3, the directory holds 2"""
    set_bitmaps_ext(img, nb=3)


@with_bitmaps
def bitmaps_count_fewer(img):
    set_bitmaps_ext(img, nb=1)


@with_bitmaps
def bitmaps_extra_data(img):
    d = bitmap_dir(img)
    img.write(d + 20, struct.pack('>I', 8))


@with_bitmaps
def bitmaps_reserved_flag(img):
    d = bitmap_dir(img)
    img.write(d + 12, struct.pack('>I', 1 << 2 | 1 << 1))


@with_bitmaps
def bitmaps_granularity_8(img):
    d = bitmap_dir(img)
    img.write(d + 17, bytes([8]))


@with_bitmaps
def bitmaps_table_unaligned(img):
    d = bitmap_dir(img)
    img.put_u64(d, img.u64(d) + 512)


@with_bitmaps
def bitmaps_table_entry_reserved(img):
    """b0's first table entry with a reserved bit"""
    table = img.u64(bitmap_dir(img))
    img.put_u64(table, img.u64(table) | 2)


@with_bitmaps
def bitmaps_autoclear_clear(img):
    """a program without bitmap support wrote the image: the bitmaps are
    dropped with a warning"""
    img.set(AUTOCLEAR, img.get(AUTOCLEAR) & ~AUTOCLEAR_BITMAPS)


@with_bitmaps
def bitmaps_in_use(img):
    d = bitmap_dir(img)
    img.write(d + 12, struct.pack('>I', 3))


BITMAP_CASES = [
    ('bitmaps_dir_size_zero', bitmaps_dir_size_zero, False),
    ('bitmaps_dir_offset_unaligned', bitmaps_dir_offset_unaligned, False),
    ('bitmaps_count_more', bitmaps_count_more, False),
    ('bitmaps_count_fewer', bitmaps_count_fewer, False),
    ('bitmaps_extra_data', bitmaps_extra_data, False),
    ('bitmaps_reserved_flag', bitmaps_reserved_flag, False),
    ('bitmaps_granularity_8', bitmaps_granularity_8, False),
    ('bitmaps_table_unaligned', bitmaps_table_unaligned, False),
    ('bitmaps_table_entry_reserved', bitmaps_table_entry_reserved, False),
    ('bitmaps_table_entry_reserved_read_only', bitmaps_table_entry_reserved,
     True),
    ('bitmaps_autoclear_clear', bitmaps_autoclear_clear, False),
    ('bitmaps_in_use', bitmaps_in_use, False),
    ('bitmaps_in_use_read_only', bitmaps_in_use, True),
]


CASES = [
    ('bad_magic', bad_magic, False),
    ('version_1', version_1, False),
    ('version_4', version_4, False),
    ('unknown_incompat_unnamed', unknown_incompat_unnamed, False),
    ('unknown_incompat_named', unknown_incompat_named, False),
    ('unknown_incompat_one_named', unknown_incompat_one_named, False),
    ('unknown_compat_autoclear', unknown_compat_autoclear, False),
    ('cluster_bits_8', cluster_bits_8, False),
    ('cluster_bits_22', cluster_bits_22, False),
    ('cluster_bits_huge', cluster_bits_huge, False),
    ('header_length_short', header_length_short, False),
    ('header_length_unaligned', header_length_unaligned, False),
    ('header_length_past_cluster', header_length_past_cluster, False),
    ('refcount_order_7', refcount_order_7, False),
    ('refcount_order_huge', refcount_order_huge, False),
    ('header_length_huge', header_length_huge, False),
    ('l1_size_top_bit', l1_size_top_bit, False),
    ('backing_size_huge', backing_size_huge, False),
    ('snapshots_count_huge', snapshots_count_huge, False),
    ('l1_offset_unaligned', l1_offset_unaligned, False),
    ('l1_offset_zero', l1_offset_zero, False),
    ('l1_offset_past_end', l1_offset_past_end, False),
    ('l1_offset_beyond_limit', l1_offset_beyond_limit, False),
    ('l1_size_too_large', l1_size_too_large, False),
    ('l1_size_too_small', l1_size_too_small, False),
    ('l1_overlaps_refcount_table', l1_overlaps_refcount_table, False),
    ('reftable_offset_unaligned', reftable_offset_unaligned, False),
    ('reftable_offset_zero', reftable_offset_zero, False),
    ('reftable_past_end', reftable_past_end, False),
    ('reftable_too_large', reftable_too_large, False),
    ('reftable_zero_clusters', reftable_zero_clusters, False),
    ('size_too_large', size_too_large, False),
    ('size_not_multiple', size_not_multiple, False),
    ('snapshots_too_many', snapshots_too_many, False),
    ('snapshots_offset_unaligned', snapshots_offset_unaligned, False),
    ('backing_offset_past_cluster', backing_offset_past_cluster, False),
    ('backing_name_too_long', backing_name_too_long, False),
    ('crypt_method_aes', crypt_method_aes, False),
    ('crypt_method_unknown', crypt_method_unknown, False),
    ('luks_encrypted', luks_encrypted, False),
    ('corrupt_bit', corrupt_bit, False),
    ('corrupt_bit_read_only', corrupt_bit, True),
    ('dirty_bit_without_lazy', dirty_bit_without_lazy, False),
    ('dirty_bit_lazy', dirty_bit_lazy, False),
    ('dirty_bit_lazy_read_only', dirty_bit_lazy, True),
    ('compression_type_unknown', compression_type_unknown, False),
    ('compression_type_without_bit', compression_type_without_bit, False),
    ('compression_bit_zlib', compression_bit_zlib, False),
    ('data_file_bit_without_name', data_file_bit_without_name, False),
    ('data_file_raw_without_data_file', data_file_raw_without_data_file,
     False),
    ('extension_length_past_cluster', extension_length_past_cluster, False),
    ('backing_format_too_long', backing_format_too_long, False),
    ('crypto_header_without_encryption', crypto_header_without_encryption,
     False),
    ('v2_garbage_after_header', v2_garbage_after_header, False),
] + BITMAP_CASES


# --- garbage in the tables, found only when the data is reached ----------
#
# Each of these opens; what reaching guest offset 0 (first L2 table,
# entry 0) does is qemu's.  The third field says what qemu 7.2 does:
# True, it finds the image corrupt (BLOCK_IMAGE_CORRUPTED, I/O errors);
# False, it reads zeros past the end of the file and writes there;
# None, the read fails with an I/O error without an event (data that
# does not decompress).

@patched()
def l2_entry_unaligned(img):
    off = img.l2_entry_offset(0)
    img.put_u64(off, OFLAG_COPIED | ((img.u64(off) & 0x00fffffffffffe00)
                                     + 512))


@patched()
def l2_entry_past_end(img):
    img.put_u64(img.l2_entry_offset(0), OFLAG_COPIED | (1 << 40))


@patched()
def l2_entry_on_l1_table(img):
    """a data cluster that is the L1 table: reads give the table, writes
    are refused as overlapping metadata"""
    img.put_u64(img.l2_entry_offset(0), OFLAG_COPIED | img.get(L1_OFFSET))


@patched()
def l2_entry_compressed_garbage(img):
    """a compressed descriptor that points at data that does not inflate"""
    cb = img.get(CLUSTER_BITS)
    x = 62 - (cb - 8)
    data = img.l1_entry(0) & 0x00fffffffffffe00   # the L2 table itself
    img.put_u64(img.l2_entry_offset(0),
                OFLAG_COMPRESSED | (1 << x) | data)


@patched()
def l1_entry_unaligned(img):
    off = img.get(L1_OFFSET)
    img.put_u64(off, img.u64(off) + 512)


@patched()
def l1_entry_past_end(img):
    img.put_u64(img.get(L1_OFFSET), OFLAG_COPIED | (1 << 40))


GARBAGE_CASES = [
    ('l2_entry_unaligned', l2_entry_unaligned, True),
    ('l2_entry_past_end', l2_entry_past_end, False),
    ('l2_entry_on_l1_table', l2_entry_on_l1_table, True),
    ('l2_entry_compressed_garbage', l2_entry_compressed_garbage, None),
    ('l1_entry_unaligned', l1_entry_unaligned, True),
    ('l1_entry_past_end', l1_entry_past_end, False),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(f'usage: {sys.argv[0]} DIR')
    out = sys.argv[1]
    os.makedirs(out, mode=0o700, exist_ok=True)
    for name, make, _ in CASES + GARBAGE_CASES:
        path = os.path.join(out, name + '.qcow2')
        if os.path.exists(path):
            os.unlink(path)
        make(path)
        print(path)


if __name__ == '__main__':
    main()
