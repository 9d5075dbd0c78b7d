"""Celery application. Configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagportal.settings")

app = Celery("tagportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
