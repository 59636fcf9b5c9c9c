from audit.models import AuditEvent


def audit_event_page(
    *, dataset_id: int, before_id: int, limit: int, actor: str = "", action: str = "", reference_id: str = ""
) -> list[AuditEvent]:
    """Up to `limit` of the dataset's events older than id `before_id` (0: from the newest), newest
    first, filtered by actor username, action and reference_id when given: one query, served by
    the audit_event_dataset_* indexes."""
    events = AuditEvent.objects.filter(dataset_id=dataset_id)
    if before_id:
        events = events.filter(id__lt=before_id)
    if actor:
        events = events.filter(actor_username=actor)
    if action:
        events = events.filter(action=action)
    if reference_id:
        events = events.filter(reference_id=reference_id)
    return list(events.order_by("-id")[:limit])
