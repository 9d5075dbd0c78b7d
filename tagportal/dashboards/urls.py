"""The dashboards, mounted at ``/dashboards/`` with the namespace ``dashboards``."""

from django.urls import path

from . import views

app_name = "dashboards"

urlpatterns = [
    path("", views.index, name="index"),
    path("run/", views.run_reports, name="run"),
    path("activity/", views.activity, name="activity"),
    path("usage/", views.usage, name="usage"),
    path("cold/", views.cold, name="cold"),
    path("quality/", views.quality, name="quality"),
    path("duplicates/", views.duplicates, name="duplicates"),
    path("reports/", views.reports, name="reports"),
    path("reports/<int:pk>/download/", views.download, name="download"),
    path("cleanup/", views.cleanup, name="cleanup"),
]
