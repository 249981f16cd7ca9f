#!/usr/bin/python3
"""passwords.py OUTPUT - the 10,000 most common passwords, as password.c
looks them up: lower-cased, ASCII, sorted by byte, no duplicates, front
coded in blocks of 16 (a block: 0xff and its first word; then for each
next word one byte, 0x80 + the length of the prefix it shares with the
word before, and the rest of the word; a word ends at the next byte over
0x7f): 43 KB instead of 79 as lines. Taken at build time from Debian's python3-zxcvbn (its
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
BLOCK = 16
MAX = 64  # password.c's COMMON_MAX
data, prev = bytearray(), b""
for i, w in enumerate(sorted(words)):
    w = w.encode("ascii")
    if len(w) > MAX:
        continue
    if i % BLOCK == 0:
        data += b"\xff" + w
    else:
        k = 0
        while k < min(len(w), len(prev)) and w[k] == prev[k]:
            k += 1
        data += bytes([0x80 + k]) + w[k:]
    prev = w
tmp = "%s.%d.tmp" % (sys.argv[1], os.getpid())  # targets may be built side by side
with open(tmp, "wb") as f:
    f.write(data)
os.replace(tmp, sys.argv[1])
