"""Writing audit events. Callers write them in the transaction of the change they describe, so the
log and the data never disagree; a save writes all its events in one INSERT."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from audit.context import current_actor
from audit.models import AuditEvent


@dataclass(frozen=True)
class Change:
    """One event to record: what changed (`target_type`, `target_id`, with the reference_id and
    taxonomy_name it is known by) and its state before and after."""

    action: str
    target_type: str
    target_id: int | None = None
    reference_id: str = ""
    taxonomy_name: str = ""
    before: dict | None = None
    after: dict | None = None


def audit_record(*, dataset_id: int, changes: Iterable[Change], actor=None) -> None:
    """Insert one event per change in one statement (none when there is no change). `actor`
    defaults to the signed-in user of the current request."""
    changes = list(changes)
    if not changes:
        return
    actor = actor if actor is not None else current_actor()
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                dataset_id=dataset_id,
                actor=actor,
                actor_username=actor.get_username() if actor is not None else "",
                action=change.action,
                target_type=change.target_type,
                target_id=change.target_id,
                reference_id=change.reference_id,
                taxonomy_name=change.taxonomy_name,
                before=change.before,
                after=change.after,
                created_at=now,
            )
            for change in changes
        ]
    )
