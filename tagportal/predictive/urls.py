"""The algorithm model pages, mounted at ``/models/`` with the namespace ``predictive``."""

from django.urls import path

from . import views

app_name = "predictive"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("<int:pk>/", views.model_detail, name="detail"),
    path("<int:pk>/run/", views.run_now, name="run"),
    path("<int:pk>/scores/", views.upload_scores, name="scores"),
]
