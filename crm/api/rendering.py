from django.core.serializers.json import DjangoJSONEncoder
from rest_framework import renderers


class JSONRenderer(renderers.JSONRenderer):
    """Times and numbers written as `scheduler status --json` and
    /health/scheduler/ write them, so the same state reads the same."""

    encoder_class = DjangoJSONEncoder
