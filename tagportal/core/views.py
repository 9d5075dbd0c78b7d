"""Project-wide pages of the portal: the refused form (a CSRF failure) in the portal's
style and the visitor's language, instead of Django's bare English "403 Forbidden"."""

from __future__ import annotations

from django.template.response import TemplateResponse


def csrf_failure(request, reason: str = "", template_name: str = "403_csrf.html"):
    """``CSRF_FAILURE_VIEW``: the form was refused (an expired session, a page open for
    too long, cookies blocked); the reason is logged by Django, not shown."""
    return TemplateResponse(request, template_name, {"reason": reason}, status=403)
