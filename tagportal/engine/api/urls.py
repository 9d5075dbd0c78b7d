from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("computations", api.TagComputationViewSet)
router.register("runs", api.TagRunViewSet)

urlpatterns = [
    path("compute/", api.ComputeView.as_view(), name="engine-compute"),
    path("rules/sample/", api.RuleSampleView.as_view(), name="engine-rule-sample"),
    path("events/", api.EventView.as_view(), name="engine-events"),
    path("profiles/lookup/", api.ProfileLookupView.as_view(), name="engine-profile-lookup"),
    path("profiles/batch/", api.ProfileBatchView.as_view(), name="engine-profile-batch"),
    path("profiles/<int:oneid>/", api.ProfileView.as_view(), name="engine-profile"),
    *router.urls,
]
