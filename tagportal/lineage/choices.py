"""Choices of the lineage models: kinds of data source, data types of fields, where an input came from."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class SourceKind(models.TextChoices):
    CRM = "crm", _("CRM")
    WECOM = "wecom", _("WeCom")
    WECHAT_OA = "wechat_oa", _("WeChat official account")
    MINIPROGRAM = "miniprogram", _("Mini-program")
    DOUYIN = "douyin", _("Douyin")
    XIAOHONGSHU = "xiaohongshu", _("Xiaohongshu")
    JD = "jd", _("JD")
    TMALL = "tmall", _("Tmall")
    POS = "pos", _("POS / offline store")
    OTHER = "other", _("Other")


class DataType(models.TextChoices):
    STRING = "string", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    BOOLEAN = "boolean", _("Yes / no")


class InputOrigin(models.TextChoices):
    DECLARED = "declared", _("Declared")
    DEFINITION = "definition", _("From the definition")
