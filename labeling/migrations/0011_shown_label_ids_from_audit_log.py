"""Fill `shown_label_ids` of the multi-label answers stored before answers recorded it.

From the audit log where it can: a class is counted as shown to an answer unless the log says it
was added to the taxonomy (`taxonomy.create` / `label.add`, followed through later renames in
`label.update`) after the answer's last `annotation.create` / `annotation.change`. An answer the
log knows nothing about (a draft, or one stored before the audit log) was shown every current class,
and so was a class whose addition the log does not hold. The classes an answer chose are always
shown (a relabel may have added one). Only `shown_label_ids` is written: no version, sync state
or synced_version moves, so nothing already on Nucleus is sent again because of it.
"""

from collections import defaultdict

from django.db import migrations
from django.db.models import Max, Q

CHUNK = 500
LABEL_ADDING_ACTIONS = ["taxonomy.create", "label.add"]
ANSWER_ACTIONS = ["annotation.create", "annotation.change"]


def labels_added_at(AuditEvent, db, taxonomy, labels: list[tuple[int, str]]) -> dict:
    """{label id: when the audit log says it was added, or None when it does not say}."""
    events = (
        AuditEvent.objects.using(db)
        .filter(dataset_id=taxonomy.dataset_id)
        .filter(
            Q(target_type="taxonomy", target_id=taxonomy.id, action__in=LABEL_ADDING_ACTIONS)
            | Q(target_type="label", target_id__in=[label_id for label_id, _ in labels], action="label.update")
        )
        .order_by("created_at", "id")
        .values_list("action", "target_id", "before", "after", "created_at")
    )
    additions, first_rename = [], {}
    for action, target_id, before, after, created_at in events:
        if action == "label.update":
            renamed = (before or {}).get("label") != (after or {}).get("label")
            if renamed and target_id not in first_rename:
                first_rename[target_id] = (created_at, before.get("label"))
        else:
            additions.append((created_at, set((after or {}).get("labels") or [])))
    added = {}
    for label_id, name in labels:
        renamed_at, original = first_rename.get(label_id, (None, name))
        # The latest addition of the name it had then: a name removed and added again is a new label.
        times = [when for when, names in additions if original in names and (renamed_at is None or when <= renamed_at)]
        added[label_id] = max(times) if times else None
    return added


def shown_from_audit_log(apps, schema_editor):
    db = schema_editor.connection.alias
    CategoryAnnotation = apps.get_model("labeling", "CategoryAnnotation")
    AnnotationLabel = apps.get_model("labeling", "AnnotationLabel")
    Taxonomy = apps.get_model("taxonomies", "Taxonomy")
    Label = apps.get_model("taxonomies", "Label")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    for taxonomy in Taxonomy.objects.using(db).filter(multi_label=True).order_by("id"):
        labels = list(Label.objects.using(db).filter(taxonomy_id=taxonomy.id).order_by("id").values_list("id", "name"))
        every = [label_id for label_id, _ in labels]
        added = labels_added_at(AuditEvent, db, taxonomy, labels)
        unfilled = CategoryAnnotation.objects.using(db).filter(taxonomy_id=taxonomy.id, shown_label_ids__isnull=True)
        after = 0
        while chunk := list(unfilled.filter(id__gt=after).order_by("id").values_list("id", flat=True)[:CHUNK]):
            after = chunk[-1]
            last_change = dict(
                AuditEvent.objects.using(db)
                .filter(dataset_id=taxonomy.dataset_id, target_type="annotation", target_id__in=chunk, action__in=ANSWER_ACTIONS)
                .values("target_id")
                .annotate(last=Max("created_at"))
                .values_list("target_id", "last")
            )
            chosen = defaultdict(set)
            for annotation_id, label_id in AnnotationLabel.objects.using(db).filter(annotation_id__in=chunk).values_list("annotation_id", "label_id"):
                chosen[annotation_id].add(label_id)
            by_shown = defaultdict(list)
            for annotation_id in chunk:
                when = last_change.get(annotation_id)
                if when is None:
                    shown = every
                else:
                    seen = {label_id for label_id in every if added[label_id] is None or added[label_id] <= when}
                    shown = sorted(seen | chosen[annotation_id])
                by_shown[tuple(shown)].append(annotation_id)
            for shown, ids in by_shown.items():
                CategoryAnnotation.objects.using(db).filter(id__in=ids).update(shown_label_ids=list(shown))


def forget_shown(apps, schema_editor):
    CategoryAnnotation = apps.get_model("labeling", "CategoryAnnotation")
    # An ask for new classes needs the classes shown (a constraint): both go, the next forward run refills.
    CategoryAnnotation.objects.using(schema_editor.connection.alias).filter(shown_label_ids__isnull=False).update(
        shown_label_ids=None, asked_label_ids=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0010_categoryannotation_shown_label_ids"),
        ("audit", "0002_auditevent_index_actor_username"),
        ("taxonomies", "0003_taxonomy_nucleus_taxonomy_name"),
    ]

    operations = [migrations.RunPython(shown_from_audit_log, forget_shown)]
