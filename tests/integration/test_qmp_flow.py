"""A QMP client that sends many commands at once and reads its replies
late gets every reply, in order, as from qemu-storage-daemon 7.2.

blockd stops reading a client's input while much of its output is
pending and reads on once the client has caught up, so its memory stays
bounded however far behind the client is (qsd's grows with the backlog);
but the client must lose nothing: no reset, no reply dropped, no command
skipped."""

import json
import os
import re
import signal
import socket
import threading
import time

import blockd_harness as h

COMMANDS = 2500
# The client reads once the daemon has done all it would do without it:
# when its CPU time stays the same for IDLE_PERIOD seconds (at least
# READ_DELAY after sending, at most IDLE_TIMEOUT).
READ_DELAY = 3.0
IDLE_PERIOD = 0.5
IDLE_TIMEOUT = 120.0
ID_EVERY = 100
# A success reply, compact as both daemons write it, and its id if any.
SUCCESS = re.compile(rb'\{"return": \[.*\](?:, "id": (\d+))?\}\r\n', re.S)
EXPECTED_IDS = [i if i % ID_EVERY == 0 else None for i in range(COMMANDS)]


def cpu_ticks(pid):
    """utime + stime of `pid` (clock ticks), from /proc/PID/stat."""
    with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_idle(pid):
    """Wait until process `pid` stops using CPU time."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    ticks = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(IDLE_PERIOD)
        now = cpu_ticks(pid)
        if now == ticks:
            return
        ticks = now


def vm_rss_kib(pid):
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return None


class PipelinedClient:
    """Send COMMANDS query-qmp-schema at once from a thread, and read the
    replies only later."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        deadline = time.monotonic() + h.START_TIMEOUT
        while True:
            try:
                self.sock.connect(path)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.file = self.sock.makefile('rb')
        self.read_one()                         # the greeting
        self.sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        assert self.read_one() == {'return': {}}
        self.send_error = None

    def close(self):
        self.file.close()
        self.sock.close()

    def read_one(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError('connection closed')
        return json.loads(line)

    def send_all(self, count):
        """Send `count` commands, compact as a script would write them;
        every ID_EVERY-th carries an id (its index), so that the order
        of the replies shows."""
        batch = b''.join(
            b'{"execute":"query-qmp-schema","id":%d}' % i if i % ID_EVERY == 0
            else b'{"execute":"query-qmp-schema"}' for i in range(count))

        def send():
            try:
                self.sock.sendall(batch)
            except OSError as e:
                self.send_error = e
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        return sender

    def replies(self, count):
        """Up to `count` replies: (ids in arrival order, the first
        reply's 'return', why reading stopped early or None)."""
        ids, first, why = [], None, None
        for _ in range(count):
            try:
                line = self.file.readline()
            except OSError as e:
                why = repr(e)
                break
            if not line:
                why = 'connection closed'
                break
            if first is None:
                first = json.loads(line).get('return')
            # Parsing each 100 KiB schema would cost more than the rest
            # of the test: a success reply's id is its last member.
            match = SUCCESS.fullmatch(line)
            if match:
                ids.append(int(match[1]) if match[1] else None)
            else:
                reply = json.loads(line)
                if 'event' not in reply:
                    ids.append(reply)
        return ids, first, why


class Pipelining(h.TestCase):

    def run_client(self, binary):
        sock = os.path.join(self.tmpdir, f'{os.path.basename(binary)}.sock')
        args = ['--chardev', f'socket,id=m,path={sock},server=on,wait=off',
                '--monitor', 'm']
        daemon = (self.start_daemon(args) if binary == h.BLOCKD
                  else self.start_qsd(args))
        daemon.wait_for_socket_file(sock)
        client = PipelinedClient(sock)
        self.addCleanup(client.close)
        # The whole batch is in the socket before the daemon reads any
        # of it, however the scheduler runs the two: the daemon sees it
        # in as few reads as it likes (64 KiB, 2000 commands at once).
        os.kill(daemon.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, daemon.pid, signal.SIGCONT)
        sender = client.send_all(COMMANDS)
        sender.join(READ_DELAY)
        os.kill(daemon.pid, signal.SIGCONT)
        time.sleep(READ_DELAY)
        wait_idle(daemon.pid)
        rss = vm_rss_kib(daemon.pid)
        ids, first, why = client.replies(COMMANDS)
        sender.join(10)
        print(f'{os.path.basename(binary)}: {len(ids)} of {COMMANDS} '
              f'replies read once the daemon was idle'
              + (f', then {why}' if why else '')
              + f'; VmRSS {rss} KiB before reading')
        self.assertIsNone(why, f'after {len(ids)} replies')
        self.assertIsNone(client.send_error)
        self.assertTrue(daemon.running(), daemon.stderr())
        # still serving the same client after its backlog
        client.sock.sendall(b'{"execute": "query-version", "id": "last"}\n')
        last = client.read_one()
        return ids, first, last

    def test_every_reply_in_order(self):
        ids, first, last = self.run_client(h.BLOCKD)
        self.assertEqual(ids, EXPECTED_IDS)
        self.assertIsInstance(first, list)
        self.assertEqual(last['id'], 'last')

    def test_same_as_qsd(self):
        """qemu-storage-daemon answers all of them too."""
        qsd = h.find_qsd()
        if qsd is None:
            self.skipTest('qemu-storage-daemon is not installed')
        ids, _, last = self.run_client(qsd)
        self.assertEqual(ids, EXPECTED_IDS)
        self.assertEqual(last['id'], 'last')


if __name__ == '__main__':
    h.main()
