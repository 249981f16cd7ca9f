"""End-to-end test that one session's long command does not stall the
others on its worker: SEARCH, SORT and THREAD run in slices (imap.c,
SCAN_SLICE_MS), the worker serving its other sessions between them."""
import os
import statistics
import time

from test_imap import Raw, imap_server

N = 30000


def fill(s, n):
    """INBOX of alice with n messages, written as another program would."""
    home = os.path.join(s.storage, "mail", "example.org", "alice")
    os.makedirs(home, exist_ok=True)
    msg = ("From x@example.org Mon Jan  5 10:00:00 2026\nFrom: x@example.org\n"
           "Subject: message %d\n\n" + "some body text to read through " * 20 + "\n\n")
    with open(os.path.join(home, "INBOX.mbox"), "w") as f:
        f.write("".join(msg % i for i in range(n)))


def test_noop_is_answered_during_a_long_search():
    """slices: with one worker, another session's NOOPs are answered within 50 ms while a body SEARCH of 30,000 messages runs; the SEARCH and a command pipelined after it are answered in order"""
    s = imap_server(conf="Workers 1")
    try:
        fill(s, N)
        a, b = Raw(s.imap_port, timeout=120), Raw(s.imap_port, timeout=120)
        for c in (a, b):
            assert c.cmd(b"l", b"LOGIN alice@example.org secret")[-1].startswith(b"l OK")
            assert c.cmd(b"s", b"SELECT INBOX")[-1].startswith(b"s OK")
        t0 = time.time()
        a.send(b"q SEARCH TEXT nowhere-to-be-found\r\nr NOOP\r\n")
        waits = []
        a.sock.setblocking(False)
        done = b""
        for _ in range(100000):
            try:
                done += a.sock.recv(65536)
            except BlockingIOError:
                pass
            if b"q OK" in done:
                break
            t = time.time()
            assert b.cmd(b"n", b"NOOP")[-1].startswith(b"n OK")
            waits.append(time.time() - t)
        took = time.time() - t0
        a.sock.setblocking(True)
        a.buf = done
        out = a.until(b"q")
        assert out == [b"* SEARCH", b"q OK SEARCH completed"], out
        assert a.until(b"r")[-1].startswith(b"r OK")
        # long enough to tell (0.28 s on the release build, 1.3 s under ASan): without
        # slices a NOOP waits for the SEARCH's end, on average half of it
        assert took > 0.1 and len(waits) >= 3, (took, len(waits))
        assert statistics.median(waits) < min(0.05, took / 4) and max(waits) < 0.5, \
            (took, waits[:20])
    finally:
        assert s.stop() == 0


def test_a_command_in_two_writes_is_answered_without_the_delayed_ack():
    """slices: a command whose end comes in a second write, which the client's Nagle holds for the ACK of the first (imaplib's APPEND sends a literal's last CRLF so), is answered in well under the 40 ms of a delayed ACK"""
    import socket
    s = imap_server()
    try:
        c = Raw(s.imap_port)
        assert c.cmd(b"l", b"LOGIN alice@example.org secret")[-1].startswith(b"l OK")
        for i in range(5):  # replies in both directions: the kernel leaves quick-ACK mode
            c.cmd(b"w%d" % i, b"NOOP")
        assert c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # Nagle on
        waits = []
        for i in range(12):
            t = time.time()
            c.send(b"n%d NO" % i)
            c.send(b"OP\r\n")  # held by Nagle until the first part is ACKed
            assert c.until(b"n%d" % i)[-1].startswith(b"n%d OK" % i)
            waits.append(time.time() - t)
        assert statistics.median(waits) < 0.02, ["%.1f ms" % (w * 1000) for w in waits]
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0
