"""The DRF permission class of every endpoint (kept apart from the viewsets so DRF
can import it while it loads its own settings)."""

from django.utils.translation import gettext as _
from rest_framework import exceptions, permissions
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
    """DRF's page numbers, but a ``page_size`` or ``page`` that is not a whole number in
    range answers 400 naming it (DRF would silently use the default size, or answer 404
    "Invalid page."). A page past the last one is still 404."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        size = _whole_number(raw)
        if size is None or not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError(
                {
                    self.page_size_query_param: [
                        _("Expected a whole number from 1 to %(max)d.") % {"max": self.max_page_size}
                    ]
                }
            )
        return size

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw == "":
            return 1
        if raw in self.last_page_strings:
            return paginator.num_pages
        number = _whole_number(raw)
        if number is None or number < 1:
            raise exceptions.ValidationError(
                {self.page_query_param: [_("Expected a page number: a whole number from 1.")]}
            )
        return number

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
            elif parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
        return parameters


def _whole_number(raw: str) -> int | None:
    """``raw`` as an int if it is a plain whole number of at most 18 digits, else None."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(text)
