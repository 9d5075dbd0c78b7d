"""The DRF permission class of every endpoint (kept apart from the viewsets so DRF
can import it while it loads its own settings)."""

from rest_framework import permissions
from rest_framework.pagination import PageNumberPagination

from .permissions import model_permission

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def request_action(request, view) -> str | None:
    """The action a request needs: the one a viewset declares for its custom action in
    ``action_permissions`` (``{"apply": "change"}``; ``None``: no model permission), else
    the one of its HTTP method."""
    custom = getattr(view, "action_permissions", {}) or {}
    action = getattr(view, "action", None)
    if action in custom:
        return custom[action]
    return METHOD_ACTIONS.get(request.method, "change")


class RestrictedObjectPermissions(permissions.BasePermission):
    """The model permission of the request's action (:func:`request_action`).

    Which objects the action reaches is the base viewset's job: it restricts its
    queryset by the same action (``tagportal.core.api.RestrictedViewSetMixin``).
    """

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        model = getattr(getattr(view, "queryset", None), "model", None)
        if model is None:
            return True
        action = request_action(request, view)
        if action is None:
            return True
        return user.has_perm(model_permission(model, action))


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000
