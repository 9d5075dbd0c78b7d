from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView

from tagportal.core.api_docs import RedocView, SwaggerView
from tagportal.dashboards.home import home

admin.site.site_header = "TagPortal 标签中台"
admin.site.site_title = _("TagPortal")
admin.site.index_title = _("TagPortal")
_admin_login = admin.site.login


def _login(request, extra_context=None):
    """The admin's login, landing on the workbench rather than the admin index when no
    page was asked for."""
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        extra_context = {REDIRECT_FIELD_NAME: "/", **(extra_context or {})}
    return _admin_login(request, extra_context)


admin.site.login = _login

urlpatterns = [
    path("", home, name="home"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("lineage/", include(("tagportal.lineage.urls", "lineage"))),
    path("review/", include(("tagportal.governance.urls", "governance"))),
    path("audiences/", include(("tagportal.audiences.urls", "audiences"))),
    path("dashboards/", include(("tagportal.dashboards.urls", "dashboards"))),
    path("models/", include(("tagportal.predictive.urls", "predictive"))),
    path("activation/", include(("tagportal.activation.urls", "activation"))),
    path("journeys/", include(("tagportal.journeys.urls", "journeys"))),
    path("api/", include("tagportal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
