"""The site's URLs: the support app at the root."""

from django.urls import include, path

urlpatterns = [path("", include("support.urls"))]
