"""Measurement: which way of suggesting a new tag's category suggests better.

Each tag of the four industry template packs (``fixtures/templates``) is left out in
turn and suggested from the others; the top-1 and top-3 accuracy of each method is
counted:

- per pack: the category path within the pack (e.g. ``basic/demo``);
- pooled: the four packs together, the category qualified by the pack
  (``beauty/basic/demo``), and the business line (the pack) of the tag;

for ``fuzzy`` (rapidfuzz over characters and pinyin), ``tfidf`` (character n-grams of
characters and pinyin, cosine) and the trivial ``baseline`` (the most frequent label).

    python benchmarks/classify.py            # writes benchmarks/results/classify.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

METHODS = ("baseline", "fuzzy", "tfidf")


def measure(quiet: bool = False) -> dict:
    from tagportal.catalog import classify
    from tagportal.catalog.templates import available_packs

    packs = available_packs()
    results: dict = {"methods": list(METHODS), "neighbours": classify.NEIGHBOURS, "packs": {}}
    for key, pack in sorted(packs.items()):
        examples = classify.pack_examples(pack)
        results["packs"][key] = {}
        for method in METHODS:
            started = time.perf_counter()
            scores = classify.leave_one_out(examples, method)
            scores["seconds"] = round(time.perf_counter() - started, 3)
            results["packs"][key][method] = scores
            harness.log(f"{key:20} {method:8} {scores}", quiet)
    pooled = [e for pack in packs.values() for e in classify.pack_examples(pack, qualify=True)]
    results["pooled"] = {"category": {}, "business_line": {}}
    for attribute, name in (("label", "category"), ("business_line", "business_line")):
        for method in METHODS:
            scores = classify.leave_one_out(pooled, method, attribute=attribute)
            results["pooled"][name][method] = scores
            harness.log(f"pooled {name:13} {method:8} {scores}", quiet)
    mean = {}
    for method in METHODS:
        rows = [results["packs"][key][method] for key in results["packs"]]
        total = sum(r["n"] for r in rows)
        mean[method] = {
            "top1": round(sum(r["top1"] * r["n"] for r in rows) / total, 4),
            "top3": round(sum(r["top3"] * r["n"] for r in rows) / total, 4),
            "n": total,
        }
    results["per_pack_weighted"] = mean
    chosen = max(("fuzzy", "tfidf"), key=lambda m: (mean[m]["top1"], mean[m]["top3"]))
    results["best_by_measurement"] = chosen
    results["method_in_use"] = classify.METHOD
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    harness.add_output_argument(parser, "classify")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagportal.settings")
    harness.setup_django()
    results = {"machine": harness.machine(), **measure(args.quiet)}
    path = harness.write(results, args.output)
    harness.log(f"wrote {path}", args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
