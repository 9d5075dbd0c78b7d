"""Evaluating tags on every core of the machine.

:func:`evaluate` splits the people into OneID ranges, one per process, and evaluates
each range in a forked child (the frames are inherited, not copied through a pipe);
the children send back their bitmaps and numbers, which are OR-merged as the chord's
ranges are. Ranges are independent (a tag of a person reads only that person's rows),
so the merged result is the one-process result.

Used for work done in one process (the in-process computation, the benchmark). A
Celery worker's pool process is daemonic and may not fork children: there it
evaluates in-process, and the parallelism comes from the chord's tasks instead."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

from django.conf import settings

from .evaluate import TagSpec

log = logging.getLogger(__name__)

#: Below this many people one process is quicker than starting others.
MIN_PEOPLE = 50_000

#: The work of the children, set before they are forked (inherited, never pickled).
_JOB: dict = {}


def processes_default() -> int:
    """``TAGPORTAL_COMPUTE_PROCESSES``, by default the number of cores."""
    wanted = getattr(settings, "TAGPORTAL_COMPUTE_PROCESSES", None)
    return max(1, int(wanted or os.cpu_count() or 1))


def can_fork() -> bool:
    """Whether this process may start children: not a daemonic one (a Celery pool
    process), and the platform forks."""
    return not multiprocessing.current_process().daemon and "fork" in multiprocessing.get_all_start_methods()


def _evaluate_range(lo: int, hi: int):
    from . import services

    job = _JOB
    frames = services.slice_frames(job["frames"], lo, hi)
    population = job["population"]
    population = population[(population >= lo) & (population < hi)]
    return services.evaluate_partition(
        job["specs"], frames, job["as_of"], population, job["known"], job["versions"]
    )


def evaluate(
    specs: Mapping[int, TagSpec],
    frames,
    as_of,
    population=None,
    known=None,
    versions=None,
    *,
    processes: int | None = None,
):
    """What :func:`.services.evaluate_partition` gives, computed by ``processes``
    forked processes (the setting by default) over OneID ranges of equal head count."""
    from . import services

    processes = processes_default() if processes is None else max(1, int(processes))
    if population is None:
        population = services.population_of(frames)
    if processes == 1 or len(population) < MIN_PEOPLE or not specs or not can_fork():
        return services.evaluate_partition(specs, frames, as_of, population, known, versions)
    ranges = services.split_ranges(population, processes)
    _JOB.update(
        specs=specs, frames=frames, as_of=as_of, population=population, known=known, versions=versions
    )
    # The children touch no database connection they inherit (evaluating is plain pandas)
    # and leave with os._exit, so the parent's connections and transaction stay intact.
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            parts = list(pool.map(_evaluate_range, *zip(*ranges, strict=True)))
    finally:
        _JOB.clear()
    log.info("evaluated %s people in %s processes", len(population), len(ranges))
    return services.merge_partials(parts)
