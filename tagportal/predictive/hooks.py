"""What the apps above the model registry show about its runs, without the registry
importing them.

A held run goes to review in an app above this one (governance turns
:data:`~.signals.run_held` into a change request). The model page links each run to
that review through the providers registered here with :func:`register_run_links`
(governance does in its ``ready``); without one, runs link nowhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: ``fn(user, run_ids)`` → ``{run id: {"url": ..., "label": ...}}``: the review of each
#: run ``user`` may open.
RunLinks = Callable[..., dict[int, dict]]

_run_links: list[RunLinks] = []


def register_run_links(fn: RunLinks) -> RunLinks:
    """Register ``fn(user, run_ids)``: for the runs among ``run_ids`` that have a review
    ``user`` may open, ``{run id: {"url": ..., "label": ...}}``."""
    if fn not in _run_links:
        _run_links.append(fn)
    return fn


def run_links(user, run_ids: Iterable[int]) -> dict[int, list[dict]]:
    """``{run id: [links]}`` from every registered provider (none: ``{}``)."""
    run_ids = list(run_ids)
    links: dict[int, list[dict]] = {}
    if not run_ids:
        return links
    for fn in _run_links:
        for run_id, link in fn(user, run_ids).items():
            links.setdefault(run_id, []).append(link)
    return links
