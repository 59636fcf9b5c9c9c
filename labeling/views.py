"""The HTML pages. Each one authorises through a `*_for_user` selector (a non-member gets a 404, as
in the API) and renders; the labeling page then talks to the API, like any script."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from labeling.models import Dataset, Task
from labeling.selectors import dataset_get_for_user, dataset_list_for_user
from taxonomies.models import Taxonomy

TASK_URL_PLACEHOLDER = "__reference_id__"


@require_GET
@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = _with_progress(dataset_list_for_user(user=request.user), user=request.user).order_by("name")
    return render(request, "labeling/dataset_list.html", {"datasets": datasets})


@require_GET
@login_required
def dataset_label(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    progress = Task.objects.filter(dataset=dataset).aggregate(**_progress_counts(user=request.user, prefix=""))
    page_data = {
        "dataset": {"id": dataset.id, "name": dataset.name, "kind": dataset.kind},
        "taxonomies": _taxonomies_for_page(dataset=dataset),
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


# --- Reads of these pages -------------------------------------------------------------------------
# They belong in labeling.selectors (`dataset_list_with_progress_for_user`, `taxonomy_list`) and
# stay here until that module is free to change.


def _progress_counts(*, user, prefix: str) -> dict:
    """Tasks in total, done, and done by `user` since midnight (in TIME_ZONE), as Count expressions
    over `<prefix>` tasks, so the list page counts every dataset in one grouped query."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "total": Count(f"{prefix}id"),
        "done": Count(f"{prefix}id", filter=Q(**{f"{prefix}state": Task.State.DONE})),
        "mine_today": Count(f"{prefix}id", filter=Q(**{f"{prefix}done_by": user, f"{prefix}done_at__gte": midnight})),
    }


def _with_progress(datasets: QuerySet[Dataset], *, user) -> QuerySet[Dataset]:
    return datasets.annotate(**_progress_counts(user=user, prefix="tasks__"))


def _taxonomies_for_page(*, dataset: Dataset) -> list[dict]:
    """The taxonomies the page shows for the dataset's kind, in order, with their labels (two queries)."""
    applies = Taxonomy.applies_to_scenes if dataset.kind == Dataset.Kind.SCENES else Taxonomy.applies_to_items
    taxonomies = Taxonomy.objects.filter(dataset=dataset).prefetch_related("labels").order_by("position", "id")
    return [
        {
            "taxonomy_name": taxonomy.taxonomy_name,
            "multi_label": taxonomy.multi_label,
            "required": taxonomy.required,
            "applies_to": taxonomy.applies_to,
            "labels": [{"name": label.name, "hotkey": label.hotkey} for label in taxonomy.labels.all()],
        }
        for taxonomy in taxonomies
        if applies(taxonomy)
    ]
