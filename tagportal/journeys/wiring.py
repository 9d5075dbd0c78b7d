"""Signal receivers of the journeys app, connected once in ``apps.ready``: a new
audience snapshot enters the people who joined, new tag results the people who hold
a tag trigger's value."""


def connect() -> None:
    from tagportal.audiences.signals import snapshot_taken
    from tagportal.engine.signals import results_updated

    from . import services

    snapshot_taken.connect(services.on_snapshot_taken, dispatch_uid="journeys.audience_entries")
    results_updated.connect(services.on_results_updated, dispatch_uid="journeys.tag_entries")
