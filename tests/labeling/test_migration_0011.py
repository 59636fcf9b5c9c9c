"""Migration 0011 fills the classes shown to the multi-label answers stored before they recorded
it, from the audit log where it can, and moves nothing the sync reads.

Run through Django's MigrationExecutor: back to 0010, rows and audit events planted with the
models of that state, forward again."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("labeling", "0010_categoryannotation_shown_label_ids")]
AFTER = [("labeling", "0011_shown_label_ids_from_audit_log")]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def migrate(labeling_target):
    """Labeling at this migration, every other app at its latest; the models of that state."""
    executor = MigrationExecutor(connection)
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "labeling"] + labeling_target
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def old_state():
    apps = migrate(BEFORE)
    yield apps
    migrate([node for node in MigrationExecutor(connection).loader.graph.leaf_nodes() if node[0] == "labeling"])


class Planted:
    """A dataset as it was before 0011, with the audit log its services wrote."""

    def __init__(self, apps):
        self.apps = apps
        model = apps.get_model
        self.dataset = model("labeling", "Dataset").objects.create(name="Old")
        self.multi = self.taxonomy("attributes", multi_label=True)
        self.single = self.taxonomy("clothing_type", multi_label=False)
        # a and b came with the taxonomy (hour 0); "hoodie" was added at hour 2 and renamed "hood" at
        # hour 6; zip was added at hour 4; legacy has no event (before the audit log).
        self.labels = {name: self.label(self.multi, name, n) for n, name in enumerate(["a", "b", "hood", "zip", "legacy"])}
        self.event("taxonomy.create", "taxonomy", self.multi.id, at(0), after={"taxonomy_name": "attributes", "labels": ["a", "b"]})
        self.event("label.add", "taxonomy", self.multi.id, at(2), after={"labels": ["hoodie"]})
        self.event("label.add", "taxonomy", self.multi.id, at(4), after={"labels": ["zip"]})
        self.event(
            "label.update", "label", self.labels["hood"].id, at(6),
            before={"label": "hoodie", "hotkey": "", "position": 2}, after={"label": "hood", "hotkey": "", "position": 2},
        )
        self.shirt = self.label(self.single, "shirt", 0)
        self.items = 0

    def taxonomy(self, name, *, multi_label):
        return self.apps.get_model("taxonomies", "Taxonomy").objects.create(
            dataset=self.dataset, taxonomy_name=name, multi_label=multi_label, position=1 if multi_label else 2
        )

    def label(self, taxonomy, name, position):
        return self.apps.get_model("taxonomies", "Label").objects.create(taxonomy=taxonomy, name=name, position=position)

    def event(self, action, target_type, target_id, when, *, before=None, after=None):
        self.apps.get_model("audit", "AuditEvent").objects.create(
            dataset=self.dataset, action=action, target_type=target_type, target_id=target_id, before=before, after=after, created_at=when
        )

    def answer(self, *, chosen=(), taxonomy=None, finished=True, changed_at=(), synced=False):
        """An annotation on a new item, with an annotation.create/change event at each hour of `changed_at`."""
        model = self.apps.get_model
        self.items += 1
        item = model("labeling", "Item").objects.create(
            dataset=self.dataset, reference_id=f"image_{self.items}", image_url=f"https://images.example.com/{self.items}.jpg"
        )
        taxonomy = taxonomy or self.multi
        annotation = model("labeling", "CategoryAnnotation").objects.create(
            dataset=self.dataset, item=item, taxonomy=taxonomy, label=self.shirt if taxonomy is self.single else None,
            status="finished" if finished else "draft", finished_at=at(1) if finished else None,
            version=2 if finished else 1, synced_version=2 if synced else 0,
            sync_state=("synced" if synced else "pending") if finished else "not_ready",
        )
        for name in chosen:
            model("labeling", "AnnotationLabel").objects.create(annotation=annotation, label=self.labels[name], taxonomy=taxonomy)
        for n, hour in enumerate(changed_at):
            self.event("annotation.create" if n == 0 else "annotation.change", "annotation", annotation.id, at(hour))
        return annotation

    def ids(self, *names):
        return sorted(self.labels[name].id for name in names)


def test_stored_answers_get_the_classes_the_audit_log_says_they_were_shown(old_state):
    old = Planted(old_state)
    before_hoodie = old.answer(chosen=["a"], changed_at=[1], synced=True)
    between = old.answer(chosen=["b"], changed_at=[1, 3])
    after_rename = old.answer(changed_at=[1, 7])
    relabelled = old.answer(chosen=["zip"], changed_at=[1])  # a relabel to zip added it after hour 4
    no_events = old.answer(chosen=["a"])
    draft = old.answer(chosen=["a"], finished=False)
    single = old.answer(taxonomy=old.single, changed_at=[1])
    sync_columns = ["version", "synced_version", "sync_state", "updated_at", "status"]
    Annotation = old_state.get_model("labeling", "CategoryAnnotation")
    kept = {row["id"]: row for row in Annotation.objects.values("id", *sync_columns)}

    new_state = migrate(AFTER)

    shown = dict(new_state.get_model("labeling", "CategoryAnnotation").objects.values_list("id", "shown_label_ids"))
    assert shown[before_hoodie.id] == old.ids("a", "b", "legacy")
    assert shown[between.id] == old.ids("a", "b", "hood", "legacy")  # hoodie (now hood) came at hour 2
    assert shown[after_rename.id] == old.ids("a", "b", "hood", "zip", "legacy")
    assert shown[relabelled.id] == old.ids("a", "b", "zip", "legacy")  # chosen, so shown
    assert shown[no_events.id] == shown[draft.id] == old.ids("a", "b", "hood", "zip", "legacy")
    assert shown[single.id] is None
    # Nothing the sync reads moved: nothing goes to Nucleus again because of it.
    assert {row["id"]: row for row in new_state.get_model("labeling", "CategoryAnnotation").objects.values("id", *sync_columns)} == kept


def test_back_and_forth_gives_the_same_classes(old_state):
    old = Planted(old_state)
    answer = old.answer(chosen=["a"], changed_at=[1])
    first = migrate(AFTER).get_model("labeling", "CategoryAnnotation").objects.get(pk=answer.id).shown_label_ids

    migrate(BEFORE)
    assert old_state.get_model("labeling", "CategoryAnnotation").objects.get(pk=answer.id).shown_label_ids is None
    again = migrate(AFTER).get_model("labeling", "CategoryAnnotation").objects.get(pk=answer.id).shown_label_ids

    assert first == again == old.ids("a", "b", "legacy")
