"""REST API of the activation channels: channel accounts of the brands the caller
reaches (another brand's answers 404; secrets write-only), ``POST accounts/{id}/test/``
(the platform's answer, never a secret), and the receipt callback a signed-webhook
account's system posts delivery results to (signed, not logged in)."""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from tagportal.core.api import RestrictedModelViewSet
from tagportal.core.filters import FilterSet
from tagportal.core.permissions import may_add_into

from .. import services
from ..choices import ChannelKind
from ..connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureRefused, verify
from ..connectors.wechat import CallbackRefused, open_safe_message, verify_callback
from ..models import ChannelAccount
from .serializers import (
    ChannelAccountSerializer,
    ChannelAccountUpdateSerializer,
    ConnectionCheckSerializer,
    receipts_body,
)


class ChannelAccountFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    kind = django_filters.ChoiceFilter(choices=ChannelKind.choices)
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = ChannelAccount
        fields = []


class ChannelAccountViewSet(RestrictedModelViewSet):
    """Channel accounts of the brands the caller reaches. Settings are checked against
    the kind; secrets are written, never read (``secrets_set`` names those set)."""

    queryset = ChannelAccount.objects.select_related("brand", "created_by")
    serializer_class = ChannelAccountSerializer
    filterset_class = ChannelAccountFilterSet
    search_fields = ["name"]
    ordering_fields = ["name", "kind", "created", "last_updated"]
    ordering = ["brand__code", "kind", "name", "pk"]
    action_permissions = {"test": "change"}

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return ChannelAccountUpdateSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer):
        brand = serializer.validated_data["brand"]
        if not may_add_into(self.request.user, ChannelAccount, brand):
            raise PermissionDenied(
                _("You may not add channel accounts to the brand “%(brand)s”.") % {"brand": brand}
            )
        serializer.save(created_by=self.request.user)

    @extend_schema(request=None, responses={200: ConnectionCheckSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Reach the platform with the account's settings and secrets: ``ok``, or the
        platform's error ``code`` and ``message``."""
        account = self.get_object()
        return Response(services.test_connection(account).as_dict())


class WebhookReceiptsView(APIView):
    """Delivery results posted by the system behind a signed-webhook account:
    ``{"receipts": [{"delivery", "status", "at", "error"?}]}``, signed like our webhooks
    (``X-TagPortal-Timestamp``, ``X-TagPortal-Signature``) within 300 seconds. Unsigned:
    401; forged or stale: 403; a bad body: 400. Each (delivery, status) is kept once."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(description=gettext_lazy("The receipts are recorded.")),
            401: OpenApiResponse(description=gettext_lazy("The request is not signed.")),
            403: OpenApiResponse(description=gettext_lazy("The signature is forged or stale.")),
            409: OpenApiResponse(
                description=gettext_lazy("The same receipts are being recorded; send again.")
            ),
        },
    )
    def post(self, request, account_id: int):
        account = get_object_or_404(ChannelAccount, pk=account_id, kind=ChannelKind.WEBHOOK, is_active=True)
        raw = request.body
        try:
            verify(
                account.secret("signing_secret"),
                request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                raw,
            )
        except SignatureRefused as exc:
            code = status.HTTP_401_UNAUTHORIZED if exc.missing else status.HTTP_403_FORBIDDEN
            return Response({"detail": str(exc)}, status=code)
        try:
            payload = receipts_body(raw)
        except (ValueError, UnicodeDecodeError):
            return Response({"detail": _("The body is not JSON.")}, status=status.HTTP_400_BAD_REQUEST)
        try:
            counts = services.record_receipts(account, payload)
        except services.ReceiptsRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(counts)


class SmsReceiptsView(APIView):
    """Status reports an SMS platform pushes (a JSON array; Aliyun's
    ``{phone_number, success, biz_id, out_id, err_code, report_time}``, Tencent's
    ``{user_receive_time, mobile, report_status, errmsg, sid}``). Neither platform signs
    its push, so the URL carries the account's random ``receipt_token`` as ``?token=``,
    compared in constant time: a wrong or missing one answers 403. Each report is kept once."""

    authentication_classes = []
    permission_classes = [AllowAny]
    kinds = {"aliyun": ChannelKind.SMS_ALIYUN, "tencent": ChannelKind.SMS_TENCENT}
    #: What each platform expects back when it got the reports.
    answers = {"aliyun": {"code": 0, "msg": "成功"}, "tencent": {"result": 0, "errmsg": "OK"}}

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(description=gettext_lazy("The receipts are recorded.")),
            403: OpenApiResponse(description=gettext_lazy("The receipt token is missing or wrong.")),
            409: OpenApiResponse(
                description=gettext_lazy("The same receipts are being recorded; send again.")
            ),
        },
    )
    def post(self, request, account_id: int, platform: str):
        kind = self.kinds.get(platform)
        if kind is None:
            return Response({"detail": _("Not found.")}, status=status.HTTP_404_NOT_FOUND)
        account = get_object_or_404(ChannelAccount, pk=account_id, kind=kind, is_active=True)
        if not services.receipt_token_matches(account, request.query_params.get("token")):
            return Response(
                {"detail": _("The receipt token is missing or wrong.")}, status=status.HTTP_403_FORBIDDEN
            )
        try:
            payload = receipts_body(request.body)
        except (ValueError, UnicodeDecodeError):
            return Response({"detail": _("The body is not JSON.")}, status=status.HTTP_400_BAD_REQUEST)
        try:
            counts = self.record(account, payload)
        except services.ReceiptsRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({**self.answers[platform], **counts})

    def record(self, account: ChannelAccount, payload) -> dict:
        return services.record_sms_receipts(account, payload)


class SmsRepliesView(SmsReceiptsView):
    """Replies people texted back (上行短信) that an SMS platform pushes, under the same
    ``?token=`` as the status reports: a stop reply (``TD``, ``退订`` …) opts the people
    holding the number out of SMS. Nothing of the number or the text is kept."""

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(description=gettext_lazy("The replies are read.")),
            400: OpenApiResponse(description=gettext_lazy("The body is not a list of replies.")),
            403: OpenApiResponse(description=gettext_lazy("The receipt token is missing or wrong.")),
            409: OpenApiResponse(
                description=gettext_lazy("The same receipts are being recorded; send again.")
            ),
        },
    )
    def post(self, request, account_id: int, platform: str):
        return super().post(request, account_id, platform)

    def record(self, account: ChannelAccount, payload) -> dict:
        return services.record_sms_replies(account, payload)


class PlainTextRenderer(BaseRenderer):
    """WeChat reads the answer of its callback as plain text (``echostr``, ``success``)."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return str(data).encode(self.charset)


class PlainTextOnly(BaseContentNegotiation):
    """Plain text whatever the caller's ``Accept`` says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class WeChatCallbackView(APIView):
    """The server a 公众号 is configured with (服务器配置, plain mode): ``GET`` checks it
    (``signature`` = SHA-1 of the sorted account ``callback_token``, ``timestamp`` and
    ``nonce``; answers ``echostr``), ``POST`` takes the event messages, signed the same
    way, and records ``TEMPLATESENDJOBFINISH`` as a delivery receipt of its MsgID (once).
    In safe mode (``encrypt_type=aes``) the ``Encrypt`` element is checked against
    ``msg_signature`` and decrypted with the account's ``encoding_aes_key``.
    A missing or forged signature, or a message for another appid: 403; a body that is
    not a WeChat XML message or does not decrypt: 400."""

    authentication_classes = []
    permission_classes = [AllowAny]
    renderer_classes = [PlainTextRenderer]
    content_negotiation_class = PlainTextOnly

    def _account(self, request, account_id: int) -> ChannelAccount:
        account = get_object_or_404(ChannelAccount, pk=account_id, kind=ChannelKind.WECHAT_MP, is_active=True)
        verify_callback(
            account.secret("callback_token"),
            request.query_params.get("signature"),
            request.query_params.get("timestamp"),
            request.query_params.get("nonce"),
        )
        return account

    @staticmethod
    def _text(text: str, status_code: int = 200) -> Response:
        return Response(text, status=status_code)

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(description=gettext_lazy("The echostr, when the signature matches.")),
            403: OpenApiResponse(description=gettext_lazy("The signature is missing or forged.")),
        },
    )
    def get(self, request, account_id: int):
        try:
            self._account(request, account_id)
        except CallbackRefused as exc:
            return self._text(str(exc), status.HTTP_403_FORBIDDEN)
        return self._text(request.query_params.get("echostr", ""))

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(description=gettext_lazy("The event is taken (“success”).")),
            400: OpenApiResponse(description=gettext_lazy("The body is not a WeChat XML message.")),
            403: OpenApiResponse(description=gettext_lazy("The signature is missing or forged.")),
            409: OpenApiResponse(
                description=gettext_lazy("The same receipts are being recorded; send again.")
            ),
        },
    )
    def post(self, request, account_id: int):
        try:
            account = self._account(request, account_id)
        except CallbackRefused as exc:
            return self._text(str(exc), status.HTTP_403_FORBIDDEN)
        body = request.body
        mode = request.query_params.get("encrypt_type", "raw")
        if mode not in ("raw", "aes"):
            return self._text(_("encrypt_type must be raw or aes."), status.HTTP_400_BAD_REQUEST)
        if mode == "aes":
            try:
                body = open_safe_message(
                    body,
                    token=account.secret("callback_token"),
                    encoding_aes_key=account.secret("encoding_aes_key"),
                    appid=str(account.settings.get("appid", "")),
                    signature=request.query_params.get("msg_signature"),
                    timestamp=request.query_params.get("timestamp"),
                    nonce=request.query_params.get("nonce"),
                )
            except CallbackRefused as exc:
                code = status.HTTP_403_FORBIDDEN if exc.forged else status.HTTP_400_BAD_REQUEST
                return self._text(str(exc), code)
        try:
            services.record_wechat_event(account, body)
        except CallbackRefused as exc:
            return self._text(str(exc), status.HTTP_400_BAD_REQUEST)
        return self._text("success")
