"""The review pages, mounted at ``/review/`` with the namespace ``governance``."""

from django.urls import path

from . import views

app_name = "governance"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("mine/", views.mine, name="mine"),
    path("all/", views.all_requests, name="all"),
    path("<int:pk>/", views.change_request, name="request"),
    path("<int:pk>/edit/", views.edit, name="edit"),
    path("<int:pk>/impact/", views.impact_recompute, name="impact_recompute"),
    path("propose/", views.propose_pick, name="propose_pick"),
    path("propose/<int:tag_id>/", views.propose, name="propose"),
    path("bulk/", views.bulk_upload, name="bulk"),
    path("restructure/", views.restructure_page, name="restructure"),
    path("bulk/template.csv", views.bulk_template, name="bulk_template"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:pk>/", views.inbox_open, name="inbox_open"),
    path("recertify/", views.recertify, name="recertify"),
    path("audit/", views.audit_page, name="audit"),
    path("audit/csv/", views.audit_csv, name="audit_csv"),
]
