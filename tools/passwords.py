#!/usr/bin/python3
"""passwords.py OUTPUT - the 10,000 most common passwords, as password.c
looks them up: lower-cased, ASCII, sorted by byte, one per line, no
duplicates. Taken at build time from Debian's python3-zxcvbn (its
"passwords" frequency list, most common first); the list is never
committed. build.sh installs the package; Makefile runs this once into
build/, for every target."""
import os
import sys

from zxcvbn.frequency_lists import FREQUENCY_LISTS

TOP = 10000

words = set()
for w in FREQUENCY_LISTS["passwords"][:TOP]:
    w = w.lower()
    if w and w.isascii() and w.isprintable() and "\n" not in w:
        words.add(w)
data = "".join(w + "\n" for w in sorted(words)).encode("ascii")
tmp = "%s.%d.tmp" % (sys.argv[1], os.getpid())  # targets may be built side by side
with open(tmp, "wb") as f:
    f.write(data)
os.replace(tmp, sys.argv[1])
