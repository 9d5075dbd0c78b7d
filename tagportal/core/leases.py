"""Claiming due rows under a lease, for the workers that share a queue of rows.

:func:`claim_pks` takes at most ``limit`` rows of a "due" queryset and updates them (a
lease, a state, an attempt counted) in one transaction. On PostgreSQL the rows are read
``FOR UPDATE SKIP LOCKED`` (of the queryset's own table only), so concurrent claimers
never take the same row and none waits for another; SQLite's IMMEDIATE transactions
serialise the claimers instead. The queryset's ordering is kept: a caller that wants no
``ORDER BY`` (every due row is due; sorting them all costs more than the batch) passes
``queryset.order_by()``.
"""

from __future__ import annotations

from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL


def pk_in(pks: list, using: str = "default") -> Q:
    """``pk IN pks``: on PostgreSQL one array parameter (``IN (SELECT unnest(…))``), not
    one parameter per pk, which keeps batches of thousands cheap to send and to plan."""
    if connections[using].vendor == "postgresql":
        return Q(pk__in=RawSQL("SELECT unnest(%s::bigint[])", (list(pks),)))
    return Q(pk__in=pks)


def claim_pks(due: QuerySet, limit: int, **update) -> list:
    """Update at most ``limit`` rows of ``due`` with ``update`` (field values or
    expressions, as :meth:`QuerySet.update` takes them) and answer their pks, in the
    queryset's order; ``[]`` (nothing updated) when none is due.

    Runs in its own transaction, or within the caller's (no savepoint), so a caller that
    reads the claimed rows inside its own ``transaction.atomic()`` reads them before any
    other claimer could."""
    db = due.db
    with transaction.atomic(using=db, savepoint=False):
        if connections[db].features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        pks = list(due.values_list("pk", flat=True)[:limit])
        if pks:
            due.model._default_manager.using(db).filter(pk_in(pks, db)).update(**update)
    return pks
