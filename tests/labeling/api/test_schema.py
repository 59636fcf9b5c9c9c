"""/api/schema/ (OpenAPI) and /api/docs/ (Swagger UI, its assets served by the app, not a CDN)."""

import re

import pytest
from django.urls import reverse

from labeling.api.urls import urlpatterns

pytestmark = pytest.mark.django_db


def test_the_schema_is_an_openapi_document_describing_every_endpoint(admin_client):
    response = admin_client.get(reverse("api-schema") + "?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "Labeling API"
    documented = set(schema["paths"])
    routes = {"/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern)) for pattern in urlpatterns}
    assert routes <= documented


def test_the_schema_documents_token_authentication(admin_client):
    schema = admin_client.get(reverse("api-schema") + "?format=json").json()
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey", "in": "header", "name": "Authorization", "description": "Token-based authentication with required prefix \"Token\"",
    }


def test_the_docs_page_renders_with_assets_from_the_app_only(admin_client):
    response = admin_client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    # The sidecar's Swagger UI, our style sheet in place of the inline <style>, and the start-up
    # script the split view serves at ?script (no inline script under the CSP).
    assert assets and all(asset.startswith(("/static/drf_spectacular_sidecar/", "/static/api/", reverse("api-docs") + "?script")) for asset in assets)
    assert "<script>" not in html and "<style>" not in html
    assert not re.search(r"https?://", html)
