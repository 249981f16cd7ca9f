#!/usr/bin/env python3
"""bench/sieve.py - Sieve speed beside Pigeonhole's: every script of the
differential corpus (tests/e2e/sieve_corpus.py) compiled and run on its
message N times, by `rumble sieve test` and by Debian's `sieve-test`, in
the same run. Prints milliseconds per script (process start included:
both are one process per script, as a delivery agent is) and the ratio.

    bench/sieve.py [N]          (default 5; RUMBLE=path picks the binary)

Needs ./build.sh's build/rel/rumble and dovecot-sieve (sieve-test)."""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from sieve_corpus import CASES, MESSAGES  # noqa: E402

FROM, TO = "sender@example.com", "bob+work@example.org"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rumble = os.environ.get("RUMBLE", os.path.join(ROOT, "build", "rel", "rumble"))
    if not shutil.which("sieve-test") or not os.path.exists(rumble):
        sys.exit("bench/sieve.py: needs %s (./build.sh) and sieve-test (dovecot-sieve)" % rumble)
    d = tempfile.mkdtemp(prefix="sieve-bench-")
    os.chmod(d, 0o755)
    uid = os.getuid()
    pw = pwd.getpwuid(uid if uid else pwd.getpwnam("nobody").pw_uid)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("mail_uid = %d\nmail_gid = %d\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n"
                "mail_location = maildir:%s/Maildir\nprotocols =\n" % (pw.pw_uid, pw.pw_gid, d))
    jobs = []
    for name, script, msg in CASES:
        if name.startswith("err-"):
            continue
        sp, mp = os.path.join(d, name + ".sieve"), os.path.join(d, name + ".eml")
        with open(sp, "w") as f:
            f.write(script)
        with open(mp, "wb") as f:
            f.write(MESSAGES[msg])
        jobs.append((sp, mp))
    cmds = {"rumble": lambda s, m: [rumble, "sieve", "test", s, m, FROM, TO],
            "pigeonhole": lambda s, m: ["sieve-test", "-c", conf, "-f", FROM, "-r", TO, s, m]}
    ms = {}
    for who, cmd in cmds.items():
        t0 = time.perf_counter()
        for _ in range(n):
            for sp, mp in jobs:
                subprocess.run(cmd(sp, mp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ms[who] = (time.perf_counter() - t0) * 1000 / (n * len(jobs))
    shutil.rmtree(d, ignore_errors=True)
    print("sieve: %d scripts x %d runs" % (len(jobs), n))
    print("  rumble sieve test: %.2f ms per script" % ms["rumble"])
    print("  sieve-test (Pigeonhole): %.2f ms per script" % ms["pigeonhole"])
    print("  ratio (Pigeonhole / Rumble): %.1fx" % (ms["pigeonhole"] / ms["rumble"]))


if __name__ == "__main__":
    main()
