from rest_framework.routers import DefaultRouter

from . import views as api

router = DefaultRouter()
router.register("business-lines", api.BusinessLineViewSet)
router.register("brands", api.BrandViewSet)
router.register("regions", api.RegionViewSet)
router.register("categories", api.CategoryViewSet)
router.register("naming-rules", api.NamingRuleViewSet)
router.register("tags", api.TagViewSet)
router.register("versions", api.TagVersionViewSet)
router.register("templates", api.TemplateViewSet, basename="template")

urlpatterns = router.urls
