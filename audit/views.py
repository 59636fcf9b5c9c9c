"""The audit page of a dataset, for its admins. Authorised by labeling's dataset lookup (404 for a
non-member, 403 for a labeler); the audit models and services themselves know nothing of labeling."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.models import AuditEvent
from audit.selectors import audit_event_page
from labeling.selectors import dataset_get_for_admin

EVENTS_PER_PAGE = 50


@require_GET
@login_required
def dataset_audit(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_get_for_admin(user=request.user, dataset_id=dataset_id)
    before = request.GET.get("before", "")
    filters = {
        "actor": request.GET.get("actor", "").strip(),
        "action": request.GET.get("action", "") if request.GET.get("action") in AuditEvent.Action.values else "",
        "reference_id": request.GET.get("reference_id", "").strip(),
    }
    events = audit_event_page(
        dataset_id=dataset.id, before_id=int(before) if before.isdigit() else 0, limit=EVENTS_PER_PAGE + 1, **filters
    )
    context = {
        "dataset": dataset,
        "events": events[:EVENTS_PER_PAGE],
        "next_before": events[EVENTS_PER_PAGE - 1].id if len(events) > EVENTS_PER_PAGE else None,
        "paged": before.isdigit(),
        "filters": filters,
        "filter_query": urlencode({name: value for name, value in filters.items() if value}),
        "actions": AuditEvent.Action.choices,
    }
    return render(request, "audit/dataset_audit.html", context)
