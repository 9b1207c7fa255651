#!/usr/bin/python3
"""The vhost-user-blk export (export-vhost-user-blk plugin) with a real
front end: QEMU 7.2 (qemu-system-x86_64 -accel tcg, vhost-user-blk-pci,
shared memfd guest memory) boots the Debian cloud kernel (tests/vm/),
whose own virtio-blk driver does the I/O; the same guest runs against
qemu-storage-daemon 7.2.

- the guest reads the whole disk (checked against the image), switches
  the cache to write back (a SET_CONFIG), writes 4 MiB with O_DIRECT and
  fsync (FLUSH), makes ranges zero with WRITE_ZEROES (with and without
  unmap) and discards one; the host then checks the image byte for byte
  (raw and qcow2 nodes, qemu-img check for qcow2);
- restart safety: blockd is killed (SIGKILL) while the guest writes from
  four processes and started again with the same command line; QEMU
  (reconnect=1) reconnects, the requests that were in flight are
  submitted again from the in-flight buffer (INFLIGHT_SHMFD), and the
  guest finishes without an I/O error and with its data on the image;
- writable=off: the disk is read-only in the guest and writes fail;
- num-queues=2 with 'iothread' a list of two IOThreads and a guest of two
  CPUs: both queues carry requests, each in its own IOThread (the
  export's trace points name the queue and the thread), and the data
  written from both CPUs reaches the image;
- qsd's messages for bad options.
"""

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

import blockd_harness as h

sys.path.insert(0, os.path.join(h.SOURCE_ROOT, 'tests', 'vm'))
import blockd_vm  # noqa: E402

MiB = 1 << 20
DISK = 64 * MiB
# Guest run bound (TCG boot ~8 s on a quiet machine; several run at once).
GUEST_TIMEOUT = 150

RW_SCRIPT = r'''
echo "SIZE=$(cat /sys/block/vda/size)"
echo "RO=$(cat /sys/block/vda/ro)"
echo "READ=$(md5sum < /dev/vda | cut -d' ' -f1)"
echo "write back" > /sys/block/vda/cache_type
echo "CACHE=$(cat /sys/block/vda/cache_type)"
dd if=/data.bin of=/dev/vda bs=64k seek=16 oflag=direct conv=fsync \
    2>/dev/null && echo "DD=ok"
/vm-blkzero punch /dev/vda $((8 << 20)) $((1 << 20)) && echo "PUNCH=ok"
/vm-blkzero zeroout /dev/vda $((10 << 20)) $((1 << 20)) && echo "ZEROOUT=ok"
blkdiscard -o $((12 << 20)) -l $((1 << 20)) /dev/vda && echo "DISCARD=ok"
sync && echo "SYNC=ok"
echo "READBACK=$(dd if=/dev/vda bs=64k skip=16 count=64 iflag=direct \
    2>/dev/null | md5sum | cut -d' ' -f1)"
'''

RO_SCRIPT = r'''
echo "RO=$(cat /sys/block/vda/ro)"
echo "READ=$(md5sum < /dev/vda | cut -d' ' -f1)"
dd if=/data.bin of=/dev/vda bs=64k seek=16 oflag=direct 2>&1
echo "DD=$?"
'''


MQ_SCRIPT = r'''
echo "QUEUES=$(ls /sys/block/vda/mq | wc -l)"
taskset 1 dd if=/data.bin of=/dev/vda bs=64k count=32 seek=16 \
    oflag=direct 2>/dev/null &
taskset 2 dd if=/data.bin of=/dev/vda bs=64k count=32 skip=32 seek=48 \
    oflag=direct 2>/dev/null &
wait
taskset 1 dd if=/dev/vda of=/dev/null bs=64k count=64 iflag=direct \
    2>/dev/null &
taskset 2 dd if=/dev/vda of=/dev/null bs=64k count=64 skip=64 iflag=direct \
    2>/dev/null &
wait
sync
echo "READBACK=$(dd if=/dev/vda bs=64k skip=16 count=64 iflag=direct \
    2>/dev/null | md5sum | cut -d' ' -f1)"
'''


RECONNECT_SCRIPT = r'''
echo START
for i in 0 1 2 3; do
    (for j in 0 1; do
        dd if=/data.bin of=/dev/vda bs=64k seek=$(( (i * 2 + j) * 64 + 16 )) \
            oflag=direct 2>/dev/null || echo "DDFAIL=$i.$j"
    done) &
done
wait
echo WRITES-DONE
sync
for k in 0 1 2 3 4 5 6 7; do
    echo "MD5_$k=$(dd if=/dev/vda bs=64k skip=$((k * 64 + 16)) count=64 \
        iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
done
echo "IOERR=$(dmesg | grep -c 'I/O error')"
'''


def parse(out):
    vals = {}
    for line in out.splitlines():
        line = line.strip()
        if '=' in line and line.split('=', 1)[0].isupper():
            k, v = line.split('=', 1)
            vals[k] = v
    return vals


class VhostUserBlkTest(h.TestCase):

    def setUp(self):
        super().setUp()
        if shutil.which('qemu-system-x86_64') is None:
            self.skipTest('qemu-system-x86_64 is not installed')
        self.daemons = []

    def make_image(self):
        img = os.path.join(self.tmpdir, 'disk.raw')
        rnd = random.Random(15)
        with open(img, 'wb') as f:
            f.write(rnd.randbytes(DISK))
        data = os.path.join(self.tmpdir, 'data.bin')
        with open(data, 'wb') as f:
            f.write(rnd.randbytes(4 * MiB))
        return img, data

    def serve(self, qsd, img, sock, export_opts='', extra=(), fmt='raw'):
        args = ['--blockdev', 'driver=file,node-name=file,filename=%s,'
                'discard=unmap' % img,
                '--blockdev', 'driver=%s,node-name=disk,file=file,'
                'discard=unmap' % fmt] + list(extra) + \
               ['--export', 'type=vhost-user-blk,id=vub,node-name=disk,'
                'addr.type=unix,addr.path=%s%s' % (sock, export_opts)]
        d = self.start_qsd(args) if qsd else self.start_daemon(args)
        d.wait_for_socket_file(sock)
        self.daemons.append(d)
        return d

    def run_guest(self, script, sock, data, **kw):
        blkzero = blockd_vm.build_static_tool(self.tmpdir, 'vm-blkzero')
        initrd = blockd_vm.make_initramfs(
            self.tmpdir, script,
            {'/data.bin': data, '/vm-blkzero': blkzero})
        cmd = blockd_vm.qemu_vhost_user_blk_cmd(initrd, sock, **kw)
        res = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=GUEST_TIMEOUT,
                             stdin=subprocess.DEVNULL)
        out = res.stdout + res.stderr
        self.assertIn('BLOCKD-VM-EXIT=', out,
                      'the guest did not finish its script:\n' + out)
        return parse(out), out

    def check_rw(self, qsd, fmt='raw'):
        img, data = self.make_image()
        with open(img, 'rb') as f:
            orig = f.read()
        if fmt == 'qcow2':
            raw = img
            img = os.path.join(self.tmpdir, 'disk.qcow2')
            subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O',
                            'qcow2', raw, img], check=True)
        sock = os.path.join(self.tmpdir, 'vub.sock')
        d = self.serve(qsd, img, sock, ',writable=on', fmt=fmt)
        vals, out = self.run_guest(RW_SCRIPT, sock, data)
        with open(data, 'rb') as f:
            written = f.read()
        self.assertEqual(vals.get('SIZE'), str(DISK // 512), out)
        self.assertEqual(vals.get('RO'), '0', out)
        self.assertEqual(vals.get('READ'), hashlib.md5(orig).hexdigest(),
                         out)
        self.assertEqual(vals.get('CACHE'), 'write back', out)
        for k in ('DD', 'PUNCH', 'ZEROOUT', 'DISCARD', 'SYNC'):
            self.assertEqual(vals.get(k), 'ok', '%s failed:\n%s' % (k, out))
        self.assertEqual(vals.get('READBACK'),
                         hashlib.md5(written).hexdigest(), out)
        d.stop()
        if fmt == 'qcow2':
            res = subprocess.run(['qemu-img', 'check', img],
                                 capture_output=True, text=True)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                            img, raw], check=True)
            img = raw
        with open(img, 'rb') as f:
            now = f.read()
        expect = bytearray(orig)
        expect[1 * MiB:5 * MiB] = written
        for off in (8 * MiB, 10 * MiB, 12 * MiB):
            expect[off:off + MiB] = bytes(MiB)
        self.assertEqual(len(now), len(expect))
        for off in range(0, DISK, MiB):
            self.assertEqual(now[off:off + MiB], expect[off:off + MiB],
                             'the image differs at MiB %d' % (off // MiB))

    def test_guest_io_blockd(self):
        self.check_rw(qsd=False)

    def test_guest_io_qsd(self):
        self.check_rw(qsd=True)

    def test_guest_io_blockd_qcow2(self):
        self.check_rw(qsd=False, fmt='qcow2')

    def test_guest_io_qsd_qcow2(self):
        self.check_rw(qsd=True, fmt='qcow2')

    def check_ro(self, qsd):
        img, data = self.make_image()
        with open(img, 'rb') as f:
            orig = f.read()
        sock = os.path.join(self.tmpdir, 'vub.sock')
        d = self.serve(qsd, img, sock)
        vals, out = self.run_guest(RO_SCRIPT, sock, data)
        self.assertEqual(vals.get('RO'), '1', out)
        self.assertEqual(vals.get('READ'), hashlib.md5(orig).hexdigest(),
                         out)
        self.assertNotEqual(vals.get('DD'), '0', out)
        self.assertRegex(out, 'Read-only file system|Operation not permitted')
        d.stop()
        with open(img, 'rb') as f:
            self.assertEqual(f.read(), orig)

    def test_read_only_blockd(self):
        self.check_ro(qsd=False)

    def test_read_only_qsd(self):
        self.check_ro(qsd=True)

    def test_two_queues_two_iothreads(self):
        img, data = self.make_image()
        with open(img, 'rb') as f:
            orig = f.read()
        with open(data, 'rb') as f:
            written = f.read()
        sock = os.path.join(self.tmpdir, 'vub.sock')
        mon = os.path.join(self.tmpdir, 'qmp.sock')
        d = self.serve(False, img, sock, ',writable=on,num-queues=2,'
                       'iothread.0=io0,iothread.1=io1',
                       extra=['--object', 'iothread,id=io0',
                              '--object', 'iothread,id=io1',
                              '--chardev', 'socket,id=m,path=%s,server=on,'
                              'wait=off' % mon, '--monitor', 'chardev=m',
                              '-T', 'enable=export_vhost_user_blk_*'])
        d.wait_for_socket_file(mon)
        threads = {t['id']: t['thread-id']
                   for t in self.qmp(mon).command('query-iothreads')}
        vals, out = self.run_guest(MQ_SCRIPT, sock, data, num_queues=2,
                                   smp=2)
        self.assertEqual(vals.get('QUEUES'), '2', out)
        self.assertEqual(vals.get('READBACK'),
                         hashlib.md5(written).hexdigest(), out)
        served = {}
        for m in re.finditer(r'export_vhost_user_blk_request export vub '
                             r'queue (\d+) thread (\d+)', d.stderr()):
            served.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        self.assertEqual(served, {0: {threads['io0']},
                                  1: {threads['io1']}}, d.stderr()[-3000:])
        d.stop()
        with open(img, 'rb') as f:
            now = f.read()
        self.assertEqual(now[MiB:5 * MiB], written)
        self.assertEqual(now[:MiB], orig[:MiB])
        self.assertEqual(now[5 * MiB:], orig[5 * MiB:])

    def test_reconnect_after_kill(self):
        img, data = self.make_image()
        with open(img, 'rb') as f:
            orig = f.read()
        with open(data, 'rb') as f:
            written = f.read()
        sock = os.path.join(self.tmpdir, 'vub.sock')
        trace = ['-T', 'enable=export_vhost_user_blk_request']
        self.serve(False, img, sock, ',writable=on', extra=trace)
        first = self.daemons[-1]
        blkzero = blockd_vm.build_static_tool(self.tmpdir, 'vm-blkzero')
        initrd = blockd_vm.make_initramfs(self.tmpdir, RECONNECT_SCRIPT,
                                          {'/data.bin': data,
                                           '/vm-blkzero': blkzero})
        cmd = blockd_vm.qemu_vhost_user_blk_cmd(initrd, sock, reconnect=1)
        guest = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        self.addCleanup(guest.wait)
        self.addCleanup(guest.kill)
        lines = []
        reader = threading.Thread(
            target=lambda: lines.extend(
                l.decode(errors='replace') for l in guest.stdout))
        reader.start()
        deadline = time.monotonic() + GUEST_TIMEOUT
        while not any('START' in l for l in lines):
            self.assertLess(time.monotonic(), deadline, ''.join(lines))
            self.assertIsNone(guest.poll(), ''.join(lines))
            time.sleep(0.05)
        # Kill once the guest's writes are well under way.
        while first.stderr().count('export_vhost_user_blk_request') < 40:
            self.assertLess(time.monotonic(), deadline, ''.join(lines))
            time.sleep(0.01)
        first.proc.kill()
        first.proc.wait()
        self.assertFalse(any('WRITES-DONE' in l for l in lines),
                         'the guest finished before the kill')
        second = self.serve(False, img, sock, ',writable=on', extra=trace)
        guest.wait(GUEST_TIMEOUT)
        reader.join()
        out = ''.join(lines)
        vals = parse(out)
        self.assertIn('WRITES-DONE', out)
        self.assertNotIn('DDFAIL', out)
        self.assertEqual(vals.get('IOERR'), '0', out)
        for k in range(8):
            self.assertEqual(vals.get('MD5_%d' % k),
                             hashlib.md5(written).hexdigest(), out)
        self.assertIn('export_vhost_user_blk_request', second.stderr())
        second.stop()
        with open(img, 'rb') as f:
            now = f.read()
        self.assertEqual(now[:MiB], orig[:MiB])
        for k in range(8):
            self.assertEqual(now[MiB + k * 4 * MiB:MiB + (k + 1) * 4 * MiB],
                             written, 'region %d' % k)
        self.assertEqual(now[33 * MiB:], orig[33 * MiB:])

    def test_bad_options(self):
        """The same refusals as qemu-storage-daemon's."""
        sock = os.path.join(self.tmpdir, 's')
        cases = [
            ('addr.type=inet,addr.host=127.0.0.1,addr.port=1',
             "Only socket address types 'unix' and 'fd' are supported"),
            ('addr.type=unix,addr.path=%s,num-queues=0' % sock,
             'num-queues must be greater than 0'),
            ('addr.type=unix,addr.path=%s,logical-block-size=1000' % sock,
             "Property vub.logical-block-size doesn't take value '1000', "
             "it's not a power of 2"),
            ('addr.type=unix,addr.path=%s,logical-block-size=256' % sock,
             "Property vub.logical-block-size doesn't take value 256 "
             "(minimum: 512, maximum: 2097152)"),
        ]
        for opts, msg in cases:
            for binary in (h.BLOCKD, h.find_qsd()):
                if binary is None:
                    self.skipTest('qemu-storage-daemon is not installed')
                res = self.run_command(
                    [binary, '--blockdev', 'null-co,node-name=n',
                     '--export', 'vhost-user-blk,id=vub,node-name=n,' + opts],
                    timeout=10)
                self.assertEqual(res.returncode, 1, (binary, opts, res))
                self.assertIn(msg, res.stderr, (binary, opts))


if __name__ == '__main__':
    h.main()
