#!/usr/bin/env python3
"""Pairs two runs of the benchmarks (the STEMEDB_BENCH_RESULTS files of a "before" and an
"after" build, each benchmark run alternately in one session) and prints, for every StemeDB
cell, the median throughput of each run and their ratio (after / before).

    scripts/bench-compare.py BEFORE.jsonl AFTER.jsonl [--concurrency 64,1000]
"""
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    cells = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if not r["system"].startswith("stemedb"):
                continue
            cells[(r["bench"], r["system"], r["case"], int(r["concurrency"]))].append(float(r["per_s"]))
    return {k: statistics.median(v) for k, v in cells.items()}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    wanted = None
    for a in sys.argv[1:]:
        if a.startswith("--concurrency"):
            wanted = {int(x) for x in a.split("=", 1)[1].split(",")}
    before, after = load(args[0]), load(args[1])
    print(f"{'bench':<8} {'system':<18} {'case':<24} {'conc':>5} {'before/s':>10} {'after/s':>10} {'ratio':>6}")
    worst = None
    for key in sorted(set(before) & set(after)):
        bench, system, case, conc = key
        if wanted and conc not in wanted:
            continue
        b, a = before[key], after[key]
        ratio = a / b if b else float("nan")
        worst = ratio if worst is None else min(worst, ratio)
        print(f"{bench:<8} {system:<18} {case:<24} {conc:>5} {b:>10.0f} {a:>10.0f} {ratio:>6.2f}")
    if worst is not None:
        print(f"worst ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
