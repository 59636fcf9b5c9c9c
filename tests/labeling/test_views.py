"""The HTML pages: sign-in, the dataset list and the labeling page (the page's behaviour is tested in
a real browser under tests/labeling/browser/)."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from labeling.models import Dataset, DatasetMember, Task
from taxonomies.services import taxonomy_create
from tests.factories import DatasetFactory, DatasetMemberFactory
from tests.labeling.api.support import item_with_task

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


def label_url(dataset: Dataset) -> str:
    return reverse("labeling:dataset-label", kwargs={"dataset_id": dataset.id})


def page_data(response) -> dict:
    match = re.search(r'<script id="label-page-data" type="application/json">(.*?)</script>', response.content.decode(), re.S)
    assert match, "no label-page-data json_script on the page"
    return json.loads(match.group(1))


@pytest.fixture
def other_dataset(db) -> Dataset:
    """A dataset none of the cast belongs to."""
    return DatasetFactory(name="Vehicles")


@pytest.fixture
def scene_dataset(labeler) -> Dataset:
    dataset = DatasetFactory(name="Street scenes", kind=Dataset.Kind.SCENES)
    DatasetMemberFactory(dataset=dataset, user=labeler, role=DatasetMember.Role.LABELER)
    return dataset


class TestSignIn:
    def test_the_login_page_uses_the_sites_own_template(self, client):
        response = client.get(reverse("login"))
        assert response.status_code == 200
        assert [template.name for template in response.templates][:2] == ["registration/login.html", "base.html"]

    def test_signing_in_leads_to_the_dataset_list(self, client, labeler):
        response = client.post(reverse("login"), {"username": "bob", "password": "correct horse battery staple"})
        assert (response.status_code, response["Location"]) == (302, reverse("labeling:dataset-list"))

    def test_a_wrong_password_is_refused_with_a_message(self, client, labeler):
        response = client.post(reverse("login"), {"username": "bob", "password": "wrong"})
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()

    def test_signing_out_leads_back_to_the_login_page(self, client, labeler):
        client.force_login(labeler)
        response = client.post(reverse("logout"))
        assert (response.status_code, response["Location"]) == (302, reverse("login"))
        assert client.get(reverse("labeling:dataset-list")).status_code == 302


class TestSignedOut:
    @pytest.mark.parametrize("page", ["list", "label"])
    def test_every_page_sends_to_the_login_page_and_back(self, client, dataset, page):
        path = reverse("labeling:dataset-list") if page == "list" else label_url(dataset)
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, f"{reverse('login')}?next={path}")


class TestDatasetList:
    def test_it_lists_the_datasets_of_the_member_with_their_progress(self, client, labeler, dataset, other_dataset):
        items = [item_with_task(dataset, f"image_{n}") for n in range(4)]
        Task.objects.filter(item=items[0]).update(state=Task.State.DONE, done_by=labeler, done_at=timezone.now())
        Task.objects.filter(item=items[1]).update(state=Task.State.DONE, done_by=labeler, done_at=timezone.now() - timedelta(days=2))
        Task.objects.filter(item=items[2]).update(state=Task.State.DONE)
        client.force_login(labeler)
        response = client.get(reverse("labeling:dataset-list"))
        assert response.status_code == 200
        assert [(d.name, d.role, d.done, d.total, d.mine_today) for d in response.context["datasets"]] == [
            ("Clothing", "labeler", 3, 4, 1)
        ]
        html = response.content.decode()
        assert "3 / 4 finished" in html and "1 by you today" in html
        assert "Vehicles" not in html
        assert f'href="{label_url(dataset)}"' in html

    def test_a_user_without_datasets_is_told_so(self, client, outsider, dataset):
        client.force_login(outsider)
        response = client.get(reverse("labeling:dataset-list"))
        assert "not a member of any dataset" in response.content.decode()
        assert "Clothing" not in response.content.decode()

    def test_a_dataset_name_is_escaped(self, client, labeler, dataset):
        Dataset.objects.filter(pk=dataset.pk).update(name=XSS)
        client.force_login(labeler)
        html = client.get(reverse("labeling:dataset-list")).content.decode()
        assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    # The list, whatever the number of datasets and tasks:
    #  1. SELECT django_session          the session
    #  2. SELECT auth_user               the signed-in user
    #  3. SELECT labeling_dataset JOIN datasetmember LEFT JOIN task ... GROUP BY   datasets with their counts
    LIST_QUERIES = 3

    def test_it_takes_three_queries_with_three_datasets_as_with_one(self, client, labeler, dataset):
        client.force_login(labeler)
        item_with_task(dataset, "image_1")
        counts = []
        for extra in (0, 2):
            for n in range(extra):
                more = DatasetFactory(name=f"More {n}")
                DatasetMemberFactory(dataset=more, user=labeler)
                item_with_task(more, f"more_{n}")
            with CaptureQueriesContext(connection) as captured:
                assert client.get(reverse("labeling:dataset-list")).status_code == 200
            counts.append(len(captured))
        assert counts == [self.LIST_QUERIES] * 2


class TestLabelPage:
    @pytest.fixture
    def taxonomies(self, dataset):
        clothing = taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=[{"name": "shirt", "hotkey": "h"}, "pants"])
        attributes = taxonomy_create(dataset=dataset, taxonomy_name="attributes", labels=["striped", "logo"], multi_label=True, required=False)
        taxonomy_create(dataset=dataset, taxonomy_name="weather", labels=["sun"], applies_to="scenes")
        return clothing, attributes

    def test_a_member_gets_the_page_with_one_module_and_its_data(self, client, labeler, dataset, taxonomies):
        client.force_login(labeler)
        response = client.get(label_url(dataset))
        assert response.status_code == 200
        scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
        assert scripts == [
            '<script id="label-page-data" type="application/json">',
            '<script type="module" src="/static/labeling/label_page.js">',
        ]

    def test_the_page_data_holds_the_taxonomies_that_apply_with_their_labels_and_hotkeys(self, client, labeler, dataset, taxonomies):
        client.force_login(labeler)
        data = page_data(client.get(label_url(dataset)))
        assert data["dataset"] == {"id": dataset.id, "name": "Clothing", "kind": "images"}
        assert data["taxonomies"] == [
            {
                "taxonomy_name": "clothing_type", "multi_label": False, "required": True, "applies_to": "items",
                "labels": [{"name": "shirt", "hotkey": "h"}, {"name": "pants", "hotkey": ""}],
            },
            {
                "taxonomy_name": "attributes", "multi_label": True, "required": False, "applies_to": "items",
                "labels": [{"name": "striped", "hotkey": ""}, {"name": "logo", "hotkey": ""}],
            },
        ]

    def test_the_page_data_holds_the_api_urls_the_progress_and_a_csrf_token(self, client, labeler, dataset, taxonomies):
        item_with_task(dataset, "image_1")
        client.force_login(labeler)
        response = client.get(label_url(dataset))
        data = page_data(response)
        api = f"/api/v1/datasets/{dataset.id}"
        assert data["urls"] == {
            "next": f"{api}/next/", "submit": f"{api}/submit/", "submit-and-next": f"{api}/submit-and-next/", "skip": f"{api}/skip/", "draft": f"{api}/draft/",
            "ahead": f"{api}/ahead/", "task": f"{api}/tasks/__reference_id__/", "datasets": "/",
        }
        assert data["progress"] == {"total": 1, "done": 0, "mine_today": 0, "checking": 0, "failed_images": 0}
        assert len(data["csrf_token"]) == 64 and response.cookies["csrftoken"].value

    def test_a_scene_dataset_shows_the_taxonomies_for_scenes(self, client, labeler, scene_dataset):
        taxonomy_create(dataset=scene_dataset, taxonomy_name="action", labels=["walking"], applies_to="scenes")
        taxonomy_create(dataset=scene_dataset, taxonomy_name="frame_quality", labels=["good"], applies_to="items")
        taxonomy_create(dataset=scene_dataset, taxonomy_name="weather", labels=["sun"], applies_to="both")
        client.force_login(labeler)
        data = page_data(client.get(label_url(scene_dataset)))
        assert (data["dataset"]["kind"], [t["taxonomy_name"] for t in data["taxonomies"]]) == ("scenes", ["action", "weather"])

    def test_user_controlled_strings_are_escaped_in_the_html_and_the_data(self, client, labeler, dataset):
        Dataset.objects.filter(pk=dataset.pk).update(name=XSS)
        taxonomy_create(dataset=dataset, taxonomy_name="tag", labels=[XSS])
        client.force_login(labeler)
        response = client.get(label_url(dataset))
        html = response.content.decode()
        assert XSS not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the title and header
        assert "\\u003Cscript\\u003Ealert(1)\\u003C/script\\u003E" in html  # json_script
        assert page_data(response)["taxonomies"][0]["labels"][0]["name"] == XSS

    def test_the_page_has_no_inline_event_handlers(self, client, labeler, dataset, taxonomies):
        client.force_login(labeler)
        html = client.get(label_url(dataset)).content.decode()
        assert not re.findall(r"\son[a-z]+\s*=", html)
        assert "javascript:" not in html

    def test_a_superuser_may_open_any_dataset(self, client, superuser, dataset):
        client.force_login(superuser)
        assert client.get(label_url(dataset)).status_code == 200

    @pytest.mark.parametrize("who", ["outsider", "member of another dataset"])
    def test_anyone_else_gets_a_404(self, client, outsider, other_dataset, dataset, labeler, who):
        user = outsider if who == "outsider" else labeler
        client.force_login(user)
        assert client.get(label_url(other_dataset)).status_code == 404

    def test_a_dataset_that_does_not_exist_is_a_404_too(self, client, labeler, dataset):
        client.force_login(labeler)
        assert client.get(reverse("labeling:dataset-label", kwargs={"dataset_id": 999_999})).status_code == 404

    # The page, whatever the number of taxonomies, labels and tasks:
    #  1. SELECT django_session
    #  2. SELECT auth_user
    #  3. SELECT labeling_dataset JOIN datasetmember        dataset_get_for_user
    #  4. SELECT COUNT(...) FROM labeling_task              progress
    #  5. SELECT taxonomies_taxonomy                        the taxonomies
    #  6. SELECT taxonomies_label WHERE taxonomy_id IN      ... with their labels
    PAGE_QUERIES = 6

    def test_it_takes_six_queries_with_many_taxonomies_as_with_two(self, client, labeler, dataset, taxonomies):
        client.force_login(labeler)
        counts = []
        for extra in (0, 5):
            for n in range(extra):
                taxonomy_create(dataset=dataset, taxonomy_name=f"extra_{n}", labels=[f"l{m}" for m in range(10)])
                item_with_task(dataset, f"image_{n}")
            with CaptureQueriesContext(connection) as captured:
                assert client.get(label_url(dataset)).status_code == 200
            counts.append(len(captured))
        assert counts == [self.PAGE_QUERIES] * 2
