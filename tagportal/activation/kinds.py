"""What each channel kind keeps: its non-secret settings (checked here) and the names of
its secrets (kept encrypted, never shown back).

>>> check_settings("wecom", {"corpid": "ww1234", "agentid": 1000002})
{'corpid': 'ww1234', 'agentid': 1000002}
>>> check_settings("wecom", {"corpid": "ww1234", "corpsecret": "x"})
Traceback (most recent call last):
...
tagportal.activation.kinds.SettingsRefused: “corpsecret” is a secret: give it among the secrets, not the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .choices import ChannelKind


class SettingsRefused(ValueError):
    """Settings or secrets a channel kind does not accept (the message says why)."""


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 200


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _url(value) -> bool:
    if not isinstance(value, str) or len(value) > 500:
        return False
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return False
    return True


_CHECKS = {
    "text": (_text, gettext_lazy("a text of at most 200 characters")),
    "int": (_positive_int, gettext_lazy("a positive whole number")),
    "url": (_url, gettext_lazy("an http(s) URL")),
}


@dataclass(frozen=True)
class KindSpec:
    #: ``{name: check}`` of the required settings, and of the optional ones.
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    #: Names of the secrets the kind needs.
    secrets: tuple[str, ...] = ()


SPECS: dict[str, KindSpec] = {
    ChannelKind.WECOM: KindSpec({"corpid": "text"}, {"agentid": "int"}, ("corpsecret",)),
    ChannelKind.WECOM_ROBOT: KindSpec({}, {}, ("key",)),
    # callback_token and encoding_aes_key: the server settings of the event callback
    ChannelKind.WECHAT_MP: KindSpec(
        {"appid": "text"}, {}, ("appsecret", "callback_token", "encoding_aes_key")
    ),
    ChannelKind.MINIPROGRAM: KindSpec({"appid": "text"}, {}, ("appsecret",)),
    # ``receipt_token``: the random token the platform's status push carries in its URL
    ChannelKind.SMS_ALIYUN: KindSpec(
        {"sign_name": "text"}, {"region": "text"}, ("access_key_id", "access_key_secret", "receipt_token")
    ),
    ChannelKind.SMS_TENCENT: KindSpec(
        {"sms_sdk_app_id": "text", "sign_name": "text"},
        {"region": "text"},
        ("secret_id", "secret_key", "receipt_token"),
    ),
    ChannelKind.YOUZAN: KindSpec({"client_id": "text", "grant_id": "text"}, {}, ("client_secret",)),
    ChannelKind.WEIMOB: KindSpec({"client_id": "text"}, {"shop_id": "text"}, ("client_secret",)),
    ChannelKind.WEBHOOK: KindSpec({"url": "url"}, {}, ("signing_secret",)),
}

#: What each secret is called on the platform's console (the admin form's labels).
SECRET_LABELS = {
    "corpsecret": gettext_lazy("WeCom app secret (corpsecret)"),
    "key": gettext_lazy("Group robot webhook key"),
    "appsecret": gettext_lazy("WeChat AppSecret"),
    "callback_token": gettext_lazy("Message callback token"),
    "encoding_aes_key": gettext_lazy("Message EncodingAESKey"),
    "access_key_id": gettext_lazy("Alibaba Cloud AccessKey ID"),
    "access_key_secret": gettext_lazy("Alibaba Cloud AccessKey secret"),
    "receipt_token": gettext_lazy("Status report URL token"),
    "secret_id": gettext_lazy("Tencent Cloud SecretId"),
    "secret_key": gettext_lazy("Tencent Cloud SecretKey"),
    "client_secret": gettext_lazy("Open platform client secret"),
    "signing_secret": gettext_lazy("Webhook signing secret"),
}

#: Every secret name of every kind (the admin form offers one input for each).
ALL_SECRETS: tuple[str, ...] = tuple(sorted({name for spec in SPECS.values() for name in spec.secrets}))


def spec_of(kind: str) -> KindSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise SettingsRefused(_("“%(kind)s” is not a channel kind.") % {"kind": kind}) from None


def check_settings(kind: str, settings: object) -> dict:
    """``settings`` if the kind accepts them (``SettingsRefused`` naming the first problem)."""
    spec = spec_of(kind)
    if not isinstance(settings, dict):
        raise SettingsRefused(_("The settings must be a JSON object."))
    allowed = {**spec.required, **spec.optional}
    for name, value in settings.items():
        if name in ALL_SECRETS:
            raise SettingsRefused(
                _("“%(name)s” is a secret: give it among the secrets, not the settings.") % {"name": name}
            )
        if name not in allowed:
            raise SettingsRefused(
                _("“%(name)s” is not a setting of this kind; it takes: %(names)s.")
                % {"name": name, "names": ", ".join(allowed) or "—"}
            )
        check, wanted = _CHECKS[allowed[name]]
        if not check(value):
            raise SettingsRefused(
                _("The setting “%(name)s” must be %(wanted)s.") % {"name": name, "wanted": wanted}
            )
    missing = [name for name in spec.required if name not in settings]
    if missing:
        raise SettingsRefused(_("Missing settings: %(names)s.") % {"names": ", ".join(missing)})
    return settings


def check_secrets(kind: str, secrets: object) -> dict:
    """``secrets`` (``{name: text}``) if the kind knows each name."""
    spec = spec_of(kind)
    if not isinstance(secrets, dict):
        raise SettingsRefused(_("The secrets must be a JSON object."))
    for name, value in secrets.items():
        if name not in spec.secrets:
            raise SettingsRefused(
                _("“%(name)s” is not a secret of this kind; it takes: %(names)s.")
                % {"name": name, "names": ", ".join(spec.secrets)}
            )
        if not isinstance(value, str) or len(value) > 2000:
            raise SettingsRefused(_("The secret “%(name)s” must be a text.") % {"name": name})
    return secrets
