"""How many OneID ranges a brand's computation is split into.

Each range is read by its own SQL (:func:`tagportal.profiles.loaders.load_frames` with
``oneid_range``) and evaluated on its own, so a worker's memory follows the size of its
range, not of the brand. The number of ranges is chosen so that one range's working
set stays within ``TAGPORTAL_COMPUTE_PARTITION_MB`` (default 1,024 MB).

The working set per row was measured with the compute benchmark (1,000,000 people,
10,003,589 events, 2,503,291 orders of the medical-aesthetics pack, 47 tags): a peak of
3,050 MB for the process, about 250 MB of which is the interpreter and libraries. The
remaining 2.8 GB divided over the rows gives the figures below: the input frames
(458 MB) and what evaluating the rules builds from them (sorted copies, group keys,
per-person metrics, bitmaps)."""

from __future__ import annotations

import math

from django.conf import settings

from tagportal.profiles.loaders import row_counts

#: Working bytes per row while evaluating (measured, see the module's docstring).
BYTES_PER_PERSON = 200
BYTES_PER_EVENT = 185
BYTES_PER_ORDER = 300

#: Never more ranges than this: each costs a task, a read and a merge.
MAX_PARTITIONS = 256


def budget_mb() -> float:
    return float(getattr(settings, "TAGPORTAL_COMPUTE_PARTITION_MB", 1024))


def working_mb(people: int, events: int, orders: int) -> float:
    """Estimated working set, in MB, of evaluating that many rows at once."""
    return (people * BYTES_PER_PERSON + events * BYTES_PER_EVENT + orders * BYTES_PER_ORDER) / 2**20


def partitions_for_counts(people: int, events: int, orders: int, budget: float | None = None) -> int:
    """Ranges needed to keep each within ``budget`` MB (the setting by default), at
    least 1 and at most :data:`MAX_PARTITIONS`; never more ranges than people."""
    budget = budget_mb() if budget is None else float(budget)
    if budget <= 0:
        raise ValueError("TAGPORTAL_COMPUTE_PARTITION_MB must be positive")
    needed = math.ceil(working_mb(people, events, orders) / budget)
    return max(1, min(needed, MAX_PARTITIONS, max(people, 1)))


def partitions_for(brand, budget: float | None = None) -> int:
    """Ranges for a computation of ``brand`` under the memory budget."""
    counts = row_counts(brand)
    return partitions_for_counts(counts["people"], counts["events"], counts["orders"], budget)
