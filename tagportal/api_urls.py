from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

urlpatterns = [
    path("token/", obtain_auth_token, name="api-token"),
    path("catalog/", include("tagportal.catalog.urls")),
    path("lineage/", include("tagportal.lineage.urls")),
    path("governance/", include("tagportal.governance.urls")),
    path("profiles/", include("tagportal.profiles.urls")),
    path("engine/", include("tagportal.engine.urls")),
    path("audiences/", include("tagportal.audiences.urls")),
]
