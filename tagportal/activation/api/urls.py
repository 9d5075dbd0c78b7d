from django.urls import path
from rest_framework.routers import DefaultRouter

from . import consent
from . import views as api
from .deliveries import DeliveryViewSet
from .sends import SendToAudienceView
from .syncs import AudienceSyncViewSet

router = DefaultRouter()
router.register("accounts", api.ChannelAccountViewSet)
router.register("consents", consent.ConsentViewSet)
router.register("suppressions", consent.SuppressionViewSet)
router.register("deliveries", DeliveryViewSet)
router.register("syncs", AudienceSyncViewSet)

urlpatterns = [
    path("sends/", SendToAudienceView.as_view(), name="activation-sends"),
    path("vault/import/", consent.VaultImportView.as_view(), name="activation-vault-import"),
    path(
        "webhooks/<int:account_id>/receipts/", api.WebhookReceiptsView.as_view(), name="activation-receipts"
    ),
    path(
        "sms/<int:account_id>/<str:platform>/receipts/",
        api.SmsReceiptsView.as_view(),
        name="activation-sms-receipts",
    ),
    path(
        "sms/<int:account_id>/<str:platform>/replies/",
        api.SmsRepliesView.as_view(),
        name="activation-sms-replies",
    ),
    path(
        "wechat/<int:account_id>/callback/",
        api.WeChatCallbackView.as_view(),
        name="activation-wechat-callback",
    ),
    *router.urls,
]
