from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("sources", api.DataSourceViewSet)
router.register("fields", api.DataFieldViewSet)
router.register("tags", api.TagInputsViewSet, basename="lineage-tag")

urlpatterns = [
    path("impact/", api.ImpactView.as_view(), name="lineage-impact"),
    *router.urls,
]
