"""The DRF permission class of every endpoint (kept apart from the viewsets so DRF
can import it while it loads its own settings)."""

from rest_framework import permissions
from rest_framework.pagination import PageNumberPagination

from .permissions import may, model_permission

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class RestrictedObjectPermissions(permissions.BasePermission):
    """Model permission for the request's action, then the object's scope.

    Viewsets may set ``action_permissions = {"apply": "change"}`` for custom actions.
    """

    def _action(self, request, view) -> str:
        custom = getattr(view, "action_permissions", {}) or {}
        action = getattr(view, "action", None)
        if action in custom:
            return custom[action]
        return METHOD_ACTIONS.get(request.method, "change")

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        model = getattr(getattr(view, "queryset", None), "model", None)
        if model is None:
            return True
        action = self._action(request, view)
        if action is None:
            return True
        return user.has_perm(model_permission(model, action))

    def has_object_permission(self, request, view, obj):
        action = self._action(request, view)
        if action in (None, "view", "add"):
            return True  # viewing is already scoped by the queryset
        return may(request.user, obj, action)


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000
