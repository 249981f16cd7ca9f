"""run.py - runs the end-to-end tests: every test_* function of every
tests/e2e/test_*.py, named by its docstring. Prints ok/FAIL per test and
"N passed, N failed[, N skipped]". A test skips by raising Skip.

    run.py [NAME...] [-NAME...]   only tests whose module.function holds a
                                  NAME, and none that holds a -NAME"""
import glob
import importlib.util
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Skip(Exception):
    pass


def main():
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    leave = [a[1:] for a in sys.argv[1:] if a.startswith("-")]
    passed = failed = skipped = 0
    files = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_*.py")))
    for path in files:
        name = os.path.basename(path)[:-3]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        mod.Skip = Skip
        spec.loader.exec_module(mod)
        for fname in sorted(k for k in dir(mod) if k.startswith("test_")):
            full = name + "." + fname
            if only and not any(o in full for o in only) or any(o in full for o in leave):
                continue
            fn = getattr(mod, fname)
            title = (fn.__doc__ or fname).strip().splitlines()[0]
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("ok   %s (%.1fs)" % (title, time.time() - t0), flush=True)
            except Skip as e:
                skipped += 1
                print("skip %s: %s" % (title, e), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s\n%s" % (title, traceback.format_exc()), flush=True)
            finally:
                harness.stop_all()
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
