"""Signal receivers of the journeys app, connected once in ``apps.ready``."""


def connect() -> None:
    return None
