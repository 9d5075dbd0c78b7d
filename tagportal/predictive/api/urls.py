from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("models", api.PredictiveModelViewSet)
router.register("runs", api.ModelRunViewSet)

urlpatterns = router.urls
