"""Customers (OneID), identities, merges and imports."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("customers", api.CustomerViewSet)
router.register("merges", api.MergeRecordViewSet)
router.register("import-jobs", api.ImportJobViewSet)

urlpatterns = [
    path("import/", api.ImportView.as_view(), name="profiles-import"),
    *router.urls,
]
