"""The service commands on POSIX: the service manager is Windows'; here they
refuse in one line and change nothing (systemd runs the foreground server)."""
import os
import subprocess

from harness import BIN, Server


def test_service_commands_refuse_on_posix():
    """service: install|uninstall|start|stop|reload|status say they are for Windows and exit 1"""
    if os.path.basename(BIN).endswith(".exe"):
        raise Skip("POSIX binary only")
    s = Server(domains=(), users=())
    before = sorted(os.listdir(s.dir))
    for args in (["install"], ["install", "Mail"], ["uninstall"], ["start"], ["stop", "Mail"],
                 ["reload"], ["status"]):
        r = s.cli("service", *args, check=False)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert r.stdout == "", (args, r.stdout)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and "service commands are for Windows" in lines[0], (args, r.stderr)
        assert "systemd" in lines[0] and "--service" in lines[0], lines[0]
    assert sorted(os.listdir(s.dir)) == before  # no storage opened, nothing written


def test_service_command_line_errors():
    """service: a missing or unknown verb, or a bad rumble.conf for install, fails before the platform is asked"""
    s = Server(domains=(), users=())
    r = s.cli("service", check=False)
    assert r.returncode == 1 and "expected install|uninstall|start|stop|reload|status" in r.stderr
    r = s.cli("service", "restart", check=False)
    assert r.returncode == 1 and "unknown verb restart" in r.stderr, r.stderr
    r = s.cli("service", "status", "A", "B", check=False)
    assert r.returncode == 1 and "expected" in r.stderr, r.stderr
    with open(s.conf, "a") as f:
        f.write("LogLevel loud\n")
    r = s.cli("service", "install", check=False)
    assert r.returncode == 1 and "LogLevel" in r.stderr, r.stderr
    r = subprocess.run([BIN, "-c", os.path.join(s.dir, "missing.conf"), "service", "install"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "missing.conf" in r.stderr, r.stderr
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert "service install [NAME]" in r.stdout and "uninstall|start|stop|reload|status" in r.stdout
