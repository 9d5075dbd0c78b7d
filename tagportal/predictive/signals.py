"""Receivers: after the engine computed a brand's tags, its models score the new data."""

from __future__ import annotations

from django.dispatch import receiver

from tagportal.engine.signals import results_updated


@receiver(results_updated, dispatch_uid="predictive.score_on_recompute")
def score_on_recompute(sender, brand_id, tag_ids, **kwargs):
    from . import services

    return services.on_results_updated(brand_id, tag_ids)
