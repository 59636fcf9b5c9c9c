from celery import shared_task

from accounts.services import login_throttles_purge


@shared_task(name="accounts.purge_login_throttles")
def purge_login_throttles() -> int:
    """Delete sign-in counts whose window and lock are over (scheduled by celery beat)."""
    return login_throttles_purge()
