"""The journey pages, mounted at ``/journeys/`` with the namespace ``journeys``."""

from django.urls import path

from . import views

app_name = "journeys"

urlpatterns = [
    path("", views.journey_list, name="list"),
    path("new/", views.journey_new, name="new"),
    path("review/", views.review_queue, name="queue"),
    path("versions/<int:pk>/review/", views.review_version, name="review"),
    path("<int:pk>/", views.journey_detail, name="detail"),
    path("<int:pk>/edit/", views.journey_edit, name="edit"),
    path("<int:pk>/<str:action>/", views.journey_action, name="action"),
]
