from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

urlpatterns = [
    path("token/", obtain_auth_token, name="api-token"),
    path("catalog/", include("tagportal.catalog.api_urls")),
    path("lineage/", include("tagportal.lineage.api_urls")),
    path("governance/", include("tagportal.governance.api_urls")),
    path("profiles/", include("tagportal.profiles.api_urls")),
    path("engine/", include("tagportal.engine.api_urls")),
    path("audiences/", include("tagportal.audiences.api_urls")),
]
