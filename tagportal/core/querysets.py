from django.db import models


class RestrictedQuerySet(models.QuerySet):
    """A queryset that can be narrowed to what a user may see or do.

    ``restrict(user, action)`` is the single permission-scoping entry point used by
    the admin, the pages and the API (see :mod:`tagportal.core.permissions`).
    """

    def restrict(self, user, action: str = "view"):
        from .permissions import scope_filter

        condition = scope_filter(user, self.model, action)
        if condition is None:
            return self
        if condition is False:
            return self.none()
        return self.filter(condition)
