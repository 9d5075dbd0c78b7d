"""The activation pages, mounted at ``/activation/`` with the namespace ``activation``."""

from django.urls import path  # noqa: F401

app_name = "activation"

urlpatterns: list = []
