"""Pages of the site as a whole: the styled 403 with a way back, and the favicon."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url_name", ["labeling:dataset-sync", "audit:dataset-audit"])
def test_a_labeler_who_opens_an_admins_page_gets_the_sites_403_page_with_a_way_back(client, labeler, dataset, url_name):
    client.force_login(labeler)
    response = client.get(reverse(url_name, args=[dataset.id]))

    assert response.status_code == 403
    assert "403.html" in [template.name for template in response.templates]
    page = response.content.decode()
    assert "Only the dataset&#x27;s admins may open this page." in page
    assert f'href="{reverse("labeling:dataset-list")}"' in page and "Back to your datasets" in page
    assert 'href="/static/site.css"' in page  # the site's own page (base.html), not Django's bare one
    assert labeler.username in page  # signed in: the header shows who and lets them sign out


def test_every_page_names_the_favicon_and_it_is_served(client, labeler):
    client.force_login(labeler)
    page = client.get(reverse("labeling:dataset-list")).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page

    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])


def test_favicon_ico_redirects_to_the_icon_instead_of_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"
