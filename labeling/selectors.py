"""Reads used by more than one caller."""

from django.db.models import Count

from labeling.models import AnnotationLabel, CategoryAnnotation
from taxonomies.models import Taxonomy


def label_usage_counts(*, taxonomy: Taxonomy) -> dict[int, dict[str, int]]:
    """How many annotations use each label of a taxonomy, by status: {label_id: {"finished": n, "draft": m}}.

    One grouped query, whichever kind the taxonomy is.
    """
    if taxonomy.multi_label:
        rows = (
            AnnotationLabel.objects.filter(taxonomy=taxonomy)
            .values("label_id", "annotation__status")
            .annotate(count=Count("id"))
            .values_list("label_id", "annotation__status", "count")
        )
    else:
        rows = (
            CategoryAnnotation.objects.filter(taxonomy=taxonomy, label__isnull=False)
            .values("label_id", "status")
            .annotate(count=Count("id"))
            .values_list("label_id", "status", "count")
        )
    usage: dict[int, dict[str, int]] = {}
    for label_id, status, count in rows:
        usage.setdefault(label_id, {"finished": 0, "draft": 0})[status] = count
    return usage
