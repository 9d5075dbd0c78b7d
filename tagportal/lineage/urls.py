"""The lineage page, mounted at ``/lineage/`` with the namespace ``lineage``."""

from django.urls import path

from . import views

app_name = "lineage"

urlpatterns = [
    path("", views.lineage, name="graph"),
    path("impact/", views.lineage, name="impact"),
]
