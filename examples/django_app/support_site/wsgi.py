"""WSGI entry point, for ``gunicorn support_site.wsgi`` and friends (see the threads note in
``support/blackbox.py`` before running several worker processes)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support_site.settings")
application = get_wsgi_application()
