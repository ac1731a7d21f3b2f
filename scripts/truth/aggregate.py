"""crowd-kit's label aggregation on the answers StemeDB's truth benchmark mapped.

Usage: python crowdkit.py ANSWERS.csv GOLD.csv
Prints one line per method: its name and its accuracy in percent on the gold tasks. Majority
vote is scored as the expected accuracy under a random tie-break (the consensus lens is scored
the same way). Run by `cargo bench --bench truth` in the virtual environment it makes.
"""

import sys

import pandas as pd
from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote, Wawa


def main() -> None:
    answers = pd.read_csv(sys.argv[1], dtype=str)
    gold = pd.read_csv(sys.argv[2], dtype=str)
    truth = dict(zip(gold.task, gold.label))
    # Majority vote, expected under a random tie-break.
    counts = answers.groupby(["task", "label"]).size().reset_index(name="n")
    expected = 0.0
    for task, group in counts.groupby("task"):
        if task not in truth:
            continue
        top = group[group.n == group.n.max()]
        expected += (top.label == truth[task]).sum() / len(top)
    print(f"MajorityVote {100 * expected / len(truth):.4f}", flush=True)
    for method in (Wawa(), DawidSkene(n_iter=100), GLAD(n_iter=100, silent=True), MACE(n_iter=100, random_state=0)):
        result = method.fit_predict(answers)
        right = sum(1 for task, label in truth.items() if result.get(task) == label)
        print(f"{type(method).__name__} {100 * right / len(truth):.4f}", flush=True)


if __name__ == "__main__":
    main()
