"""Every choice list of the profiles app, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class IdentityType(models.TextChoices):
    PHONE = "phone", _("Mobile phone")
    WECHAT_UNIONID = "wechat_unionid", _("WeChat unionid")
    WECHAT_OPENID = "wechat_openid", _("WeChat openid (per app)")
    WECOM_EXTERNAL_ID = "wecom_external_id", _("WeCom external contact id")
    DOUYIN_OPENID = "douyin_openid", _("Douyin open id")
    XIAOHONGSHU_ID = "xiaohongshu_id", _("Xiaohongshu id")
    JD_PIN = "jd_pin", _("JD pin")
    TMALL_ID = "tmall_id", _("Tmall id")
    CRM_MEMBER_ID = "crm_member_id", _("CRM member id")
    DEVICE_ID = "device_id", _("Device id")


#: Identity types whose value is never stored in clear (only a keyed hash and a mask).
HASHED_ONLY_TYPES = frozenset({IdentityType.PHONE.value})
#: Identity types that are only unique within an app (``Identity.app``).
PER_APP_TYPES = frozenset({IdentityType.WECHAT_OPENID.value})


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    IDENTITIES = "identities", _("Identities")
    EVENTS = "events", _("Events")
    ORDERS = "orders", _("Orders")


class ImportStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class LookupEndpoint(models.TextChoices):
    """Where a person was looked up by a raw identity value."""

    CUSTOMER_LOOKUP = "customer_lookup", _("Customer lookup (API)")
    PROFILE_LOOKUP = "profile_lookup", _("Profile lookup (API)")
    PROFILE_BATCH = "profile_batch", _("Profile batch (API)")
    ADMIN_SEARCH = "admin_search", _("Customer search (admin)")
    SCORE_FILE = "score_file", _("Score file keyed by identity (algorithm models)")
    VAULT_IMPORT = "vault_import", _("Contact vault import by phone number")
