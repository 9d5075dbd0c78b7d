"""``POST /api/activation/sends/``: send a message to an audience now through one
channel account of its brand (:func:`tagportal.activation.sends.send_to_audience`), or
with ``preview: true`` only count who it would reach. An audience the caller does not
see answers 404, one they may not change 403; an account they do not see, of another
brand, or content that does not fit its kind (or names an unknown tag) 400."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from tagportal.audiences.models import Audience

from .. import sends
from ..models import ChannelAccount, Send


class SendRequestSerializer(serializers.Serializer):
    audience = serializers.IntegerField(min_value=1, help_text=gettext_lazy("The audience's id."))
    account = serializers.IntegerField(min_value=1, help_text=gettext_lazy("The channel account's id."))
    content = serializers.JSONField(help_text=gettext_lazy("The message, per the account's kind."))
    preview = serializers.BooleanField(default=False, help_text=gettext_lazy("Only count; send nothing."))


class SendResultSerializer(serializers.Serializer):
    send = serializers.IntegerField(allow_null=True)
    members = serializers.IntegerField()
    reachable = serializers.IntegerField()
    unreachable = serializers.IntegerField()
    allowed = serializers.IntegerField()
    refused = serializers.DictField(child=serializers.IntegerField())
    will_send = serializers.IntegerField()


class SendToAudienceView(APIView):
    """Send now to an audience (or count, with ``preview``)."""

    #: The permission class checks ``activation.add_send`` against this model.
    queryset = Send.objects.none()

    @extend_schema(
        request=SendRequestSerializer, responses={200: SendResultSerializer, 201: SendResultSerializer}
    )
    def post(self, request):
        given = SendRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        audience = get_object_or_404(Audience.objects.restrict(request.user, "view"), pk=data["audience"])
        account = ChannelAccount.objects.restrict(request.user, "view").filter(pk=data["account"]).first()
        if account is None:
            return Response(
                {"account": [_("No channel account %(id)s that you see.") % {"id": data["account"]}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            if data["preview"]:
                counted = sends.preview(request.user, audience, account, data["content"])
                return Response({"send": None, **counted.as_dict()})
            send, counted = sends.send_to_audience(request.user, audience, account, data["content"])
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        except ValidationError as exc:
            body = exc.message_dict if hasattr(exc, "error_dict") else {"content": exc.messages}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response({"send": send.pk, **counted.as_dict()}, status=status.HTTP_201_CREATED)
