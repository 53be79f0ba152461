"""The support page, its JSON API and the webhook endpoint for the agent's tools."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("support", views.support, name="support"),
    path("support/ask", views.ask, name="support-ask"),
    path("support/end", views.end, name="support-end"),
    path("blackbox/webhook", views.webhook, name="blackbox-webhook"),
]
