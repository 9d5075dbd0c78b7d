from django.urls import path
from rest_framework.routers import DefaultRouter

from . import rules
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

urlpatterns = [
    path("rules/language/", rules.RuleLanguageView.as_view(), name="catalog-rule-language"),
    path("rules/check/", rules.RuleCheckView.as_view(), name="catalog-rule-check"),
    *router.urls,
]
