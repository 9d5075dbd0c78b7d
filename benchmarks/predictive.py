"""Benchmark: the algorithm models (RFM, BG/NBD + Gamma-Gamma, churn warning, AIPL) on a
million generated people, their fit on CDNOW, and a plain pandas baseline.

Loads the data once: people, events and orders from :mod:`tagportal.profiles.generator`
through the same path as ``benchmarks/compute.py`` (:func:`benchmarks.compute.generate_data`:
the ``medical_aesthetics`` industry, seed 1, 10 events per person, the same end moment),
timed apart as ``load_s``. Then, each step timed (wall and CPU seconds of this process):

1. ``rfm_s``: :func:`tagportal.predictive.rfm.compute_rfm` (365-day window, quintiles);
2. ``summary_s``: the BG/NBD summary of every buyer (:func:`.clv.summary_from_orders`,
   calibration end = the as-of day); ``bgnbd_fit_s`` and ``gamma_gamma_fit_s``: the
   maximum-likelihood fits; ``score_s``: :func:`.clv.score` (P(alive), expected purchases
   in 30 / 90 days, purchase intent and its buckets, expected order value, 12-month CLV);
3. ``churn_train_s`` and ``churn_score_s``: the churn warning
   (:mod:`tagportal.predictive.churn`), trained with model selection on a sample of the
   eligible people (``churn_train_sample``) and scored on all of them; ``churn_auc`` is
   the validation ROC AUC of the chosen model, on the churn signal the generator plants
   (people's engaged spells end in a fade-out, sooner for a higher latent propensity;
   see :class:`tagportal.profiles.generator._Profile`), with the module's own features
   (the registry adds the RFM scores and metric tags; not measured here);
4. ``aipl_s``: :func:`.aipl.stages` on the as-of day and :func:`.aipl.stage_flows` over
   the last four weeks (five weekly as-of days).

``total_s`` is the sum of those steps (loading left out); ``peak_rss_mb`` the process's
peak resident memory from just after loading (``VmHWM`` reset after the data is made, so
the loaded frames count and the generator's own peak does not; ``process_peak_rss_mb``
is the peak since the start). The baseline, measured in the same run on the same orders:
R, F and M by a plain pandas ``groupby`` (Beijing dates with ``dt.tz_convert`` and
``dt.normalize``, quintiles with ``pd.qcut`` of ranks), checked to give the same
recency, frequency and monetary value of every buyer as ``compute_rfm``.

``cdnow``: BG/NBD and Gamma-Gamma fitted on the CDNOW sample (calibration end
1997-09-30) next to the published estimates (Fader, Hardie & Lee 2005; Fader & Hardie
2013), and, when the master file is at hand (``$CDNOW_DIR``, else
``../shared/datasets/cdnow``), the same fit on it (data the model was never checked
against; no published figures to compare).

Writes ``benchmarks/results/predictive.json`` (figures, targets, pass / fail, machine) and
prints a table. No database is needed.

    python benchmarks/predictive.py [--people 1000000 --events-per-person 10 --seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks import compute, harness  # noqa: E402  (after the path is set)

#: What the issue asks: all models fitted and scored on 1M people within a minute and
#: 4 GB on a 2-core machine; the churn model reaching AUC 0.75 on the planted signal.
TARGETS = {
    "total_s": {"at_most": 60.0},
    "peak_rss_mb": {"at_most": 4096.0},
    "churn_auc": {"at_least": 0.75},
}
#: Fader, Hardie & Lee (2005), table 1; Fader & Hardie (2013).
PUBLISHED = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
}
CDNOW_CALIBRATION_END = dt.date(1997, 9, 30)
RFM_WINDOW_DAYS = 365
AIPL_WEEKS = 5
CHURN_SAMPLE = 200_000
END = compute.END


# data ---------------------------------------------------------------------------------
def load(people: int, events_per_person: float, seed: int) -> dict:
    """The generated frames the models read: ``events`` and ``orders``."""
    data = compute.generate_data(people, events_per_person, seed, END)
    return {"customers": data["customers"], "events": data["events"], "orders": data["orders"]}


# the steps ----------------------------------------------------------------------------
class Steps:
    """Timed steps: wall and CPU seconds of each, and their outputs."""

    def __init__(self, quiet: bool):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.quiet = quiet

    def run(self, name: str, fn):
        gc.collect()
        wall, cpu, out = harness.timed_cpu(fn)
        self.wall[name], self.cpu[name] = wall, cpu
        harness.log(f"  {name}: {wall:.2f} s (CPU {cpu:.2f} s)", self.quiet)
        return out


def run_rfm(steps: Steps, orders, as_of):
    from tagportal.predictive.rfm import RfmConfig, compute_rfm

    config = RfmConfig(window_days=RFM_WINDOW_DAYS)
    return steps.run("rfm_s", lambda: compute_rfm(orders, config, as_of))


def run_clv(steps: Steps, orders, as_of) -> dict:
    from tagportal.predictive import clv

    summary = steps.run("summary_s", lambda: clv.summary_from_orders(orders, as_of))
    x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    bgnbd = steps.run("bgnbd_fit_s", lambda: clv.fit_bgnbd(x, t_x, T))
    gamma_gamma = steps.run("gamma_gamma_fit_s", lambda: clv.fit_gamma_gamma(x, summary["monetary_value"]))
    scores = steps.run("score_s", lambda: clv.score(summary, bgnbd, gamma_gamma))
    levels = scores["purchase_intent_level"].value_counts()
    return {
        "customers": len(summary),
        "repeat_buyers": int((x > 0).sum()),
        "bgnbd": bgnbd.to_dict(),
        "gamma_gamma": gamma_gamma.to_dict(),
        "scored": len(scores),
        "scores_finite": bool(
            scores.select_dtypes("number")
            .apply(lambda c: c.notna().all() and (c.abs() < float("inf")).all())
            .all()
        ),
        "purchase_intent_levels": {str(k): int(v) for k, v in levels.items()},
        "mean_p_alive": float(scores["p_alive"].mean()),
        "mean_clv": float(scores["clv"].mean()),
    }


def run_churn(steps: Steps, frames: dict, as_of, sample: int) -> dict:
    """Train the churn warning (every event and order counts as activity, the module's
    defaults otherwise) on at most ``sample`` labelled rows, then score the people
    eligible at ``as_of`` again from the frames with the fitted model.

    ``churn_train_s`` is :func:`train_churn` less the scoring it ends with (which
    ``churn_score_s`` measures on its own, index of the activity included)."""
    from tagportal.predictive.churn import ChurnConfig, train_churn

    config = ChurnConfig(max_training_rows=sample)
    run = steps.run(
        "churn_train_call_s", lambda: train_churn(frames["events"], frames["orders"], as_of, config)
    )
    report = run.report
    steps.wall["churn_train_s"] = steps.wall["churn_train_call_s"] - report["seconds"]["score"]
    steps.cpu["churn_train_s"] = steps.cpu["churn_train_call_s"] - report["seconds"]["score"]
    scores = steps.run("churn_score_s", lambda: run.model.score(frames["events"], frames["orders"], as_of))
    validation = {k: v for k, v in report["validation"].items() if k != "calibration_curve"}
    return {
        "auc": validation["auc"],
        "train_sample": report["training_rows"],
        "labelled_rows": report["labelled_rows"],
        "sample_share": report["sample_share"],
        "selection_rows": report["selection_rows"],
        "validation_rows": report["validation_rows"],
        "candidates": report["candidates"],
        "chosen": report["chosen"],
        "validation": validation,
        "top_features": [f["feature"] for f in report["permutation_importances"][:5]],
        "cutoffs": report["cutoffs"],
        "scored": len(scores),
        "same_scores_as_the_run": bool(scores["probability"].equals(run.scores["probability"])),
        "buckets": report["buckets"],
        "publishable": report["publishable"],
        "threads": config.threads,
        "seconds_in_report": report["seconds"],
    }


def run_aipl(steps: Steps, frames: dict, as_of) -> dict:
    from tagportal.predictive.aipl import AiplConfig, stage_flows, stages

    config = AiplConfig()
    inputs = {"events": frames["events"], "orders": frames["orders"]}
    now = steps.run("aipl_stages_s", lambda: stages(inputs, config, as_of))
    weeks = [as_of - dt.timedelta(weeks=k) for k in range(AIPL_WEEKS - 1, -1, -1)]
    flows = steps.run("aipl_flows_s", lambda: stage_flows(inputs, config, weeks))
    return {
        "people_with_a_stage": len(now),
        "stages": {str(k): int(v) for k, v in now.value_counts().sort_index().items()},
        "weeks": len(weeks),
        "flow_rows": len(flows),
    }


# the baseline -------------------------------------------------------------------------
def pandas_rfm(orders, as_of, window_days: int = RFM_WINDOW_DAYS):
    """R, F and M with a plain pandas ``groupby``: recency in Beijing days, frequency as
    distinct Beijing days with an order, monetary as the sum, each scored 1–5 by
    ``pd.qcut`` of its ranks (ties broken by order of appearance)."""
    import pandas as pd

    from tagportal.core.days import BEIJING_ZONE

    today = pd.Timestamp(as_of).tz_convert(BEIJING_ZONE).normalize()
    day = orders["time"].dt.tz_convert(BEIJING_ZONE).dt.normalize()
    keep = (day > today - pd.Timedelta(days=window_days)) & (day <= today)
    frame = pd.DataFrame({"oneid": orders["oneid"][keep], "day": day[keep], "amount": orders["amount"][keep]})
    grouped = frame.groupby("oneid", sort=True)
    out = pd.DataFrame(
        {
            "recency_days": (today - grouped["day"].max()).dt.days,
            "frequency": grouped["day"].nunique(),
            "monetary": grouped["amount"].sum(),
        }
    )
    labels = [1, 2, 3, 4, 5]
    out["r"] = pd.qcut((-out["recency_days"]).rank(method="first"), 5, labels=labels).astype("int64")
    out["f"] = pd.qcut(out["frequency"].rank(method="first"), 5, labels=labels).astype("int64")
    out["m"] = pd.qcut(out["monetary"].rank(method="first"), 5, labels=labels).astype("int64")
    return out


def same_measures(rfm_scores, baseline) -> bool:
    import numpy as np

    if not rfm_scores.index.equals(baseline.index):
        return False
    return bool(
        (rfm_scores["recency_days"].to_numpy() == baseline["recency_days"].to_numpy()).all()
        and (rfm_scores["frequency"].to_numpy() == baseline["frequency"].to_numpy()).all()
        and np.allclose(rfm_scores["monetary"].to_numpy(), baseline["monetary"].to_numpy(), rtol=1e-9)
    )


# CDNOW --------------------------------------------------------------------------------
def cdnow_files() -> dict[str, Path]:
    """The sample and, when it is there, the master file, from ``$CDNOW_DIR`` or else
    ``../shared/datasets/cdnow`` next to the repository (the sample falls back on the
    repository's copy, the same file)."""
    from tagportal.profiles import cdnow

    shared = Path(os.environ.get("CDNOW_DIR") or cdnow.SHARED.parent)
    sample = shared / "CDNOW_sample.txt"
    files = {"sample": sample if sample.is_file() else cdnow.SAMPLE}
    if (shared / "CDNOW_master.txt").is_file():
        files["master"] = shared / "CDNOW_master.txt"
    return files


def sig3(value: float) -> str:
    return f"{value:.3g}"


def fit_cdnow(path: Path) -> dict:
    """``fit_clv``'s figures for a CDNOW file (calibration end 1997-09-30, holdout to the
    last date), and the seconds the fit took."""
    import numpy as np

    from tagportal.predictive.management.commands.fit_clv import Command, read_transactions

    frame = read_transactions(path, "cdnow")
    started = time.perf_counter()
    with np.errstate(all="ignore"):
        out = Command.fit(frame, CDNOW_CALIBRATION_END, dt.date(1998, 6, 30))
    out["fit_s"] = round(time.perf_counter() - started, 3)
    out["file"] = path.name
    out["calibration_end"] = CDNOW_CALIBRATION_END.isoformat()
    return out


def run_cdnow() -> dict:
    files = cdnow_files()
    sample = fit_cdnow(files["sample"])
    comparison = {}
    for model, published in PUBLISHED.items():
        for name, value in published.items():
            fitted = sample[model][name]
            comparison[name] = {
                "fitted": round(fitted, 4),
                "published": value,
                "relative_difference": round(abs(fitted - value) / value, 5),
                "same_to_3_significant_figures": sig3(fitted) == sig3(value),
            }
    sample["published"] = PUBLISHED
    sample["comparison"] = comparison
    sample["matches_published"] = all(c["same_to_3_significant_figures"] for c in comparison.values())
    out = {"sample": sample}
    if "master" in files:
        out["master"] = fit_cdnow(files["master"])
    return out


# the run ------------------------------------------------------------------------------
STEP_ORDER = (
    "rfm_s", "summary_s", "bgnbd_fit_s", "gamma_gamma_fit_s", "score_s",
    "churn_train_s", "churn_score_s", "aipl_stages_s", "aipl_flows_s",
)  # fmt: skip


def passed(results: dict) -> dict:
    out = {}
    for key, target in TARGETS.items():
        value = results.get(key)
        if value is None:
            out[key] = False
        elif "at_most" in target:
            out[key] = value <= target["at_most"]
        else:
            out[key] = value >= target["at_least"]
    out["cdnow_matches_published"] = bool(results["cdnow"]["sample"]["matches_published"])
    out["baseline_same_measures"] = bool(results["baseline"]["same_measures"])
    return out


def run(
    people: int = 1_000_000,
    events_per_person: float = 10,
    seed: int = 1,
    churn_sample: int = CHURN_SAMPLE,
    quiet: bool = False,
) -> dict:
    harness.setup_django()
    load_at_start = harness.load_average()

    harness.log(
        f"loading: generating {people:,} people, {events_per_person} events each (seed {seed})", quiet
    )
    load_s, frames = harness.timed(lambda: load(people, events_per_person, seed))
    as_of = END
    harness.log(
        f"  {load_s:.1f} s: {len(frames['events']):,} events, {len(frames['orders']):,} orders", quiet
    )
    input_mb = round(sum(f.memory_usage(deep=True).sum() for f in frames.values()) / 2**20)
    loaded_rss = harness.current_rss_mb()

    gc.collect()
    tracked = harness.reset_peak()
    steps = Steps(quiet)
    harness.log("models", quiet)
    rfm = run_rfm(steps, frames["orders"], as_of)
    clv = run_clv(steps, frames["orders"], as_of)
    churn = run_churn(steps, frames, as_of, churn_sample)
    aipl = run_aipl(steps, frames, as_of)
    peak = harness.peak_rss_mb() if tracked else harness.process_peak_rss_mb()
    steps.wall["aipl_s"] = steps.wall["aipl_stages_s"] + steps.wall["aipl_flows_s"]
    steps.cpu["aipl_s"] = steps.cpu["aipl_stages_s"] + steps.cpu["aipl_flows_s"]
    total_s = sum(steps.wall.get(k, 0.0) for k in STEP_ORDER)
    total_cpu_s = sum(steps.cpu.get(k, 0.0) for k in STEP_ORDER)

    harness.log("baseline: pandas groupby RFM", quiet)
    baseline_s, baseline = harness.timed(lambda: pandas_rfm(frames["orders"], as_of))
    same = same_measures(rfm.scores, baseline)
    harness.log(f"  {baseline_s:.2f} s; same R, F, M measures: {same}", quiet)

    harness.log("cdnow", quiet)
    cdnow = run_cdnow()

    results = {
        "benchmark": "predictive models",
        "pack": compute.PACK,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "people": len(frames["customers"]),
        "events": len(frames["events"]),
        "orders": len(frames["orders"]),
        "buyers": int(frames["orders"]["oneid"].nunique()),
        "events_per_person": events_per_person,
        "input_mb": input_mb,
        "load_s": round(load_s, 2),
        **{key: round(value, 3) for key, value in steps.wall.items()},
        "total_s": round(total_s, 2),
        "total_cpu_s": round(total_cpu_s, 2),
        "cpu_s": {key: round(value, 3) for key, value in steps.cpu.items()},
        "peak_rss_mb": round(peak),
        "rss_after_load_mb": round(loaded_rss),
        "churn_auc": churn.get("auc"),
        "churn_train_sample": churn.get("train_sample"),
        "rfm": {
            "customers": len(rfm.scores),
            "window_days": RFM_WINDOW_DAYS,
            "segments": rfm.summary["segments"],
        },
        "clv": clv,
        "churn": churn,
        "aipl": aipl,
        "baseline": {
            "what": "R, F, M by a plain pandas groupby on the same orders (pandas_rfm)",
            "seconds": round(baseline_s, 3),
            "rfm_vs_baseline": harness.speedup(baseline_s, steps.wall["rfm_s"]),
            "same_measures": same,
        },
        "cdnow": cdnow,
    }
    results["notes"] = {
        "load_s": "generating the frames (benchmarks.compute.generate_data); not in total_s",
        "total_s": "sum of " + ", ".join(STEP_ORDER) + "; one process, wall seconds "
        "(total_cpu_s: CPU seconds of the process over the same steps)",
        "peak_rss_mb": "peak RSS (VmHWM) from just after loading to the end of the steps, the loaded "
        f"frames (input_mb) and the interpreter included{'' if tracked else ' (not reset: since start)'}",
        "churn_auc": "validation ROC AUC of the chosen, calibrated model on the latest cut-off (as_of - 7 "
        "days), on the churn signal the generator plants: a latent propensity shortens a person's engaged "
        "spell and lowers their activity, and the spell ends in a fade-out (visits thin, gaps grow) "
        "before they go quiet; next week's activity is still drawn, so no model reaches 1. The module's "
        "own features only (the registry's RFM and metric-tag features are not in this figure)",
        "churn_train_sample": "labelled rows (person x training cut-off) the final churn model is fitted "
        "on, drawn uniformly from churn.labelled_rows (at most --churn-sample over all cut-offs)",
        "churn_train_s": "train_churn (features of every cut-off, fitting three candidates, calibration, "
        "permutation importances, the final refit) less its closing scoring; churn_score_s scores the "
        "people eligible at as_of from the frames with the fitted model, one thread as the module defaults",
        "baseline": "rfm_vs_baseline = baseline seconds / rfm_s; same_measures: identical recency and "
        "frequency and monetary (rtol 1e-9) for every buyer; the baseline's scores break ties by "
        "position, compute_rfm's share them, so scores are not compared",
        "machine": "a shared 2-core machine; other work on it shows in the load average",
    }
    results["targets"] = TARGETS
    results["passed"] = passed(results)
    results["all_passed"] = all(results["passed"].values())
    results["process_peak_rss_mb"] = round(harness.process_peak_rss_mb())
    results["machine"] = harness.machine(load_at_start=load_at_start)
    return results


def table(results: dict) -> str:
    """The figures against the targets, as a text table."""

    def seconds(key):
        value = results.get(key)
        return "" if value is None else f"{value:.2f} s"

    rows = [
        (
            "people / events / orders",
            f"{results['people']:,} / {results['events']:,} / {results['orders']:,}",
        ),
        ("load (not in total)", seconds("load_s")),
        ("RFM", seconds("rfm_s")),
        ("  pandas baseline", f"{results['baseline']['seconds']:.2f} s"),
        ("BG/NBD summary", seconds("summary_s")),
        ("BG/NBD fit", seconds("bgnbd_fit_s")),
        ("Gamma-Gamma fit", seconds("gamma_gamma_fit_s")),
        ("CLV scores", seconds("score_s")),
        (f"churn train ({results.get('churn_train_sample') or '-'} rows)", seconds("churn_train_s")),
        ("churn score", seconds("churn_score_s")),
        ("AIPL stages + flows", seconds("aipl_s")),
    ]
    rows = [(*r, "", "") for r in rows]
    for label, key, fmt in (
        ("total", "total_s", ".1f"),
        ("peak RSS MB", "peak_rss_mb", ".0f"),
        ("churn AUC", "churn_auc", ".3f"),
    ):
        target = TARGETS[key]
        bound = f"<= {target['at_most']:g}" if "at_most" in target else f">= {target['at_least']:g}"
        value = results.get(key)
        rows.append(
            (
                label,
                "-" if value is None else f"{value:{fmt}}",
                bound,
                "ok" if results["passed"][key] else "FAIL",
            )
        )
    ok = results["passed"]["cdnow_matches_published"]
    rows.append(("CDNOW = published (3 s.f.)", str(ok).lower(), "true", "ok" if ok else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events-per-person", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--churn-sample", type=int, default=CHURN_SAMPLE, help="people the churn model is trained on"
    )
    harness.add_output_argument(parser, "predictive")
    args = parser.parse_args(argv)
    results = run(
        people=args.people,
        events_per_person=args.events_per_person,
        seed=args.seed,
        churn_sample=args.churn_sample,
    )
    output = harness.write(results, args.output)
    print(table(results))
    print(f"written to {output}")
    return results


if __name__ == "__main__":
    main()
