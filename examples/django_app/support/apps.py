"""The support app's configuration."""

from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Support page relayed to a BlackBox agent"
