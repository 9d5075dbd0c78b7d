"""Receivers: a tag recomputed by the engine refreshes the audiences that read it."""

from __future__ import annotations

import logging

from django.dispatch import Signal, receiver

from tagportal.engine.signals import results_updated

log = logging.getLogger(__name__)

#: Sent once a new snapshot of an audience is committed, with ``audience_id`` and
#: ``number``: higher apps (channel syncs, journeys) read who joined and left from it
#: (:func:`.services.snapshot_diff`) instead of being imported here.
snapshot_taken = Signal()

#: ``(request, audience) -> dict | None`` callables registered by higher apps: each
#: answer (``{"title", "text", "links": [(label, url)]}``) is a section of the audience
#: page, so the audience page shows what they offer without importing them.
DETAIL_SECTIONS: list = []


@receiver(results_updated, dispatch_uid="audiences.refresh_on_recompute")
def refresh_on_recompute(sender, brand_id, tag_ids, **kwargs):
    """Queue refreshes (trigger "recompute") of the active audiences using those tags.
    The engine sends this once the results are committed; each refresh is queued once
    the current transaction (if any) commits."""
    from . import services

    queued = services.on_results_updated(brand_id, tag_ids)
    if queued:
        log.info("results of %s tags updated: %s audiences to refresh", len(tag_ids), queued)
    return queued
