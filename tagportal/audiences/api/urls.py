from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("audiences", api.AudienceViewSet)

urlpatterns = [
    path("estimate/", api.EstimateView.as_view(), name="audiences-estimate"),
    *router.urls,
]
