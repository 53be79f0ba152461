"""Settings of the support site example: no database, sessions in signed cookies.

The BlackBox settings come from the environment: ``BLACKBOX_TOKEN`` (a web integration token),
or ``BLACKBOX_API_KEY`` with ``BLACKBOX_AGENT_ID`` (the development endpoint); optionally
``BLACKBOX_BASE_URL``, ``BLACKBOX_TALK_FIRST=1`` (the agent greets first) and
``WEBHOOK_SECRET`` (the ``X-Webhook-Secret`` header the agent's webhook tools send).
"""

import os
import secrets
from pathlib import Path
from typing import Any, Dict

BASE_DIR = Path(__file__).resolve().parent.parent

# A random key signs sessions only until the process restarts: set DJANGO_SECRET_KEY for real.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_hex(32)
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["support"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "support_site.urls"
WSGI_APPLICATION = "support_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]},
    }
]
DATABASES: Dict[str, Any] = {}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
USE_TZ = True

BLACKBOX = {
    "TOKEN": os.environ.get("BLACKBOX_TOKEN"),
    "API_KEY": os.environ.get("BLACKBOX_API_KEY"),
    "AGENT_ID": os.environ.get("BLACKBOX_AGENT_ID"),
    "BASE_URL": os.environ.get("BLACKBOX_BASE_URL"),
    "TALK_FIRST": os.environ.get("BLACKBOX_TALK_FIRST", "") in ("1", "true", "yes"),
    "QUIET_PERIOD": 1.5,
    "ASK_TIMEOUT": 30.0,
    "WEBHOOK_SECRET": os.environ.get("WEBHOOK_SECRET") or secrets.token_hex(16),
}
