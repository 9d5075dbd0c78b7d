from tagportal.activation.models import ChannelAccount


def account(brand, kind="wecom", name=None, settings=None, secrets=None) -> ChannelAccount:
    defaults = {
        "wecom": ({"corpid": "ww-corp", "agentid": 1000002}, {"corpsecret": "corp-secret"}),
        "wecom_robot": ({}, {"key": "robot-key"}),
        "wechat_mp": ({"appid": "wx-app"}, {"appsecret": "app-secret", "callback_token": "cb-token"}),
        "miniprogram": ({"appid": "wx-app"}, {"appsecret": "app-secret"}),
        "webhook": ({"url": "http://127.0.0.1:9/hooks/tagportal"}, {"signing_secret": "signing-secret"}),
    }[kind]
    obj = ChannelAccount(
        brand=brand, kind=kind, name=name or f"{kind} account", settings=settings or defaults[0]
    )
    obj.merge_secrets(secrets or defaults[1])
    obj.full_clean()
    obj.save()
    return obj
