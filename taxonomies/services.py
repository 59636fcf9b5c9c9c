"""Writes to taxonomies and their labels.

Renaming and removing labels is allowed here even though Nucleus keeps labels append-only: the
difference with `Taxonomy.nucleus_labels` is what tells the sync to rebuild the taxonomy there.
Nothing in this module knows about annotations (the labeling app builds on this one, not the other
way round); a label that annotations still use is protected by the database (RESTRICT), and
`label_delete` turns that refusal into a clear message.

Every write here bumps the dataset's `taxonomies_revision` in the same transaction (see
`taxonomies_changed`), so readers that keep a dataset's taxonomies in memory know when theirs are stale.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max, RestrictedError

from audit.models import AuditEvent
from audit.services import Change, audit_record
from taxonomies.models import Label, Taxonomy


@dataclass(frozen=True)
class LabelSpec:
    """A label to create: its name and an optional hotkey."""

    name: str
    hotkey: str = ""

    @classmethod
    def parse(cls, value: "str | Mapping | LabelSpec") -> "LabelSpec":
        if isinstance(value, LabelSpec):
            return value
        if isinstance(value, str):
            spec = cls(name=value)
        elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
            spec = cls(name=value["name"], hotkey=value.get("hotkey") or "")
        else:
            raise ValidationError("A label is a string, or an object with a 'name' and an optional 'hotkey'.")
        if not spec.name.strip():
            raise ValidationError("A label cannot be empty.")
        return spec


def taxonomy_create(
    *,
    dataset,
    taxonomy_name: str,
    labels: Iterable,
    multi_label: bool = False,
    applies_to: str = Taxonomy.AppliesTo.ITEMS,
    required: bool = True,
) -> Taxonomy:
    """Create a category taxonomy with its labels, in the order given."""
    specs, errors = _parse_label_specs(labels)
    if not specs and not errors:
        raise ValidationError({"labels": "A taxonomy needs at least one label."})
    with transaction.atomic():
        position = (dataset.taxonomies.aggregate(last=Max("position"))["last"] or 0) + 1
        taxonomy = Taxonomy(
            dataset=dataset,
            taxonomy_name=taxonomy_name,
            multi_label=multi_label,
            applies_to=applies_to,
            required=required,
            position=position,
        )
        taxonomy.full_clean()
        taxonomy.save()
        taxonomies_changed(dataset_id=taxonomy.dataset_id)
        labels = _labels_insert(taxonomy=taxonomy, indexed_specs=specs, first_position=0, errors=errors)
        _audit(taxonomy, AuditEvent.Action.TAXONOMY_CREATE, after={**_taxonomy_state(taxonomy), "labels": [label.name for label in labels]})
    return taxonomy


def taxonomy_update(
    *, taxonomy: Taxonomy, taxonomy_name: str, applies_to: str, required: bool, position: int
) -> Taxonomy:
    """Change a taxonomy's settings. `multi_label` is fixed at creation: switching it would change
    how every annotation of the taxonomy is stored and sent."""
    before = _taxonomy_state(taxonomy)
    taxonomy.taxonomy_name = taxonomy_name
    taxonomy.applies_to = applies_to
    taxonomy.required = required
    taxonomy.position = position
    taxonomy.full_clean()
    with transaction.atomic():
        taxonomy.save(update_fields=["taxonomy_name", "applies_to", "required", "position"])
        taxonomies_changed(dataset_id=taxonomy.dataset_id)
        if before != _taxonomy_state(taxonomy):
            _audit(taxonomy, AuditEvent.Action.TAXONOMY_UPDATE, before=before, after=_taxonomy_state(taxonomy))
    return taxonomy


def taxonomy_add_labels(*, taxonomy: Taxonomy, labels: Iterable) -> list[Label]:
    """Append labels after the existing ones, as Nucleus's `add_taxonomy(..., update=True)` does:
    labels the taxonomy already has are left as they are; only the new ones are returned."""
    specs, errors = _parse_label_specs(labels)
    with transaction.atomic():
        existing = {label.name: label for label in taxonomy.labels.select_for_update().order_by("id")}  # id order: the order every write locks labels in
        new_specs = [(index, spec) for index, spec in specs if spec.name not in existing]
        last = max((label.position for label in existing.values()), default=-1)
        added = _labels_insert(taxonomy=taxonomy, indexed_specs=new_specs, first_position=last + 1, errors=errors)
        if added:
            _audit(taxonomy, AuditEvent.Action.LABEL_ADD, after={"labels": [label.name for label in added]})
        return added


def label_update(*, label: Label, name: str, hotkey: str, position: int) -> Label:
    """Rename a label, change its hotkey or move it. A rename keeps every annotation on the label."""
    before = _label_state(label)
    label.name = name
    label.hotkey = hotkey
    label.position = position
    label.full_clean()
    with transaction.atomic():
        label.save(update_fields=["name", "hotkey", "position"])
        taxonomies_changed(dataset_id=label.taxonomy.dataset_id)
        if before != _label_state(label):
            _audit(label.taxonomy, AuditEvent.Action.LABEL_UPDATE, target=label, before=before, after=_label_state(label))
    return label


def taxonomy_reorder_labels(*, taxonomy: Taxonomy, label_ids: list[int]) -> None:
    """Put the taxonomy's labels in the given order; every label must be named exactly once."""
    with transaction.atomic():
        labels = {label.id: label for label in taxonomy.labels.select_for_update().order_by("id")}
        if sorted(label_ids) != sorted(labels):
            raise ValidationError({"label_ids": "Give every label of the taxonomy exactly once."})
        for position, label_id in enumerate(label_ids):
            labels[label_id].position = position
        Label.objects.bulk_update(labels.values(), ["position"])
        taxonomies_changed(dataset_id=taxonomy.dataset_id)
        _audit(taxonomy, AuditEvent.Action.LABEL_REORDER, after={"labels": [labels[label_id].name for label_id in label_ids]})


def label_delete(*, label: Label) -> None:
    """Remove a label that no annotation uses; refuse with a clear message otherwise."""
    try:
        with transaction.atomic():
            # Before the delete, which clears label.pk; rolled back with it when annotations use the label.
            _audit(label.taxonomy, AuditEvent.Action.LABEL_DELETE, target=label, before=_label_state(label))
            label.delete()
            taxonomies_changed(dataset_id=label.taxonomy.dataset_id)
    except RestrictedError as error:
        raise ValidationError(
            f"The label “{label.name}” is used by {len(error.restricted_objects)} annotation(s); "
            "relabel them before removing it.",
            code="label_in_use",
        ) from None


def _parse_label_specs(labels: Iterable) -> tuple[list[tuple[int, LabelSpec]], list[str]]:
    """The labels as (input index, spec) pairs, and the problems found among them."""
    specs: list[tuple[int, LabelSpec]] = []
    errors: list[str] = []
    seen_names: set[str] = set()
    seen_hotkeys: set[str] = set()
    for index, value in enumerate(labels):
        try:
            spec = LabelSpec.parse(value)
        except ValidationError as error:
            errors.append(f"labels[{index}]: {error.messages[0]}")
            continue
        if spec.name in seen_names:
            errors.append(f"labels[{index}]: “{spec.name}” is listed twice.")
        if spec.hotkey and spec.hotkey in seen_hotkeys:
            errors.append(f"labels[{index}]: hotkey “{spec.hotkey}” is used twice.")
        seen_names.add(spec.name)
        seen_hotkeys.add(spec.hotkey)
        specs.append((index, spec))
    return specs, errors


def _labels_insert(
    *, taxonomy: Taxonomy, indexed_specs: list[tuple[int, LabelSpec]], first_position: int, errors: list[str]
) -> list[Label]:
    """Insert labels in one query after validating each; all problems, the ones found while parsing
    included, are raised together, each naming the label's index in the input."""
    labels = [
        Label(taxonomy=taxonomy, name=spec.name, hotkey=spec.hotkey, position=first_position + offset)
        for offset, (_, spec) in enumerate(indexed_specs)
    ]
    errors = list(errors)
    for (index, _), label in zip(indexed_specs, labels):
        try:
            label.full_clean()
        except ValidationError as error:
            for message in error.messages:
                errors.append(f"labels[{index}] “{label.name}”: {message}")
    if errors:
        raise ValidationError({"labels": errors})
    if labels:
        taxonomies_changed(dataset_id=taxonomy.dataset_id)
    return Label.objects.bulk_create(labels)


class TaxonomyAddStatus:
    """The answers of Nucleus's `add_taxonomy`, which this mirrors."""

    CREATED = "Taxonomy created"
    ALREADY_EXISTS = "Taxonomy already exists"
    UPDATED = "Taxonomy updated"


def taxonomy_add(
    *,
    dataset,
    taxonomy_name: str,
    labels: Iterable,
    multi_label: bool = False,
    applies_to: str = Taxonomy.AppliesTo.ITEMS,
    required: bool = True,
    update: bool = False,
) -> tuple[Taxonomy, str]:
    """Nucleus's `add_taxonomy(..., update=...)`: create the taxonomy, or, when it exists, leave it
    alone (`update` false) or append the labels it lacks (`update` true). Returns the taxonomy and
    Nucleus's status string."""
    existing = Taxonomy.objects.filter(dataset=dataset, taxonomy_name=taxonomy_name).first()
    if existing is None:
        taxonomy = taxonomy_create(
            dataset=dataset, taxonomy_name=taxonomy_name, labels=labels,
            multi_label=multi_label, applies_to=applies_to, required=required,
        )
        return taxonomy, TaxonomyAddStatus.CREATED
    if existing.multi_label != multi_label:
        raise ValidationError({"multi_label": f"“{taxonomy_name}” exists with multi_label={existing.multi_label}; it cannot change."})
    if not update:
        return existing, TaxonomyAddStatus.ALREADY_EXISTS
    taxonomy_add_labels(taxonomy=existing, labels=labels)
    return existing, TaxonomyAddStatus.UPDATED


def _taxonomy_state(taxonomy: Taxonomy) -> dict:
    return {
        "taxonomy_name": taxonomy.taxonomy_name, "multi_label": taxonomy.multi_label,
        "applies_to": taxonomy.applies_to, "required": taxonomy.required, "position": taxonomy.position,
    }


def _label_state(label: Label) -> dict:
    return {"label": label.name, "hotkey": label.hotkey, "position": label.position}


def _audit(taxonomy: Taxonomy, action: str, *, target: Label | None = None, before=None, after=None) -> None:
    """Record a change of the taxonomy (or of its label `target`) in the dataset's audit log, by
    the signed-in user of the current request."""
    audit_record(
        dataset_id=taxonomy.dataset_id,
        changes=[
            Change(
                action=action,
                target_type="label" if target is not None else "taxonomy",
                target_id=target.pk if target is not None else taxonomy.pk,
                taxonomy_name=taxonomy.taxonomy_name,
                before=before,
                after=after,
            )
        ],
    )


def taxonomies_changed(*, dataset_id: int) -> None:
    """Bump the dataset's `taxonomies_revision` (the dataset model, TAXONOMIES_DATASET_MODEL, has
    one): a reader that cached the dataset's taxonomies compares it with the revision it cached."""
    dataset_model = Taxonomy._meta.get_field("dataset").related_model
    dataset_model.objects.filter(pk=dataset_id).update(taxonomies_revision=F("taxonomies_revision") + 1)
