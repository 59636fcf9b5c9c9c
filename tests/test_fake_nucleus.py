"""The fake Nucleus server, driven by the real scale-nucleus SDK wherever the SDK has a call for the route."""

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import nucleus
import nucleus.async_job
import nucleus.connection
import pytest
import requests
import tqdm
from nucleus import CategoryAnnotation, DatasetItem, NucleusClient, SceneCategoryAnnotation, VideoScene
from nucleus.errors import NucleusAPIError

from tests.fake_nucleus import ANNOTATION_ERROR_PATTERN, FakeNucleusRemote, InvalidRequest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(fake_nucleus):
    client = NucleusClient(api_key=fake_nucleus.api_key, endpoint=fake_nucleus.endpoint)
    client.tqdm_bar = functools.partial(tqdm.tqdm, disable=True)
    return client


@pytest.fixture
def clothing(fake_nucleus, client):
    """A dataset with two images and a `clothing_type` taxonomy, seeded without going through the SDK."""
    dataset_id = fake_nucleus.create_dataset(name="Clothing")
    fake_nucleus.add_items(
        dataset_id,
        [
            {"reference_id": "image_1", "image_url": "https://example.com/1.jpg", "metadata": {"color": "white"}},
            {"reference_id": "image_2", "image_url": "https://example.com/2.jpg", "metadata": {}},
        ],
    )
    dataset = client.get_dataset(dataset_id)
    dataset.add_taxonomy("clothing_type", "category", ["shirt", "trousers"])
    return dataset


def shirt(reference_id="image_1", label="shirt", taxonomy_name="clothing_type"):
    return CategoryAnnotation(label=label, reference_id=reference_id, taxonomy_name=taxonomy_name, metadata={"by": "alice"})


@pytest.fixture
def no_retry_sleep(monkeypatch):
    """The SDK sleeps up to 2*[1, 3, 9, 27] s between its retries of 503/504/520/524; record instead of waiting."""
    sleeps = []
    monkeypatch.setattr(nucleus.connection.time, "sleep", sleeps.append)
    return sleeps


def wait_for(read, seconds=2.0):
    """Poll `read` until it returns something truthy: for writes the fake finishes after the client gave up."""
    deadline = time.monotonic() + seconds
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# -- datasets and auth ------------------------------------------------------------------------------


def test_it_creates_a_dataset_that_info_describes(fake_nucleus, client):
    dataset = client.create_dataset("Clothing", is_scene=False)

    info = dataset.info()

    assert (info.dataset_id, info.name, info.length) == (dataset.id, "Clothing", 0)
    assert fake_nucleus.requests_to("create")[0].json["name"] == "Clothing"


def test_it_answers_404_for_an_unknown_dataset(client):
    with pytest.raises(NucleusAPIError) as raised:
        client.get_dataset("ds_missing").info()

    assert raised.value.status_code == 404
    assert "Dataset ds_missing does not exist" in raised.value.message


def test_it_refuses_a_wrong_api_key_with_401(fake_nucleus):
    intruder = NucleusClient(api_key="wrong-key", endpoint=fake_nucleus.endpoint)

    with pytest.raises(NucleusAPIError) as raised:
        intruder.create_dataset("Clothing", is_scene=False)

    assert raised.value.status_code == 401
    assert fake_nucleus.requests[-1].api_key == "wrong-key"


def test_it_refuses_nan_in_a_json_body_with_400(fake_nucleus):
    response = requests.post(
        f"{fake_nucleus.endpoint}/dataset/create",
        data='{"name": NaN}',
        auth=(fake_nucleus.api_key, ""),
        timeout=5,
    )

    assert response.status_code == 400
    assert "NaN" in response.json()["error"]


# -- taxonomies -------------------------------------------------------------------------------------


def test_it_creates_a_taxonomy(fake_nucleus, client):
    dataset = client.create_dataset("Clothing", is_scene=False)

    answer = dataset.add_taxonomy("clothing_type", "category", ["shirt", "trousers"])

    assert answer == {"dataset_id": dataset.id, "taxonomy_name": "clothing_type", "status": "Taxonomy created"}
    assert fake_nucleus.taxonomies(dataset.id) == {"clothing_type": ["shirt", "trousers"]}


def test_it_keeps_the_labels_of_an_existing_taxonomy_without_update(fake_nucleus, clothing):
    answer = clothing.add_taxonomy("clothing_type", "category", ["dress"])

    assert answer["status"] == "Taxonomy already exists"
    assert fake_nucleus.taxonomies(clothing.id) == {"clothing_type": ["shirt", "trousers"]}


def test_it_appends_new_labels_on_update_and_never_removes_any(fake_nucleus, clothing):
    answer = clothing.add_taxonomy("clothing_type", "category", ["dress", "shirt"], update=True)

    assert answer["status"] == "Taxonomy updated"
    assert fake_nucleus.taxonomies(clothing.id) == {"clothing_type": ["shirt", "trousers", "dress"]}


def test_it_deletes_a_taxonomy_whose_name_the_sdk_sends_unencoded(fake_nucleus, clothing):
    clothing.add_taxonomy("sleeve length", "category", ["short", "long"])

    clothing.delete_taxonomy("sleeve length")

    assert list(fake_nucleus.taxonomies(clothing.id)) == ["clothing_type"]


def test_deleting_a_taxonomy_deletes_its_annotations(fake_nucleus, clothing):
    clothing.add_taxonomy("is_formal", "category", ["True", "False"])
    clothing.annotate([shirt(), shirt(label="True", taxonomy_name="is_formal")])

    answer = clothing.delete_taxonomy("clothing_type")

    assert answer["status"] == "Taxonomy successfully deleted"
    assert fake_nucleus.taxonomies(clothing.id) == {"is_formal": ["True", "False"]}
    assert fake_nucleus.labels(clothing.id) == {("image_1", "is_formal"): "True"}
    assert fake_nucleus.requests_to("delete_taxonomy")[0].json == {}


# -- annotate -----------------------------------------------------------------------------------------


def test_it_stores_a_new_annotation_as_sent(fake_nucleus, clothing):
    answer = clothing.annotate([shirt()])

    assert answer == {"dataset_id": clothing.id, "annotations_processed": 1, "annotations_ignored": 0}
    assert fake_nucleus.annotations(clothing.id)[("image_1", "clothing_type")] == shirt().to_payload()


def test_it_ignores_a_second_label_without_update(fake_nucleus, clothing):
    clothing.annotate([shirt()])

    answer = clothing.annotate([shirt(label="trousers")])

    assert (answer["annotations_processed"], answer["annotations_ignored"]) == (0, 1)
    assert fake_nucleus.labels(clothing.id) == {("image_1", "clothing_type"): "shirt"}


def test_it_replaces_the_label_with_update(fake_nucleus, clothing):
    clothing.annotate([shirt()])

    answer = clothing.annotate([shirt(label="trousers")], update=True)

    assert (answer["annotations_processed"], answer["annotations_ignored"]) == (1, 0)
    assert fake_nucleus.labels(clothing.id) == {("image_1", "clothing_type"): "trousers"}


def test_it_answers_invalid_annotations_with_200_and_attributable_errors(fake_nucleus, clothing):
    answer = clothing.annotate(
        [
            shirt(),
            shirt(reference_id="image_9"),
            shirt(taxonomy_name="season"),
            shirt(label="hat"),
        ]
    )

    assert (answer["annotations_processed"], answer["annotations_ignored"]) == (1, 0)
    assert answer["errors"] == [
        f"Item with reference_id 'image_9' does not exist in dataset {clothing.id}"
        " (reference_id 'image_9', taxonomy_name 'clothing_type')",
        f"Input validation failed: Taxonomy season does not exist in dataset {clothing.id}"
        " (reference_id 'image_1', taxonomy_name 'season')",
        "Input validation failed: Label 'hat' is not in taxonomy clothing_type"
        " (reference_id 'image_1', taxonomy_name 'clothing_type')",
    ]
    attributed = [ANNOTATION_ERROR_PATTERN.search(error).group("reference_id", "taxonomy_name") for error in answer["errors"]]
    assert attributed == [("image_9", "clothing_type"), ("image_1", "season"), ("image_1", "clothing_type")]
    assert fake_nucleus.labels(clothing.id) == {("image_1", "clothing_type"): "shirt"}


def test_it_rejects_non_object_metadata(fake_nucleus, clothing):
    payload = shirt().to_payload() | {"metadata": ["not", "an", "object"]}

    answer = clothing._client.make_request({"update": False, "annotations": [payload]}, f"dataset/{clothing.id}/annotate")

    assert answer["annotations_processed"] == 0
    assert answer["errors"][0].startswith("Input validation failed: metadata must be an object")


def test_it_stores_scene_category_annotations_against_the_scene(fake_nucleus, client):
    dataset_id = fake_nucleus.create_dataset(name="Videos", is_scene=True)
    fake_nucleus.add_scenes(dataset_id, [{"reference_id": "scene_1", "video_url": "https://example.com/1.mp4"}])
    dataset = client.get_dataset(dataset_id)
    dataset.add_taxonomy("weather", "category", ["sunny", "rainy"])

    answer = dataset.annotate([SceneCategoryAnnotation(label="sunny", reference_id="scene_1", taxonomy_name="weather")])

    assert answer["annotations_processed"] == 1
    assert fake_nucleus.labels(dataset_id) == {("scene_1", "weather"): "sunny"}


def test_asynchronous_annotate_uploads_ndjson_and_completes_a_job(fake_nucleus, clothing):
    job = clothing.annotate([shirt(), shirt(reference_id="image_9")], asynchronous=True)

    assert job.status()["message"]["annotation_upload"] == {
        "epoch": 1, "total": 2, "errored": 1, "datasetId": clothing.id, "processed": 1, "ignored": 0,
    }
    assert job.status()["status"] == "Errored_Partial"
    assert ANNOTATION_ERROR_PATTERN.search(job.errors()[0]).group("reference_id") == "image_9"
    assert fake_nucleus.labels(clothing.id) == {("image_1", "clothing_type"): "shirt"}
    upload = fake_nucleus.requests_to("signed_upload")[0]
    assert (upload.api_key, json.loads(upload.body.splitlines()[0])["label"]) == (None, "shirt")


# -- items, scenes, reads -------------------------------------------------------------------------


def test_append_of_remote_items_goes_through_the_signed_url_and_a_job(fake_nucleus, client):
    dataset = client.get_dataset(fake_nucleus.create_dataset(name="Clothing"))

    job = dataset.append([DatasetItem(image_location="https://example.com/1.jpg", reference_id="image_1", metadata={"k": 1})])

    assert job.job_last_known_status == "Completed"
    assert client.get_job(job.job_id).job_type == "appendDatasetItems"
    assert [request.route for request in fake_nucleus.requests] == ["use_privacy_mode", "signedUrl", "signed_upload", "append", "job_info"]
    assert dataset.refloc("image_1")["item"].metadata == {"k": 1}


def test_append_keeps_a_known_item_unless_update(client, clothing):
    renamed = DatasetItem(image_location="https://example.com/new.jpg", reference_id="image_1")

    clothing.append([renamed])
    kept = clothing.refloc("image_1")["item"].image_location
    clothing.append([renamed], update=True)

    assert (kept, clothing.refloc("image_1")["item"].image_location) == ("https://example.com/1.jpg", "https://example.com/new.jpg")


def test_append_of_a_video_scene_uses_the_route_without_the_dataset_prefix(fake_nucleus, client, monkeypatch):
    monkeypatch.setattr(nucleus.async_job, "JOB_POLLING_INTERVAL", 0)  # sleep_until_complete sleeps 5 s after each poll
    dataset = client.create_dataset("Videos", is_scene=True)

    job = dataset.append([VideoScene(reference_id="scene_1", video_location="https://example.com/1.mp4", metadata={"k": 1})])
    job.sleep_until_complete(verbose_std_out=False)

    assert job.job_last_known_status == "Completed"
    assert fake_nucleus.requests_to("upload_video_scenes")[0].path == f"{dataset.id}/upload_video_scenes"
    scene = next(dataset.scene_and_annotation_generator())["scene"]
    assert (scene["reference_id"], scene["fileLocation"], scene["metadata"]) == ("scene_1", "https://example.com/1.mp4", {"k": 1})


def test_refloc_returns_the_item_with_its_category_annotations(client, clothing):
    clothing.annotate([shirt()])

    row = clothing.refloc("image_1")

    assert row["item"].image_location == "https://example.com/1.jpg"
    assert [(annotation.label, annotation.taxonomy_name) for annotation in row["annotations"]["category"]] == [("shirt", "clothing_type")]


def test_export_pages_through_every_item_with_its_annotations(fake_nucleus, clothing):
    clothing.annotate([shirt()])

    rows = list(clothing.items_and_annotation_generator(page_size=1))

    assert [(row["item"].reference_id, row["item"].metadata) for row in rows] == [("image_1", {"color": "white"}), ("image_2", {})]
    assert [annotation.label for annotation in rows[0]["annotations"]["category"]] == ["shirt"]
    assert len(fake_nucleus.requests_to("exportForTrainingPage")) == 2


def test_items_and_items_generator_list_the_items(clothing):
    assert [item.reference_id for item in clothing.items] == ["image_1", "image_2"]
    assert [item.image_location for item in clothing.items_generator(page_size=1)] == ["https://example.com/1.jpg", "https://example.com/2.jpg"]


# -- faults -----------------------------------------------------------------------------------------


def test_a_429_surfaces_as_nucleus_api_error_and_retry_after_is_in_the_recording(fake_nucleus, clothing):
    fake_nucleus.fail_next(status=429, route="annotate", retry_after=7)

    with pytest.raises(NucleusAPIError) as raised:
        clothing.annotate([shirt()])

    assert raised.value.status_code == 429
    assert fake_nucleus.labels(clothing.id) == {}
    assert fake_nucleus.requests_to("annotate")[0].route == "annotate"


def test_retry_after_reaches_a_client_through_the_connections_bad_response_hook(fake_nucleus, clothing):
    """NucleusAPIError keeps only the status and the text, and return_raw_response=True still raises first.

    Connection.handle_bad_response(endpoint, requests_command, requests_response) is the one place that
    sees the raw response, so a client reads Retry-After there and puts it on the error it raises.
    """
    connection = clothing._client.connection
    raise_bad_response = connection.handle_bad_response

    def raise_with_retry_after(endpoint, requests_command, requests_response=None, aiohttp_response=None):
        try:
            raise_bad_response(endpoint, requests_command, requests_response, aiohttp_response)
        except NucleusAPIError as error:
            error.retry_after = requests_response.headers.get("Retry-After")
            raise

    connection.handle_bad_response = raise_with_retry_after
    fake_nucleus.fail_next(status=429, retry_after=7)

    with pytest.raises(NucleusAPIError) as raised:
        clothing.info()

    assert (raised.value.status_code, raised.value.retry_after) == (429, "7")


def test_a_500_raises_at_once(fake_nucleus, clothing, no_retry_sleep):
    fake_nucleus.fail_next(status=500, body="<html>Internal Server Error</html>")

    with pytest.raises(NucleusAPIError) as raised:
        clothing.info()

    assert (raised.value.status_code, no_retry_sleep) == (500, [])
    assert raised.value.message.endswith("The detailed error is:\n<html>Internal Server Error</html>")


def test_a_503_is_retried_by_the_sdk(fake_nucleus, clothing, no_retry_sleep):
    fake_nucleus.fail_next(status=503, times=2, route="annotate")

    answer = clothing.annotate([shirt()])

    assert answer["annotations_processed"] == 1
    assert len(fake_nucleus.requests_to("annotate")) == 3
    assert len(no_retry_sleep) == 2


def test_a_failure_window_fails_every_matching_request_until_it_ends(fake_nucleus, clothing, no_retry_sleep):
    fake_nucleus.fail_for(60, status=503, route="info")

    with pytest.raises(NucleusAPIError) as raised:
        clothing.info()
    fake_nucleus.reset_faults()

    assert (raised.value.status_code, len(fake_nucleus.requests_to("info"))) == (503, 4)
    assert clothing.info().name == "Clothing"


def test_a_dropped_connection_is_a_connection_error(fake_nucleus, clothing):
    fake_nucleus.drop_next(route="annotate")

    with pytest.raises(requests.exceptions.ConnectionError):
        clothing.annotate([shirt()])

    assert fake_nucleus.labels(clothing.id) == {}


def test_a_slow_answer_times_out_but_the_write_still_lands(fake_nucleus, clothing, monkeypatch):
    """The SDK reads its timeout from nucleus.connection at each call, so a test can lower it there."""
    monkeypatch.setattr(nucleus.connection, "DEFAULT_NETWORK_TIMEOUT_SEC", 0.1)
    fake_nucleus.slow_next(0.3, route="annotate")

    with pytest.raises(requests.exceptions.Timeout):
        clothing.annotate([shirt()])

    assert wait_for(lambda: fake_nucleus.labels(clothing.id)) == {("image_1", "clothing_type"): "shirt"}


def test_latency_is_added_to_every_request(fake_nucleus, clothing):
    fake_nucleus.latency = 0.05

    elapsed = requests.get(f"{fake_nucleus.endpoint}/dataset/{clothing.id}/info", auth=(fake_nucleus.api_key, ""), timeout=5).elapsed

    assert elapsed.total_seconds() >= 0.05


# -- standalone process -----------------------------------------------------------------------------


@pytest.fixture
def standalone_fake():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_nucleus", "--port", "0", "--api-key", "K"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    endpoint = process.stdout.readline().strip()
    yield endpoint
    process.terminate()
    process.wait(timeout=5)


def test_a_standalone_process_is_seeded_read_and_faulted_over_the_control_api(standalone_fake):
    remote = FakeNucleusRemote(standalone_fake)
    client = NucleusClient(api_key=remote.api_key, endpoint=remote.endpoint)
    client.tqdm_bar = functools.partial(tqdm.tqdm, disable=True)
    dataset_id = remote.create_dataset(name="Clothing")
    remote.add_items(dataset_id, [{"reference_id": "image_1", "image_url": "https://example.com/1.jpg"}])
    dataset = client.get_dataset(dataset_id)
    dataset.add_taxonomy("clothing_type", "category", ["shirt"])
    remote.fail_next(status=429, route="annotate", retry_after=3)

    with pytest.raises(NucleusAPIError):
        dataset.annotate([shirt()])
    dataset.annotate([shirt()])

    assert standalone_fake.endswith("/v1/nucleus")
    assert remote.taxonomies(dataset_id) == {"clothing_type": ["shirt"]}
    assert remote.labels(dataset_id) == {("image_1", "clothing_type"): "shirt"}
    assert [request.api_key for request in remote.requests_to("annotate")] == ["K", "K"]


def test_the_control_api_reports_an_unknown_dataset_as_the_in_process_fake_does(standalone_fake):
    with pytest.raises(InvalidRequest) as raised:
        FakeNucleusRemote(standalone_fake).taxonomies("ds_missing")

    assert (raised.value.status, raised.value.message) == (404, "Dataset ds_missing does not exist")
