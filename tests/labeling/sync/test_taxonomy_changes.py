"""Changes to whole taxonomies that Nucleus must hear of: a renamed taxonomy_name (rebuilt under the
new name), a deleted taxonomy (deleted there too, from a tombstone), and a dataset linked to another
Nucleus dataset (everything sent again)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from django.utils import timezone

from labeling.models import CategoryAnnotation, Dataset, NucleusTaxonomyDeletion
from labeling.nucleus import RemoteDataset
from labeling.services.taxonomy_removals import taxonomy_remove
from labeling.services.datasets import dataset_update
from labeling.services.sync import sync_sweep, taxonomy_nucleus_plan
from taxonomies.services import label_update, taxonomy_create, taxonomy_update
from tests.labeling.sync.support import finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


def rename(taxonomy, taxonomy_name):
    return taxonomy_update(
        taxonomy=taxonomy, taxonomy_name=taxonomy_name, applies_to=taxonomy.applies_to, required=taxonomy.required, position=taxonomy.position
    )


def states(taxonomy) -> list[str]:
    return list(taxonomy.annotations.order_by("id").values_list("sync_state", flat=True))


def rename_label(taxonomy, old, new):
    label = taxonomy.labels.get(name=old)
    label_update(label=label, name=new, hotkey=label.hotkey, position=label.position)


ALL_THREE = {("image_0", "clothing_type"): "shirt", ("image_1", "clothing_type"): "pants", ("image_2", "clothing_type"): "dress"}


@pytest.fixture
def synced_three(linked, items, clothing_type):
    for item, name in zip(items, ["shirt", "pants", "dress"], strict=True):
        finish(item, clothing_type, name)
    sync(linked)
    return clothing_type


class TestRebuildStoppedHalfway:
    """Nucleus deleted the taxonomy (and its annotations) but the rebuild stopped before creating it
    again; whatever happens here next, the taxonomy and every annotation end up there."""

    @pytest.mark.parametrize(
        ("change", "change_back"),
        [
            pytest.param(lambda t: rename_label(t, "shirt", "top"), lambda t: rename_label(t, "top", "shirt"), id="label-renamed-back"),
            pytest.param(lambda t: rename(t, "garment"), lambda t: rename(t, "clothing_type"), id="taxonomy-renamed-back"),
        ],
    )
    def test_a_503_after_the_delete_then_a_change_back_still_sends_everything(
        self, linked, synced_three, fake_nucleus, change, change_back
    ):
        change(synced_three)
        fake_nucleus.fail_next(503, route="add_taxonomy")
        sync(linked)
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {}  # deleted there, not created again

        synced_three.refresh_from_db()
        change_back(synced_three)
        report = sync(linked)

        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["shirt", "pants", "dress"]}
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == ALL_THREE
        assert report.synced == 3 and states(synced_three) == [State.SYNCED] * 3

    def test_a_worker_killed_before_the_delete_leaves_it_owed(self, linked, synced_three, fake_nucleus, monkeypatch):
        rename(synced_three, "garment")

        def killed(remote, taxonomy_name):
            raise SystemExit("SIGKILL")

        monkeypatch.setattr(RemoteDataset, "delete_taxonomy", killed)
        with pytest.raises(SystemExit):
            sync(linked)
        monkeypatch.undo()

        assert list(NucleusTaxonomyDeletion.objects.values_list("taxonomy_name", flat=True)) == ["clothing_type"]
        assert states(synced_three) == [State.PENDING] * 3
        synced_three.refresh_from_db()
        rename(synced_three, "clothing_type")
        sync(linked)

        assert [request.path.rsplit("/", 1)[1] for request in fake_nucleus.requests_to("delete_taxonomy")] == ["clothing_type"]
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == ALL_THREE
        assert not NucleusTaxonomyDeletion.objects.exists()


class TestRenamedTaxonomy:
    def test_it_is_rebuilt_under_its_new_name_and_every_annotation_is_sent_again(self, linked, items, clothing_type, fake_nucleus):
        for item, name in zip(items, ["shirt", "pants", "dress"], strict=True):
            finish(item, clothing_type, name)
        sync(linked)

        rename(clothing_type, "garment")
        report = sync(linked)

        assert [request.route for request in fake_nucleus.requests][2:] == ["delete_taxonomy", "add_taxonomy", "annotate"]
        assert fake_nucleus.requests_to("delete_taxonomy")[0].path.endswith("/taxonomy/clothing_type")
        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"garment": ["shirt", "pants", "dress"]}
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {
            ("image_0", "garment"): "shirt", ("image_1", "garment"): "pants", ("image_2", "garment"): "dress",
        }
        assert report.synced == 3 and states(clothing_type) == [State.SYNCED] * 3
        clothing_type.refresh_from_db()
        assert clothing_type.nucleus_taxonomy_name == "garment" and taxonomy_nucleus_plan(clothing_type) is None

    def test_a_multi_label_taxonomy_moves_every_true_false_taxonomy(self, linked, items, attributes, fake_nucleus):
        finish(items[0], attributes, "logo")
        sync(linked)

        rename(attributes, "features")
        sync(linked)

        deleted = sorted(request.path.rsplit("/", 1)[1] for request in fake_nucleus.requests_to("delete_taxonomy"))
        assert deleted == ["attributes:logo", "attributes:striped"]
        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"features:striped": ["True", "False"], "features:logo": ["True", "False"]}
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "features:striped"): "False", ("image_0", "features:logo"): "True"}

    def test_the_sweep_notices_a_rename_that_changed_no_annotation(self, linked, items, clothing_type, monkeypatch):
        from labeling.services import sync as sync_service

        finish(items[0], clothing_type, "shirt")
        sync(linked)
        rename(clothing_type, "garment")
        monkeypatch.setattr(sync_service, "sync_enqueue", lambda *, dataset_id, include_waiting=False: True)

        assert sync_sweep() == [linked.id]

    def test_a_name_given_up_then_taken_while_on_nucleus_sends_the_taker_again(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        rename(clothing_type, "garment")
        newcomer = taxonomy_create(dataset=linked, taxonomy_name="clothing_type", labels=["red"])
        finish(items[1], newcomer, "red")
        # Recorded as sent (say, by a worker that started before the rename was seen); whatever
        # Nucleus had under clothing_type goes with the rename's delete ...
        newcomer.refresh_from_db()
        newcomer.nucleus_labels, newcomer.nucleus_taxonomy_name = ["red"], "clothing_type"
        newcomer.save()
        CategoryAnnotation.objects.filter(taxonomy=newcomer).update(sync_state=State.SYNCED, synced_version=1)

        sync(linked)  # ... so the newcomer is created and sent again

        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "garment"): "shirt", ("image_1", "clothing_type"): "red"}
        assert states(newcomer) == [State.SYNCED]


class TestDeletedTaxonomy:
    def test_it_is_deleted_on_nucleus_by_the_next_sync(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        sync(linked)

        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        assert list(NucleusTaxonomyDeletion.objects.values_list("taxonomy_name", flat=True)) == ["clothing_type"]
        sync(linked)

        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {}
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {}
        assert not NucleusTaxonomyDeletion.objects.exists()

    def test_a_multi_label_taxonomy_deletes_each_true_false_taxonomy(self, linked, items, attributes, clothing_type, fake_nucleus):
        finish(items[0], attributes, "striped")
        finish(items[0], clothing_type, "shirt")
        sync(linked)

        taxonomy_remove(taxonomy=attributes, confirm=True)
        sync(linked)

        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["shirt", "pants", "dress"]}
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "shirt"}

    def test_the_sweep_comes_for_a_deletion(self, linked, items, clothing_type, monkeypatch):
        from labeling.services import sync as sync_service

        finish(items[0], clothing_type, "shirt")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        monkeypatch.setattr(sync_service, "sync_enqueue", lambda *, dataset_id, include_waiting=False: True)

        assert sync_sweep() == [linked.id]

    def test_a_deletion_nucleus_cannot_take_now_waits_for_the_next_sync(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        fake_nucleus.fail_next(503, route="delete_taxonomy")

        sync(linked)
        assert NucleusTaxonomyDeletion.objects.count() == 1
        sync(linked)

        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {}
        assert not NucleusTaxonomyDeletion.objects.exists()

    def test_a_refused_delete_keeps_its_tombstone_and_the_others_are_applied(self, linked, items, clothing_type, attributes, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        finish(items[1], attributes, "logo")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        taxonomy_remove(taxonomy=attributes, confirm=True)
        fake_nucleus.fail_next(403, route="delete_taxonomy")  # the first one: clothing_type

        report = sync(linked)

        assert list(NucleusTaxonomyDeletion.objects.values_list("taxonomy_name", flat=True)) == ["clothing_type"]
        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["shirt", "pants", "dress"]}
        assert [error.split(":", 1)[0] for error in report.errors] == ["Deleting taxonomy clothing_type on Nucleus"]
        assert "HTTP 403" in report.errors[0]

    def test_the_sweep_stops_coming_for_an_old_deletion(self, linked, items, clothing_type, nucleus_settings, monkeypatch):
        from labeling.services import sync as sync_service

        finish(items[0], clothing_type, "shirt")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        monkeypatch.setattr(sync_service, "sync_enqueue", lambda *, dataset_id, include_waiting=False: True)
        an_hour_ago = timezone.now() - timedelta(seconds=nucleus_settings.NUCLEUS_SYNC_BACKOFF_MAX_SECONDS + 1)
        NucleusTaxonomyDeletion.objects.update(created_at=an_hour_ago)  # refused by every sync since

        assert sync_sweep() == []
        assert NucleusTaxonomyDeletion.objects.count() == 1  # still owed: the next sync tries it

    def test_a_new_taxonomy_with_the_deleted_name_is_created_after_the_delete(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        again = taxonomy_create(dataset=linked, taxonomy_name="clothing_type", labels=["coat"])
        finish(items[1], again, "coat")

        sync(linked)

        assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["coat"]}
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_1", "clothing_type"): "coat"}

    def test_the_dry_run_says_it_would_delete_it(self, linked, items, clothing_type):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        err = StringIO()

        call_command("sync_nucleus", str(linked.id), "--dry-run", stdout=StringIO(), stderr=err)

        assert "Would delete taxonomy clothing_type on Nucleus (deleted here)" in err.getvalue()

    def test_an_unlinked_dataset_records_nothing(self, dataset, clothing_type_unlinked):
        taxonomy_remove(taxonomy=clothing_type_unlinked, confirm=True)

        assert not NucleusTaxonomyDeletion.objects.exists()


@pytest.fixture
def clothing_type_unlinked(dataset):
    return taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt"])


class TestRelinkedDataset:
    def test_everything_goes_again_to_the_new_nucleus_dataset(self, linked, items, clothing_type, attributes, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        finish(items[1], attributes, "logo")
        sync(linked)
        other = fake_nucleus.create_dataset("other")
        fake_nucleus.add_items(other, [{"reference_id": item.reference_id, "image_url": item.image_url} for item in items])

        dataset_update(dataset=linked, name=linked.name, nucleus_dataset_id=other, nucleus_push_items=False)
        assert CategoryAnnotation.objects.filter(sync_state=State.PENDING).count() == 2
        report = sync(linked)

        assert report.synced == 2
        assert fake_nucleus.taxonomies(other) == {
            "clothing_type": ["shirt", "pants", "dress"], "attributes:striped": ["True", "False"], "attributes:logo": ["True", "False"],
        }
        assert fake_nucleus.labels(other) == {
            ("image_0", "clothing_type"): "shirt", ("image_1", "attributes:striped"): "False", ("image_1", "attributes:logo"): "True",
        }

    def test_it_forgets_the_items_and_the_deletions_of_the_old_one(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        taxonomy_remove(taxonomy=clothing_type, confirm=True)
        items[0].nucleus_uploaded_at = items[0].created_at
        items[0].save()

        dataset_update(dataset=linked, name=linked.name, nucleus_dataset_id=fake_nucleus.create_dataset("other"), nucleus_push_items=False)

        items[0].refresh_from_db()
        assert items[0].nucleus_uploaded_at is None
        assert not NucleusTaxonomyDeletion.objects.exists()

    def test_a_sync_in_flight_records_nothing_of_the_old_one(self, linked, items, clothing_type, fake_nucleus, monkeypatch):
        annotation = finish(items[0], clothing_type, "shirt")
        other = fake_nucleus.create_dataset("other")
        fake_nucleus.add_items(other, [{"reference_id": item.reference_id, "image_url": item.image_url} for item in items])
        real_add_taxonomy = RemoteDataset.add_taxonomy

        def add_taxonomy_then_relink(remote, taxonomy_name, labels):
            status = real_add_taxonomy(remote, taxonomy_name, labels)  # the old dataset has it now ...
            dataset_update(dataset=Dataset.objects.get(pk=linked.pk), name=linked.name, nucleus_dataset_id=other, nucleus_push_items=False)
            return status

        monkeypatch.setattr(RemoteDataset, "add_taxonomy", add_taxonomy_then_relink)
        sync(linked)
        monkeypatch.undo()

        clothing_type.refresh_from_db()
        annotation.refresh_from_db()
        assert clothing_type.nucleus_labels is None  # ... but the new one does not
        assert annotation.sync_state == State.PENDING
        report = sync(linked)

        assert report.synced == 1
        assert fake_nucleus.taxonomies(other) == {"clothing_type": ["shirt", "pants", "dress"]}
        assert fake_nucleus.labels(other) == {("image_0", "clothing_type"): "shirt"}

    def test_a_rename_of_the_dataset_alone_sends_nothing_again(self, linked, items, clothing_type):
        finish(items[0], clothing_type, "shirt")
        sync(linked)

        dataset_update(dataset=linked, name="Renamed", nucleus_dataset_id=linked.nucleus_dataset_id, nucleus_push_items=False)

        assert states(clothing_type) == [State.SYNCED]
