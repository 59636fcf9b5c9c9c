"""Uploaded images are served to members of their dataset only, as images, with nosniff."""

import pytest

from labeling.services.items import item_create
from tests.factories import DatasetFactory, png_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(dataset):
    return item_create(dataset=dataset, reference_id="image_1", image_file=png_upload()).image


def test_a_member_gets_the_image_with_nosniff(client, labeler, image):
    client.force_login(labeler)
    response = client.get(image.url)
    assert response.status_code == 200
    assert (response["Content-Type"], response["X-Content-Type-Options"]) == ("image/png", "nosniff")
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_a_member_of_another_dataset_gets_a_404(client, outsider, image):
    DatasetFactory().memberships.create(user=outsider, role="admin")
    client.force_login(outsider)
    assert client.get(image.url).status_code == 404


def test_a_signed_out_visitor_is_sent_to_sign_in(client, image):
    response = client.get(image.url)
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize("name", ["items/1/../../config/settings.py", "items/1/x.svg", "other/1/" + "a" * 32 + ".png"])
def test_a_path_that_is_not_an_upload_is_a_404(client, labeler, dataset, name):
    client.force_login(labeler)
    assert client.get(f"/media/{name}").status_code == 404
