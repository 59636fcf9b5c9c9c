"""The HTML pages. Each one authorises through a `*_for_user` selector (a non-member gets a 404, as
in the API) and renders; the labeling page then talks to the API, like any script."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling.selectors import (
    dataset_get_for_admin,
    dataset_get_for_user,
    dataset_list_with_progress_for_user,
    dataset_progress,
    sync_failure_page,
    taxonomy_list_for_labeling,
    taxonomy_rebuild_list,
)
from labeling.services.nucleus_items import nucleus_items_pending_count, nucleus_items_push_blocker
from labeling.services.sync import (
    sync_blocker,
    sync_counts,
    sync_enqueue,
    sync_retry_failed,
    sync_taxonomy_renames,
    sync_waiting_for_items,
)
from taxonomies.models import PAGE_KEYS

TASK_URL_PLACEHOLDER = "__reference_id__"


@require_GET
@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = dataset_list_with_progress_for_user(user=request.user)
    return render(request, "labeling/dataset_list.html", {"datasets": datasets})


@require_GET
@login_required
def dataset_label(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    progress = dataset_progress(dataset=dataset, user=request.user)
    page_data = {
        "dataset": {"id": dataset.id, "name": dataset.name, "kind": dataset.kind},
        "taxonomies": taxonomy_list_for_labeling(dataset=dataset),
        "progress": progress,
        "urls": {
            **{name: reverse(f"api:{name}", kwargs={"dataset_id": dataset.id}) for name in ("next", "submit", "submit-and-next", "skip", "draft", "ahead")},
            # The page puts the URL-encoded reference_id in place of the placeholder.
            "task": reverse("api:task-detail", kwargs={"dataset_id": dataset.id, "reference_id": TASK_URL_PLACEHOLDER}),
            "datasets": reverse("labeling:dataset-list"),
        },
        "csrf_token": get_token(request),
        # The page's own keys, from the list hotkey validation reads.
        "keys": PAGE_KEYS,
    }
    return render(request, "labeling/label.html", {"dataset": dataset, "progress": progress, "page_data": page_data})


SYNC_FAILURES_PER_PAGE = 50


@require_GET
@login_required
def dataset_sync(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The dataset's sync to Nucleus, for its admins: counts, why it waits, the failures (a page
    of them after `?after=<id>`) and the taxonomies the next sync rebuilds."""
    dataset = dataset_get_for_admin(user=request.user, dataset_id=dataset_id)
    after = int(request.GET["after"]) if request.GET.get("after", "").isdigit() else 0
    failures = sync_failure_page(dataset=dataset, after=after, limit=SYNC_FAILURES_PER_PAGE + 1)
    blocker = sync_blocker(dataset=dataset)
    pushes = dataset.nucleus_push_items and not blocker
    rebuilds = taxonomy_rebuild_list(dataset=dataset)
    renames = sync_taxonomy_renames(dataset=dataset) if rebuilds else {}
    context = {
        "dataset": dataset,
        "counts": sync_counts(dataset=dataset),
        "blocker": blocker,
        "not_on_nucleus": nucleus_items_pending_count(dataset=dataset) if dataset.nucleus_dataset_id else None,
        # With nucleus_push_items, annotations of items not on Nucleus wait; why, if the sync cannot append them.
        "waiting_for_items": sync_waiting_for_items(dataset=dataset) if pushes else 0,
        "push_blocker": nucleus_items_push_blocker(dataset=dataset) if pushes else None,
        "failures": failures[:SYNC_FAILURES_PER_PAGE],
        "next_after": failures[SYNC_FAILURES_PER_PAGE - 1].id if len(failures) > SYNC_FAILURES_PER_PAGE else None,
        "after": after,
        "rebuilds": [{**rebuild, "renamed_from": renames.get(rebuild["taxonomy_name"], "")} for rebuild in rebuilds],
    }
    return render(request, "labeling/sync.html", context)


@require_POST
@login_required
def dataset_sync_retry(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_get_for_admin(user=request.user, dataset_id=dataset_id)
    retried = sync_retry_failed(dataset=dataset)
    messages.success(request, f"{retried} failed annotation(s) are pending again." if retried else "Nothing had failed.")
    return redirect("labeling:dataset-sync", dataset_id=dataset.id)


@require_POST
@login_required
def dataset_sync_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_get_for_admin(user=request.user, dataset_id=dataset_id)
    blocker = sync_blocker(dataset=dataset)
    if blocker:
        messages.warning(request, f"No sync was started. {blocker}")
    elif sync_enqueue(dataset_id=dataset.id, include_waiting=True):  # "now": retries that are not due yet too
        messages.success(request, "A sync was started.")
    else:
        messages.error(request, "The task queue could not be reached; the periodic sweep will start the sync.")
    return redirect("labeling:dataset-sync", dataset_id=dataset.id)
