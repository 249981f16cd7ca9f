"""Sieve (sieve_parse.c, sieve_run.c): the corpus in sieve_corpus.py run
through `rumble sieve test` and through Pigeonhole's sieve-test (Debian's
dovecot-sieve); the actions must agree, and both must refuse the same
scripts. Prints the agreement figure."""
import os
import pwd
import shutil
import subprocess
import tempfile

from harness import BIN, TMP
from sieve_corpus import CASES, MESSAGES

FROM, TO = "sender@example.com", "bob+work@example.org"


def pigeonhole(d):
    """A sieve-test that runs as a user who may (not root), or None."""
    if not shutil.which("sieve-test"):
        return None
    uid = os.getuid()
    pw = pwd.getpwuid(uid if uid else pwd.getpwnam("nobody").pw_uid)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("mail_uid = %d\nmail_gid = %d\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n"
                "mail_location = maildir:%s/Maildir\nprotocols =\n" % (pw.pw_uid, pw.pw_gid, d))
    os.chmod(d, 0o777)
    return ["sieve-test", "-c", conf, "-f", FROM, "-r", TO, "-a", TO]


def run(cmd, d, name, script, msg):
    sp, mp = os.path.join(d, name + ".sieve"), os.path.join(d, name + ".eml")
    with open(sp, "w") as f:
        f.write(script)
    with open(mp, "wb") as f:
        f.write(MESSAGES[msg])
    os.chmod(sp, 0o644)
    os.chmod(mp, 0o644)
    r = subprocess.run(cmd(sp, mp), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def test_sieve_agrees_with_pigeonhole():
    """Sieve: every script of the corpus gives the same actions as Pigeonhole's sieve-test, or is refused by both"""
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="sieve-")
    ph = pigeonhole(d)
    if not ph:
        raise Skip("sieve-test (dovecot-sieve) not installed")
    agree, differ = 0, []
    for name, script, msg in CASES:
        ours = run(lambda s, m: [BIN, "sieve", "test", s, m, FROM, TO], d, name, script, msg)
        theirs = run(lambda s, m: ph + [s, m], d, name, script, msg)
        if name.startswith("err-"):
            ok = ours[0] != 0 and theirs[0] != 0 and "rumble: sieve:" in ours[2]
        else:
            ok = ours[0] == 0 and theirs[0] == 0 and ours[1] == theirs[1]
        if ok:
            agree += 1
        else:
            differ.append((name, ours, theirs))
    print("    Pigeonhole agreement: %d of %d scripts" % (agree, len(CASES)))
    for name, ours, theirs in differ:
        print("    %s:\n      rumble (%d): %r %r\n      sieve-test (%d): %r %r"
              % (name, ours[0], ours[1], ours[2][-300:], theirs[0], theirs[1], theirs[2][-300:]))
    shutil.rmtree(d, ignore_errors=True)
    assert not differ, "%d of %d scripts differ" % (len(differ), len(CASES))


def test_sieve_check_reports_line_and_column():
    """Sieve: rumble sieve check says ok for a good script, and LINE:COL with the reason for a bad one, exit 1"""
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="sieve-")
    good, bad = os.path.join(d, "good.sieve"), os.path.join(d, "bad.sieve")
    with open(good, "w") as f:
        f.write('require "fileinto";\nif header :contains "subject" "x" { fileinto "X"; }\n')
    with open(bad, "w") as f:
        f.write('require "fileinto";\nif header :contains "subject" "x" {\n  fileinto "X"\n}\n')
    r = subprocess.run([BIN, "sieve", "check", good], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok" in r.stdout, r
    r = subprocess.run([BIN, "sieve", "check", bad], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "bad.sieve:4:1: ';' was expected" in r.stderr, r
    shutil.rmtree(d, ignore_errors=True)
