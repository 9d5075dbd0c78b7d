"""The API's documentation pages (ReDoc and Swagger UI), served from this host only.

Their scripts come from ``drf-spectacular-sidecar`` (static files here, never a CDN),
the ReDoc page uses the system's fonts (``templates/drf_spectacular/redoc.html``), and
each page carries a Content-Security-Policy that lets the browser load nothing from
another host: ReDoc's bundle would fetch its "API docs by Redocly" logo from the
vendor's CDN, and the policy blocks it (the bundle then leaves the image out).
"""

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

#: Scripts and styles: this host's files plus the pages' inline start-up code and the
#: styles the bundles inject; pictures and fonts: this host or inline ``data:``;
#: ReDoc's search runs in a ``blob:`` worker.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)


class _SameHostOnly:
    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


class RedocView(_SameHostOnly, SpectacularRedocView):
    pass


class SwaggerView(_SameHostOnly, SpectacularSwaggerView):
    pass
