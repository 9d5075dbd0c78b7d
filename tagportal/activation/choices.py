from django.db import models
from django.utils.translation import gettext_lazy as _


class ChannelKind(models.TextChoices):
    WECOM = "wecom", _("WeCom (企业微信)")
    WECOM_ROBOT = "wecom_robot", _("WeCom group robot (企业微信群机器人)")
    WECHAT_MP = "wechat_mp", _("WeChat official account (公众号)")
    MINIPROGRAM = "miniprogram", _("WeChat mini-program (小程序)")
    SMS_ALIYUN = "sms_aliyun", _("Alibaba Cloud SMS (阿里云短信)")
    SMS_TENCENT = "sms_tencent", _("Tencent Cloud SMS (腾讯云短信)")
    YOUZAN = "youzan", _("Youzan (有赞)")
    WEIMOB = "weimob", _("Weimob (微盟)")
    WEBHOOK = "webhook", _("Signed webhook")


class ReceiptStatus(models.TextChoices):
    DELIVERED = "delivered", _("delivered")
    FAILED = "failed", _("failed")
    READ = "read", _("read")
    CLICKED = "clicked", _("clicked")
