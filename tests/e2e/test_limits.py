"""End-to-end tests of running out of operating-system resources: with its
descriptors used up, the server keeps its other sessions, accept backs off
and says so once a minute (not twenty times a second), and takes clients
again once descriptors are free."""
import os
import resource
import socket
import time

from harness import SMTPRaw, Server

FDS = 64


def few_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_accept_backs_off_when_descriptors_run_out():
    """Out of descriptors: the server keeps serving, accept logs once, does not spin, and recovers"""
    s = Server(conf="ThreadsPerIP 1000\nWorkers 1")
    s.start(preexec_fn=few_descriptors)
    try:
        first = SMTPRaw(s.smtp_port)
        assert first.cmd("EHLO a.example")[0] == 250
        held = []
        for _ in range(FDS + 20):  # more than the server can have
            c = socket.socket()
            c.settimeout(5)
            c.connect(("127.0.0.1", s.smtp_port))  # the backlog takes what accept cannot
            held.append(c)
        time.sleep(0.5)
        cpu0 = cpu_seconds(s.proc.pid)
        time.sleep(3)
        spent = cpu_seconds(s.proc.pid) - cpu0
        assert spent < 1.0, "the server spun on accept: %.2f s of CPU in 3 s" % spent
        assert first.cmd("NOOP")[0] == 250  # the sessions it has go on
        log = s.stderr()
        assert "accept failed" in log, log[-2000:]
        assert log.count("accept failed") <= 2, log.count("accept failed")
        for c in held:
            c.close()
        time.sleep(1.5)  # the pause ends; the closed ones are let go
        r = SMTPRaw(s.smtp_port)
        assert r.cmd("EHLO b.example")[0] == 250
        assert r.cmd("QUIT")[0] == 221
        assert first.cmd("QUIT")[0] == 221
    finally:
        assert s.stop() == 0
