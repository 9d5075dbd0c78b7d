"""The activation pages, mounted at ``/activation/`` with the namespace ``activation``."""

from django.urls import path

from . import views_sync

app_name = "activation"

urlpatterns: list = [
    path("audiences/<int:pk>/sync/", views_sync.audience_syncs, name="audience-syncs"),
]
