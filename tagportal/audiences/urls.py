"""The audience pages, mounted at ``/audiences/`` with the namespace ``audiences``."""

from django.urls import path

from . import views

app_name = "audiences"

urlpatterns = [
    path("", views.audience_list, name="list"),
    path("new/", views.builder, name="new"),
    path("tags/", views.tag_search, name="tags"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/snapshots/<int:number>/", views.snapshot, name="snapshot"),
    path("<int:pk>/refresh/", views.refresh_now, name="refresh"),
    path("<int:pk>/repin/", views.repin, name="repin"),
    path("<int:pk>/approve-repin/", views.approve_repin, name="approve_repin"),
    path("<int:pk>/export/", views.export, name="export"),
    path("<int:pk>/lookalike/", views.lookalike, name="lookalike"),
]
