"""Django REST framework's throttles with their rates from the settings
(API_ANON_RATE, API_USER_RATE), read at each request: DRF's own read theirs
once, at import."""

from django.conf import settings
from rest_framework import throttling


class AnonymousRateThrottle(throttling.AnonRateThrottle):
    def get_rate(self):
        return settings.API_ANON_RATE


class UserRateThrottle(throttling.UserRateThrottle):
    def get_rate(self):
        return settings.API_USER_RATE
