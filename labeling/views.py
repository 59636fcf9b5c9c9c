"""The HTML pages. Each one authorises through a `*_for_user` selector (a non-member gets a 404, as
in the API) and renders; the labeling page then talks to the API, like any script."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from labeling.selectors import (
    dataset_get_for_user,
    dataset_list_with_progress_for_user,
    dataset_progress,
    taxonomy_list_for_labeling,
)

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
    }
    return render(request, "labeling/label.html", {"dataset": dataset, "progress": progress, "page_data": page_data})
