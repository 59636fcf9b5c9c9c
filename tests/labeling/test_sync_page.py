"""The sync page of a dataset (`/datasets/<id>/sync/`), its two buttons, and the dataset admin's sync
counts and action. The page in a real browser: tests/labeling/browser/test_sync_page.py."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from labeling.models import CategoryAnnotation
from taxonomies.services import taxonomy_create
from tests.factories import CategoryAnnotationFactory, ItemFactory

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


def sync_url(dataset, name="dataset-sync") -> str:
    return reverse(f"labeling:{name}", kwargs={"dataset_id": dataset.id})


@pytest.fixture
def clothing_type(dataset):
    return taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])


@pytest.fixture
def attributes(dataset):
    return taxonomy_create(dataset=dataset, taxonomy_name="attributes", labels=["striped", "logo"], multi_label=True)


def finished(taxonomy, *, state=State.SYNCED, error="", reference_id=None, label=None, labels=()):
    """A finished annotation of a new item in this sync state."""
    item = ItemFactory(dataset=taxonomy.dataset, **({"reference_id": reference_id} if reference_id else {}))
    annotation = CategoryAnnotationFactory(
        item=item, taxonomy=taxonomy, label=None if taxonomy.multi_label else (label or taxonomy.labels.first()),
        status=CategoryAnnotation.Status.FINISHED, finished_at=timezone.now(),
        sync_state=state, sync_error=error, sync_attempts=3 if state == State.FAILED else 0,
    )
    for chosen in labels:
        annotation.chosen.create(label=chosen, taxonomy=taxonomy)
    return annotation


class TestWhoSeesIt:
    def test_an_outsider_gets_a_404(self, client, outsider, dataset):
        client.force_login(outsider)
        assert client.get(sync_url(dataset)).status_code == 404

    def test_a_labeler_gets_a_403(self, client, labeler, dataset):
        client.force_login(labeler)
        assert client.get(sync_url(dataset)).status_code == 403

    def test_a_labeler_cannot_retry(self, client, labeler, dataset):
        client.force_login(labeler)
        assert client.post(sync_url(dataset, "dataset-sync-retry")).status_code == 403

    def test_an_outsider_cannot_start_a_sync(self, client, outsider, dataset):
        client.force_login(outsider)
        assert client.post(sync_url(dataset, "dataset-sync-start")).status_code == 404

    def test_anonymous_visitors_are_sent_to_sign_in(self, client, dataset):
        assert client.get(sync_url(dataset)).status_code == 302

    def test_the_dataset_list_links_it_for_admins_only(self, client, admin, labeler, dataset):
        client.force_login(admin)
        assert sync_url(dataset) in client.get(reverse("labeling:dataset-list")).content.decode()
        client.force_login(labeler)
        assert sync_url(dataset) not in client.get(reverse("labeling:dataset-list")).content.decode()


class TestWhatItShows:
    def test_it_counts_pending_synced_and_failed_annotations(self, client, admin, clothing_type):
        for state in [State.PENDING, State.PENDING, State.SYNCED, State.FAILED]:
            finished(clothing_type, state=state)
        client.force_login(admin)

        response = client.get(sync_url(clothing_type.dataset))

        assert response.context["counts"] == {"not_ready": 0, "pending": 2, "synced": 1, "failed": 1}
        assert 'data-count="pending">2<' in response.content.decode()

    def test_it_says_why_the_sync_waits_without_an_api_key(self, client, admin, dataset, settings):
        settings.NUCLEUS_API_KEY = ""
        client.force_login(admin)

        assert "NUCLEUS_API_KEY is not set on the server" in client.get(sync_url(dataset)).content.decode()

    def test_it_says_why_the_sync_waits_when_the_dataset_is_not_linked(self, client, admin, dataset, settings):
        settings.NUCLEUS_API_KEY = "key"
        client.force_login(admin)

        assert "not linked to a Nucleus dataset" in client.get(sync_url(dataset)).content.decode()

    def test_it_lists_each_failure_with_its_label_attempts_and_last_error(self, client, admin, clothing_type, attributes):
        finished(clothing_type, state=State.FAILED, reference_id="image_1", error="Label 'shirt' is not in taxonomy <b>")
        striped = attributes.labels.get(name="striped")
        finished(attributes, state=State.FAILED, reference_id="image_2", error="Nucleus answered HTTP 500", labels=[striped])
        client.force_login(admin)

        page = client.get(sync_url(clothing_type.dataset)).content.decode()

        assert "<td>image_1</td>" in page and "<td>clothing_type</td>" in page and "<td>shirt</td>" in page
        assert "Label &#x27;shirt&#x27; is not in taxonomy &lt;b&gt;" in page
        assert "<td>image_2</td>" in page and "<td>attributes</td>" in page and "<td>striped</td>" in page
        assert "<td>3</td>" in page

    def test_failures_come_a_page_at_a_time(self, client, admin, clothing_type, monkeypatch):
        from labeling import views

        monkeypatch.setattr(views, "SYNC_FAILURES_PER_PAGE", 2)
        failures = [finished(clothing_type, state=State.FAILED, error=f"error {n}") for n in range(3)]
        client.force_login(admin)

        first = client.get(sync_url(clothing_type.dataset))
        second = client.get(sync_url(clothing_type.dataset), {"after": first.context["next_after"]})

        assert [a.id for a in first.context["failures"]] == [a.id for a in failures[:2]]
        assert [a.id for a in second.context["failures"]] == [failures[2].id]
        assert second.context["next_after"] is None

    def test_it_shows_the_taxonomies_the_next_sync_rebuilds_and_how_many_annotations_go_again(self, client, admin, clothing_type):
        for _ in range(2):
            finished(clothing_type)
        clothing_type.nucleus_labels = ["shirt", "trousers"]  # Nucleus had "trousers", renamed here to "pants"
        clothing_type.save()
        client.force_login(admin)

        response = client.get(sync_url(clothing_type.dataset))

        assert response.context["rebuilds"] == [{"taxonomy_name": "clothing_type", "removed": ["trousers"], "resent": 2, "renamed_from": ""}]
        assert "Taxonomies the next sync rebuilds on Nucleus" in response.content.decode()

    def test_it_shows_a_renamed_taxonomy_with_its_name_on_nucleus(self, client, admin, clothing_type):
        finished(clothing_type)
        clothing_type.nucleus_labels, clothing_type.nucleus_taxonomy_name = ["shirt", "pants"], "garment"
        clothing_type.save()
        client.force_login(admin)

        response = client.get(sync_url(clothing_type.dataset))

        assert response.context["rebuilds"] == [{"taxonomy_name": "clothing_type", "removed": [], "resent": 1, "renamed_from": "garment"}]
        assert "<td>garment</td>" in response.content.decode()

    def test_it_tells_how_many_items_are_not_on_nucleus_yet(self, client, admin, dataset):
        dataset.nucleus_dataset_id = "ds_1"
        dataset.save()
        ItemFactory(dataset=dataset)
        client.force_login(admin)

        assert "manage.py push_nucleus_items" in client.get(sync_url(dataset)).content.decode()

    def test_its_queries_do_not_grow_with_the_annotations(self, client, admin, clothing_type, attributes, settings):
        settings.NUCLEUS_API_KEY = "key"
        client.force_login(admin)

        def queries() -> list[str]:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(sync_url(clothing_type.dataset)).status_code == 200
            return [query["sql"] for query in captured.captured_queries]

        finished(clothing_type, state=State.FAILED, error="x")
        finished(attributes, state=State.FAILED, error="x", labels=[attributes.labels.first()])
        few = queries()
        for _ in range(10):
            finished(clothing_type, state=State.FAILED, error="x")
            finished(attributes, state=State.FAILED, error="x", labels=list(attributes.labels.all()))
            finished(clothing_type, state=State.SYNCED)
        many = queries()

        # session, user, the dataset with the role, the counts by sync state, the failed annotations
        # with item, scene, taxonomy and label, their multi-label labels, the taxonomies Nucleus has
        # (none here: no rebuild count); not linked, so no count of items not on Nucleus.
        assert len(few) == len(many) == 7, "\n".join(many)


@pytest.fixture
def on_the_fake(dataset, fake_nucleus, settings):
    """The dataset linked to a dataset on the fake Nucleus that has the item image_1; its taxonomy."""
    settings.NUCLEUS_API_KEY, settings.NUCLEUS_ENDPOINT = fake_nucleus.api_key, fake_nucleus.endpoint
    dataset.nucleus_dataset_id = fake_nucleus.create_dataset("clothing")
    dataset.save()
    fake_nucleus.add_items(dataset.nucleus_dataset_id, [{"reference_id": "image_1", "image_url": "https://x.example.com/1.jpg"}])
    return taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt"])


class TestTheButtons:
    def test_retry_failed_puts_the_failures_back_in_the_outbox(self, client, admin, clothing_type):
        failed = finished(clothing_type, state=State.FAILED, error="boom")
        client.force_login(admin)

        response = client.post(sync_url(clothing_type.dataset, "dataset-sync-retry"), follow=True)

        failed.refresh_from_db()
        assert (failed.sync_state, failed.sync_attempts, failed.sync_error) == (State.PENDING, 0, "")
        assert "1 failed annotation(s) are pending again." in response.content.decode()

    def test_sync_now_says_why_it_cannot_start(self, client, admin, dataset, settings):
        settings.NUCLEUS_API_KEY = ""
        client.force_login(admin)

        response = client.post(sync_url(dataset, "dataset-sync-start"), follow=True)

        assert "No sync was started. NUCLEUS_API_KEY is not set" in response.content.decode()

    def test_sync_now_sends_the_pending_annotations(self, client, admin, dataset, fake_nucleus, on_the_fake):
        annotation = finished(on_the_fake, state=State.PENDING, reference_id="image_1")
        client.force_login(admin)

        response = client.post(sync_url(dataset, "dataset-sync-start"), follow=True)

        assert "A sync was started." in response.content.decode()
        annotation.refresh_from_db()
        assert annotation.sync_state == State.SYNCED
        assert fake_nucleus.labels(dataset.nucleus_dataset_id) == {("image_1", "clothing_type"): "shirt"}

    def test_sync_now_also_sends_retries_that_are_not_due_yet(self, client, admin, dataset, fake_nucleus, on_the_fake):
        annotation = finished(on_the_fake, state=State.PENDING, reference_id="image_1")
        CategoryAnnotation.objects.filter(pk=annotation.pk).update(
            sync_attempts=2, sync_next_attempt_at=timezone.now() + timedelta(hours=1), sync_error="HTTP 503"
        )
        client.force_login(admin)

        client.post(sync_url(dataset, "dataset-sync-start"))

        annotation.refresh_from_db()
        assert annotation.sync_state == State.SYNCED
        assert fake_nucleus.labels(dataset.nucleus_dataset_id) == {("image_1", "clothing_type"): "shirt"}

    def test_sync_now_publishes_the_task_with_include_waiting(self, client, admin, dataset, settings, monkeypatch):
        from labeling.tasks import sync_dataset

        settings.NUCLEUS_API_KEY = "key"
        dataset.nucleus_dataset_id = "ds_1"
        dataset.save()
        published = []
        monkeypatch.setattr(sync_dataset, "apply_async", lambda args, kwargs, **options: published.append((args, kwargs, options)))
        client.force_login(admin)

        client.post(sync_url(dataset, "dataset-sync-start"))

        assert published == [([dataset.id], {"include_waiting": True}, {"retry": False, "countdown": None})]

    def test_the_buttons_need_a_post(self, client, admin, dataset):
        client.force_login(admin)
        assert client.get(sync_url(dataset, "dataset-sync-retry")).status_code == 405


class TestTheAdmin:
    def test_the_dataset_list_shows_pending_and_failed_counts(self, client, superuser, clothing_type):
        finished(clothing_type, state=State.PENDING)
        finished(clothing_type, state=State.FAILED)
        finished(clothing_type, state=State.FAILED)
        client.force_login(superuser)

        response = client.get(reverse("admin:labeling_dataset_changelist"))

        (row,) = response.context["cl"].result_list
        assert (row.pending_total, row.failed_total, row.item_total) == (1, 2, 3)

    def test_the_dataset_page_shows_the_counts_and_links_the_sync_page(self, client, superuser, clothing_type):
        finished(clothing_type, state=State.FAILED)
        client.force_login(superuser)

        page = client.get(reverse("admin:labeling_dataset_change", args=[clothing_type.dataset_id])).content.decode()

        assert "0 pending, 0 synced, 1 failed." in page
        assert sync_url(clothing_type.dataset) in page

    def test_the_retry_action_puts_failures_back_in_the_outbox(self, client, superuser, clothing_type):
        failed = finished(clothing_type, state=State.FAILED, error="boom")
        client.force_login(superuser)

        client.post(
            reverse("admin:labeling_dataset_changelist"),
            {"action": "retry_failed_sync", "_selected_action": [clothing_type.dataset_id]},
        )

        failed.refresh_from_db()
        assert failed.sync_state == State.PENDING

    def test_the_annotation_list_filters_by_sync_state_and_shows_the_error(self, client, superuser, clothing_type):
        finished(clothing_type, state=State.FAILED, error="Taxonomy clothing_type does not exist")
        finished(clothing_type, state=State.SYNCED)
        client.force_login(superuser)

        response = client.get(reverse("admin:labeling_categoryannotation_changelist"), {"sync_state__exact": "failed"})

        assert len(response.context["cl"].result_list) == 1
        assert "Taxonomy clothing_type does not exist" in response.content.decode()

    def test_relinking_a_dataset_puts_its_finished_annotations_back_in_the_outbox(self, client, superuser, clothing_type):
        synced = finished(clothing_type, state=State.SYNCED)
        clothing_type.nucleus_labels, clothing_type.nucleus_taxonomy_name = ["shirt", "pants"], "clothing_type"
        clothing_type.save()
        dataset = clothing_type.dataset
        client.force_login(superuser)

        response = client.post(
            reverse("admin:labeling_dataset_change", args=[dataset.id]),
            {"name": dataset.name, "kind": dataset.kind, "nucleus_dataset_id": "ds_other", "nucleus_push_items": "on",
             "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0},
        )

        assert response.status_code == 302, response.content.decode()[:2000]
        synced.refresh_from_db()
        clothing_type.refresh_from_db()
        assert synced.sync_state == State.PENDING and clothing_type.nucleus_labels is None
        dataset.refresh_from_db()
        assert dataset.nucleus_push_items is True

    def test_deleting_a_taxonomy_in_the_admin_deletes_it_on_nucleus_too(self, client, superuser, clothing_type):
        from labeling.models import NucleusTaxonomyDeletion

        clothing_type.dataset.nucleus_dataset_id = "ds_1"
        clothing_type.dataset.save()
        client.force_login(superuser)

        client.post(reverse("admin:taxonomies_taxonomy_delete", args=[clothing_type.id]), {"post": "yes"})

        assert list(NucleusTaxonomyDeletion.objects.values_list("taxonomy_name", flat=True)) == ["clothing_type"]

    def test_a_renamed_taxonomy_says_it_will_be_rebuilt(self, client, superuser, clothing_type):
        clothing_type.nucleus_labels, clothing_type.nucleus_taxonomy_name = ["shirt", "pants"], "garment"
        clothing_type.save()
        client.force_login(superuser)

        page = client.get(reverse("admin:taxonomies_taxonomy_change", args=[clothing_type.id])).content.decode()

        assert "renamed from garment" in page
