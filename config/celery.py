"""The Celery application: `celery -A config worker` and `celery -A config beat`.

Configuration comes from Django's settings (the CELERY_* names); with no broker URL set, tasks run
eagerly in the calling process so the embedded default needs no Redis. `celery beat` runs
CELERY_BEAT_SCHEDULE from the settings: the Nucleus sync's sweep (`labeling.sync_sweep`).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
