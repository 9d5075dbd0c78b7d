class Conflict(Exception):
    """The request is valid but clashes with the object's current state (HTTP 409).

    ``extra`` is added to the API answer (e.g. the dependents that need confirming).
    """

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra
