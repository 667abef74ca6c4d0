#!/usr/bin/env python3
"""Picks the regression corpus of one harness: at most LIMIT inputs, chosen greedily for the most
coverage features not yet covered, from the control file of a libFuzzer -set_cover_merge=1 run
(which lists every feature of each input; a plain -merge=1 lists only the ones new to the run).

    cover_corpus.py CONTROL_FILE LIMIT OUT_DIR

libFuzzer's own merges keep every input that adds a feature, which for the richer parsers is
hundreds of files; the committed corpus is replayed by every `make test`, so it stays small and the
full working corpus stays in .build-fuzz/corpus.
"""
import hashlib
import os
import shutil
import sys

control, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(control) as f:
    lines = f.read().splitlines()
count = int(lines[0])
paths = lines[2:2 + count]
features = {}
for line in lines[2 + count:]:
    if line.startswith("FT "):
        fields = line.split()
        features[int(fields[1])] = set(fields[2:])

covered, chosen = set(), []
while len(chosen) < limit:
    best = max(features, key=lambda i: (len(features[i] - covered), -os.path.getsize(paths[i])), default=None)
    if best is None or not features[best] - covered:
        break
    covered |= features.pop(best)
    chosen.append(paths[best])

shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
for path in chosen:
    data = open(path, "rb").read()
    name = os.path.basename(path) if os.path.basename(path).startswith("seed-") else hashlib.sha1(data).hexdigest()
    open(os.path.join(out, name), "wb").write(data)
total = len(set().union(*features.values(), covered)) if features else len(covered)
print(f"{out}: {len(chosen)} inputs covering {len(covered)} of {total} features")
