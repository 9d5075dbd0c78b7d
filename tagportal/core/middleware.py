"""What a portal page answers when the database cannot take the request.

The API answers these in :func:`tagportal.core.api.exception_handler`; this middleware
does the same for the pages, so a user sees a page that says what happened instead of
a server error:

* the database stayed locked by another writer for longer than the busy timeout (on
  SQLite, "database is locked"): 503 with ``Retry-After``. Not a 409: the request was
  not weighed against the object's state at all, and the same request sent again in a
  moment succeeds (a 409 says the opposite: do not send it again as it is);
* a number out of what the database holds, from a parameter no form bounded: 400.
"""

from __future__ import annotations

import logging

from django.db import OperationalError
from django.template.response import TemplateResponse

from .api import BUSY_MESSAGE, RETRY_AFTER_SECONDS, is_database_busy

log = logging.getLogger(__name__)


class DatabaseErrorPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError) and is_database_busy(exception):
            log.warning("database busy on %s: %s", request.path, exception)
            response = TemplateResponse(
                request, "core/error.html", {"status": 503, "message": BUSY_MESSAGE}, status=503
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response.render()
        if isinstance(exception, OverflowError):
            from django.utils.translation import gettext as _

            log.warning("number out of range on %s: %s", request.path, exception)
            message = _("A number in the request is out of range.")
            return TemplateResponse(
                request, "core/error.html", {"status": 400, "message": message}, status=400
            ).render()
        return None
