"""The binary itself: static Lua and BearSSL, the command line."""
import os
import shutil
import subprocess

from harness import BIN, ROOT


def test_lua_and_bearssl_are_linked_statically():
    """build: ldd lists neither liblua nor libbearssl, for the release and the tested binary"""
    if not shutil.which("ldd"):
        raise Skip("no ldd")
    for path in (os.path.join(ROOT, "build", "rel", "rumble"), BIN):
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        assert "liblua" not in out and "bearssl" not in out, out


def test_version_and_help():
    """cli: --version names the version and platform; --help lists the commands; bad options fail"""
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("rumble ") and "linux" in r.stdout
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "domain add" in r.stdout and "user add" in r.stdout
    r = subprocess.run([BIN, "--frobnicate"], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "unknown option" in r.stderr
