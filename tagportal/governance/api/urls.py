from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("change-requests", api.ChangeRequestViewSet)
router.register("notifications", api.NotificationViewSet, basename="notification")
router.register("recertification", api.RecertificationViewSet, basename="recertification")
router.register("audit", api.AuditViewSet, basename="audit")
router.register("reports", api.ReportViewSet)

urlpatterns = router.urls
