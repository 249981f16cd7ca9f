"""benchlib.py - what the bench/*.py scripts share: free loopback ports,
a process's RSS and CPU time, waiting for a port, a domain and user made
with the CLI."""
import os
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ms(pid):
    """User and system CPU time of pid so far, ms."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def wait_port(port, seconds=10):
    """True once 127.0.0.1:port takes a connection."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def make_user(binary, conf, address, password="secret"):
    """The address's domain and the user, made with the CLI (benches use
    short passwords: MinPasswordLength 0 unless the conf says otherwise)."""
    with open(conf) as f:
        if "MinPasswordLength" not in f.read():
            with open(conf, "a") as g:
                g.write("\nMinPasswordLength 0\n")
    for args in (["domain", "add", address.split("@")[1]], ["user", "add", address]):
        subprocess.run([binary, "-c", conf] + args, input=(password + "\n").encode(),
                       check=True, capture_output=True, timeout=30)
