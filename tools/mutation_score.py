"""Print the mutation score of the last ``mutmut run`` (``make mutants`` calls it).

Reads mutmut's per-file results (``mutants/<file>.meta``) and prints, per mutated module and in total, the
killed, survived, timeout, suspicious and no-tests counts and two shares:

* ``killed share``: killed / mutants that ran against at least one test (killed + survived + timeout +
  suspicious + segfault) -- timeouts are *not* counted as killed;
* ``strict``: killed / all mutants, i.e. also counting the mutants that no selected test reaches.

Usage::

    python tools/mutation_score.py               # the table
    python tools/mutation_score.py --survivors   # also the surviving mutants, grouped by function
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

#: mutmut 3's exit codes (mutmut.stats.status_by_exit_code); anything else is "suspicious".
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", 2: "interrupted", None: "not checked"}
COLUMNS = ("killed", "survived", "timeout", "suspicious", "segfault", "no tests", "not checked")
RAN = ("killed", "survived", "timeout", "suspicious", "segfault")


def load(root: Path) -> dict[str, dict[str, int | None]]:
    metas = sorted((root / "mutants").rglob("*.py.meta"))
    if not metas:
        sys.exit(f"no mutmut results under {root / 'mutants'}; run `make mutants` first")
    return {str(m.relative_to(root / "mutants"))[:-len(".meta")]: json.loads(m.read_text())["exit_code_by_key"]
            for m in metas}


def share(counts: Counter) -> tuple[str, str]:
    ran = sum(counts[s] for s in RAN)
    total = sum(counts.values())
    fmt = lambda a, b: f"{100 * a / b:.1f} %" if b else "-"  # noqa: E731
    return fmt(counts["killed"], ran), fmt(counts["killed"], total)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--survivors", action="store_true", help="list the surviving mutants by function")
    ap.add_argument("--root", type=Path, default=Path("."), help="the folder holding mutants/")
    args = ap.parse_args(argv)
    results = load(args.root)
    total = Counter()
    print(f"| module | {' | '.join(COLUMNS)} | killed share | strict |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for path, codes in results.items():
        counts = Counter(STATUS.get(c, "suspicious") for c in codes.values())
        total += counts
        print(f"| {path} | {' | '.join(str(counts[c]) for c in COLUMNS)} | {' | '.join(share(counts))} |")
    print(f"| **all** | {' | '.join(str(total[c]) for c in COLUMNS)} | {' | '.join(share(total))} |")
    if args.survivors:
        by_function = defaultdict(list)
        for codes in results.values():
            for key, code in codes.items():
                if STATUS.get(code, "suspicious") in ("survived", "no tests", "timeout", "suspicious"):
                    function, _, number = key.rpartition("__mutmut_")
                    by_function[re.sub(r"\.x_?", ".", function, count=1).replace("ǁ", ".")].append(
                        f"{number}{'' if STATUS.get(code) == 'survived' else '(' + STATUS.get(code, '?') + ')'}")
        print()
        for function, numbers in sorted(by_function.items()):
            print(f"{function}: {len(numbers)}: {' '.join(numbers)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
