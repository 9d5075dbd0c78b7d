from django.urls import include, path

from tagportal.core.auth import obtain_token

urlpatterns = [
    path("token/", obtain_token, name="api-token"),
    path("catalog/", include("tagportal.catalog.api.urls")),
    path("lineage/", include("tagportal.lineage.api.urls")),
    path("governance/", include("tagportal.governance.api.urls")),
    path("profiles/", include("tagportal.profiles.api.urls")),
    path("engine/", include("tagportal.engine.api.urls")),
    path("predictive/", include("tagportal.predictive.api.urls")),
    path("audiences/", include("tagportal.audiences.api.urls")),
    path("activation/", include("tagportal.activation.api.urls")),
    path("journeys/", include("tagportal.journeys.api.urls")),
]
