"""The short run of the Lua fuzz driver (tests/luafuzz.py): random scripts
over the whole Lua API, the harmful cases of issue 10 among them, in hooks,
services and top-level code of one server, swapped by SIGHUP. The long run
is bench/luafuzz.sh."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import luafuzz  # noqa: E402

SEEDS = "1-40"


def test_random_scripts_do_not_take_the_server_down():
    """40 random scripts (fixed seeds) and their sessions: no crash, no sanitizer report, SMTP answers, exit 0 on SIGTERM"""
    o = luafuzz.parse_args(["--seeds", SEEDS, "--open"])
    s = luafuzz.Driver(o).run()
    assert s["scripts"] > 0, s
    assert s["findings"] == 0, "findings (see build/fuzz-findings): %s" % s
    assert s["stop_status"] == 0, s
