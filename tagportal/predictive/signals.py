"""The signal the registry sends, and its receivers.

- :data:`run_held` is sent once the transaction that held a run commits (see
  :func:`.services.run_model`), with ``run`` (the :class:`~.models.ModelRun`, status
  held), ``reason`` (why, in words) and ``comparison`` (plain JSON, see
  :func:`.services.held_comparison`). A receiver that takes the run to review answers
  something true; when none does, the brand's data stewards get an inbox notice.
- After the engine computed a brand's tags, its models score the new data.
"""

from __future__ import annotations

from django.dispatch import Signal, receiver

from tagportal.engine.signals import results_updated

#: A run was held for review (sender: ``ModelRun``; ``run``, ``reason``, ``comparison``).
run_held = Signal()


@receiver(results_updated, dispatch_uid="predictive.score_on_recompute")
def score_on_recompute(sender, brand_id, tag_ids, **kwargs):
    from . import services

    return services.on_results_updated(brand_id, tag_ids)
