"""Text that cannot be stored the same way on every database is refused at the edge, on both.

Hypothesis draws strings mixing ordinary text with NUL, lone surrogates and C0/C1 controls into
every field that stores text. The rule the tests hold the API to, written here independently of
taxonomies.text: NUL and lone surrogates are refused everywhere, the other controls in names too,
"." and ".." as reference ids. Each request answers 400 exactly when the rule says so (never a 500),
a refused one stores nothing, and what is stored reads back identical, through the ORM and the API.
"""

import csv
import io
import itertools
import json
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labeling.models import CategoryAnnotation, Dataset, Item
from taxonomies.models import Taxonomy
from tests.factories import with_permission
from tests.labeling.api.support import errors_of, item_with_task, row_counts, token_client, url

pytestmark = pytest.mark.django_db

NEVER = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]
CONTROLS = ["\x01", "\t", "\n", "\r", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
ordinary = st.characters(blacklist_categories=("Cs",))
texts = st.text(alphabet=st.one_of(st.sampled_from(NEVER + CONTROLS), ordinary), max_size=6)
# For names that DRF trims (dataset and taxonomy names): no spaces that are not controls, so that
# what is stored is what was sent, and no character a taxonomy name may not hold for other reasons.
name_texts = st.text(
    alphabet=st.one_of(st.sampled_from(NEVER + CONTROLS), st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp"), blacklist_characters="/?#:")),
    max_size=6,
)
examples = settings(
    max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def never_storable(text: str) -> bool:
    return any(character == "\x00" or "\ud800" <= character <= "\udfff" for character in text)


def not_a_name(text: str) -> bool:
    return never_storable(text) or any(ord(character) < 0x20 or 0x7F <= ord(character) <= 0x9F for character in text)


def post_json(client, path: str, body):
    # json.dumps writes a lone surrogate as a "\ud800" escape: how one arrives from any JSON client.
    return client.post(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def fresh():
    """A new number for each example: the examples of one test share its database."""
    return itertools.count()


@pytest.mark.parametrize("endpoint", ["submit", "draft"])
@examples
@given(key=texts, value=texts)
@example(key="ok", value="\ud800")
@example(key="k\x00", value="ok")
@example(key="ok", value="\x85 is fine in metadata")
def test_answer_metadata_is_checked_at_any_depth(endpoint, key, value, labeler_client, admin_client, dataset, clothing_type, fresh):
    item_with_task(dataset, f"image_{next(fresh)}")
    held = labeler_client.post(url("next", dataset_id=dataset.id)).json()["reference_id"]
    metadata = {"top": value, "nested": {"list": [1, {key: value}], key: True}}
    body = {"reference_id": held, "annotations": [{"taxonomy_name": "clothing_type", "label": "shirt", "metadata": metadata}]}
    before = row_counts()

    response = post_json(labeler_client, url(endpoint, dataset_id=dataset.id), body)

    if never_storable(key) or never_storable(value):
        assert response.status_code == 400
        assert {error["index"] for error in errors_of(response)} == {0}
        assert all(error["field"].startswith("metadata.") for error in errors_of(response))
        assert row_counts() == before
    else:
        assert response.status_code == 200, response.content
        assert CategoryAnnotation.objects.get(item__reference_id=held).metadata == metadata
        read = admin_client.get(url("annotation-list", dataset_id=dataset.id) + f"?reference_id={held}")
        assert [row["metadata"] for row in read.json()["results"]] == [metadata]


reference_ids = st.one_of(st.sampled_from([".", ".."]), texts.map(lambda text: f"r{{n}}{text}"))


@examples
@given(reference_id=reference_ids, key=texts, value=texts, url_tail=st.sampled_from(["", "a", "a\x00", "\ud800"]))
@example(reference_id="r{n}\x85", key="k", value="v", url_tail="")
@example(reference_id="r{n}", key="k", value="\udfff", url_tail="")
@example(reference_id="r{n}", key="k", value="v", url_tail="a\x00")
def test_a_json_import_checks_names_urls_and_metadata(reference_id, key, value, url_tail, admin_client, dataset, fresh):
    reference_id = reference_id.replace("{n}", str(next(fresh)))
    row = {"reference_id": reference_id, "image_url": f"https://images.example.com/{url_tail}", "metadata": {key: [value]}}
    before = row_counts()

    response = post_json(admin_client, url("item-list", dataset_id=dataset.id), [row])

    refused = not_a_name(reference_id) or reference_id in {".", ".."} or any(map(never_storable, (key, value, url_tail)))
    if refused:
        assert response.status_code == 400
        assert {error.get("index") for error in errors_of(response)} == {0}
        assert row_counts() == before
    else:
        assert response.status_code == 201, response.content
        stored = Item.objects.get(dataset=dataset, reference_id=reference_id)
        assert (stored.image_url, stored.metadata) == (row["image_url"], row["metadata"])
        listed = admin_client.get(url("item-list", dataset_id=dataset.id)).json()["results"]
        assert [found["metadata"] for found in listed if found["reference_id"] == reference_id] == [row["metadata"]]


@examples
@given(reference_id=reference_ids, note=texts)
@example(reference_id="r{n}", note="bl\x00ue")
@example(reference_id="r{n}", note="\ud800")
@example(reference_id="r{n}\x9f", note="")
def test_a_csv_import_checks_every_cell(reference_id, note, admin_client, dataset, fresh):
    reference_id = reference_id.replace("{n}", str(next(fresh)))
    text = io.StringIO()
    csv.writer(text).writerows([["reference_id", "image_url", "note"], [reference_id, "https://images.example.com/a.jpg", note]])
    # A lone surrogate cannot be UTF-8: written as the bytes a careless encoder makes of it.
    upload = SimpleUploadedFile("rows.csv", text.getvalue().encode("utf-8", "surrogatepass"))
    before = row_counts()

    response = admin_client.post(url("item-list", dataset_id=dataset.id), {"file": upload}, format="multipart")

    if not_a_name(reference_id) or reference_id in {".", ".."} or never_storable(note):
        assert response.status_code == 400
        assert row_counts() == before
    else:
        assert response.status_code == 201, response.content
        assert Item.objects.get(dataset=dataset, reference_id=reference_id).metadata == ({"note": note} if note else {})


@examples
@given(taxonomy_name=name_texts, label=texts)
@example(taxonomy_name="\x85", label="ok")
@example(taxonomy_name="ok", label="a\x01b")
@example(taxonomy_name="\ud800", label="ok")
def test_taxonomy_and_label_names_refuse_controls(taxonomy_name, label, admin_client, dataset, fresh):
    taxonomy_name, label = f"t{next(fresh)}{taxonomy_name}", f"l{label}"
    before = row_counts()

    response = post_json(admin_client, url("taxonomy-list", dataset_id=dataset.id), {"taxonomy_name": taxonomy_name, "labels": [label]})

    # A label may not end in a space either (Label.clean): controls such as \x85 count as spaces there.
    if not_a_name(taxonomy_name) or not_a_name(label) or label != label.strip():
        assert response.status_code == 400
        assert row_counts() == before
    else:
        assert response.status_code == 201, response.content
        assert Taxonomy.objects.get(dataset=dataset, taxonomy_name=taxonomy_name).label_names() == [label]
        listed = admin_client.get(url("taxonomy-list", dataset_id=dataset.id)).json()
        assert [found["labels"] for found in listed if found["taxonomy_name"] == taxonomy_name] == [[label]]


@examples
@given(name=name_texts)
@example(name="\x1f")
@example(name="\x00")
def test_dataset_names_refuse_controls(name, admin, fresh):
    client = token_client(with_permission(admin, "labeling.add_dataset"))
    name = f"d{next(fresh)}{name}"
    before = row_counts()

    response = post_json(client, url("dataset-list"), {"name": name})

    if not_a_name(name):
        assert response.status_code == 400
        assert [error["field"] for error in errors_of(response)] == ["name"]
        assert row_counts() == before
    else:
        assert response.status_code == 201, response.content
        assert Dataset.objects.get(pk=response.json()["id"]).name == name


# What a URL can carry: its bytes are UTF-8, so a lone surrogate arrives as U+FFFD, a NUL as itself.
url_texts = st.text(alphabet=st.one_of(st.sampled_from(NEVER + CONTROLS), st.characters(blacklist_categories=("Cs",), blacklist_characters="/")), max_size=6)


def in_url(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@examples
@given(text=url_texts)
@example(text="\x00")
@example(text="\x85\x01")
def test_query_and_path_parameters_refuse_nul(text, admin_client, dataset, clothing_type):
    has_nul = "\x00" in text
    for path, otherwise in [
        (url("item-list", dataset_id=dataset.id) + f"?reference_id={in_url('r' + text)}", 200),
        (url("annotation-list", dataset_id=dataset.id) + f"?annotator={in_url('a' + text)}&{in_url(text)}=1", 200),
        (url("taxonomy-list", dataset_id=dataset.id) + f"clothing_type{in_url(text)}/", 404 if text else 200),
        # <path:label> is `.+`, which no newline matches: Django's own 404 then.
        (url("taxonomy-list", dataset_id=dataset.id) + f"clothing_type/labels/{in_url('shirt' + text)}/", 404 if "\n" in text else 405),
        (url("dataset-detail", dataset_id=dataset.id) + f"tasks/{in_url('r' + text)}/", 404),
    ]:
        response = admin_client.get(path)
        assert response.status_code == (400 if has_nul else otherwise), (path, response.content)
        if has_nul:
            assert "U+0000" in errors_of(response)[0]["message"]


class TestTheEdgeNamesTheRowAndField:
    def test_a_lone_surrogate_in_nested_metadata_of_row_3(self, admin_client, dataset):
        rows = [{"reference_id": f"r{n}", "image_url": "https://images.example.com/a.jpg"} for n in range(5)]
        rows[3]["metadata"] = {"camera": {"color": "\ud800"}}

        response = post_json(admin_client, url("item-list", dataset_id=dataset.id), rows)

        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 3, "field": "metadata.camera.color", "message": "This text contains U+D800, a lone surrogate (half of a UTF-16 pair), which is not a character."}
        ]
        assert not Item.objects.exists()

    def test_a_nul_in_a_metadata_key_is_named_without_the_nul(self, admin_client, dataset):
        rows = [{"reference_id": "r", "image_url": "https://images.example.com/a.jpg", "metadata": {"a\x00b": 1}}]

        response = post_json(admin_client, url("item-list", dataset_id=dataset.id), rows)

        assert errors_of(response) == [
            {"index": 0, "field": "metadata.a\\u0000b", "message": "This key contains a NUL character (U+0000), which cannot be stored."}
        ]

    def test_a_c1_control_in_a_frame_reference_id(self, admin_client, scene_dataset):
        scene = {"reference_id": "s", "frames": [{"reference_id": "f0", "image_url": "https://a.test/0.jpg"}, {"reference_id": "f\x851", "image_url": "https://a.test/1.jpg"}]}

        response = post_json(admin_client, url("scene-list", dataset_id=scene_dataset.id), [scene])

        assert (response.status_code, [(error["index"], error["field"]) for error in errors_of(response)]) == (400, [(0, "frames[1].reference_id")])
        assert "U+0085" in errors_of(response)[0]["message"]

    @pytest.mark.parametrize("reference_id", [".", ".."])
    def test_dot_segments_are_not_reference_ids(self, admin_client, dataset, reference_id):
        response = post_json(admin_client, url("item-list", dataset_id=dataset.id), [{"reference_id": reference_id, "image_url": "https://a.test/x.jpg"}])

        assert errors_of(response) == [
            {"index": 0, "field": "reference_id", "message": "reference_id cannot be '.' or '..': they cannot round-trip through URLs."}
        ]

    def test_a_nul_in_a_csv_header_is_said_once(self, admin_client, dataset):
        content = b"reference_id,image_url,no\x00te\n" + b"".join(b"r%d,https://a.test/x.jpg,x\n" % n for n in range(3))

        response = admin_client.post(url("item-list", dataset_id=dataset.id), {"file": SimpleUploadedFile("rows.csv", content)}, format="multipart")

        assert errors_of(response) == [
            {"field": "file", "message": "Column 3 of the header contains a NUL character (U+0000), which cannot be stored."}
        ]

    def test_a_control_character_at_the_end_of_a_name_is_refused_not_trimmed(self, admin_client, dataset):
        response = post_json(admin_client, url("taxonomy-list", dataset_id=dataset.id), {"taxonomy_name": "color\x85", "labels": ["red"]})

        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["taxonomy_name"])
        assert not Taxonomy.objects.exists()

    def test_headers_with_nul_are_refused_before_the_database_reads_them(self, dataset, admin):
        client = token_client(admin)
        client.credentials(HTTP_AUTHORIZATION="Token abc\x00def")

        response = client.get(url("dataset-detail", dataset_id=dataset.id))

        assert (response.status_code, errors_of(response)[0]["field"]) == (400, "Authorization")

    def test_a_nul_in_the_idempotency_key_is_refused(self, admin_client, dataset):
        response = admin_client.post(
            url("item-list", dataset_id=dataset.id), data="[]", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k\x00"
        )

        assert (response.status_code, errors_of(response)[0]["field"]) == (400, "Idempotency-Key")
