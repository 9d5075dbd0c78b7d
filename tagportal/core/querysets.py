from django.db import models


class RestrictedQuerySet(models.QuerySet):
    """A queryset that can be narrowed to what a user may see or do.

    ``restrict(user, action)`` is the single permission-scoping entry point used by
    the admin, the pages and the API (see :mod:`tagportal.core.permissions`).
    """

    def restrict(self, user, action: str = "view", check_model_permission: bool = True):
        """What ``user`` may ``action`` here; ``check_model_permission=False`` leaves out
        the model permission (a grant on a brand read as "may add into it")."""
        from .permissions import apply_scope, scope_filter

        return apply_scope(self, scope_filter(user, self.model, action, check_model_permission))
