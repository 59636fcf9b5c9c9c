"""Uploaded images, served only to members of their dataset.

Uploads are stored as `items/<dataset_id>/<32 hex>.<ext>` (names the server picks), so the path
says which dataset an image belongs to; anything else is a 404. The answer is always an image type
chosen from the stored extension, with `nosniff`, so a browser never reads it as anything else.
"""

import re

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from labeling.selectors import dataset_get_for_user

UPLOAD_NAME = re.compile(r"^items/(?P<dataset_id>[0-9]+)/[0-9a-f]{32}\.(?P<extension>jpg|png|webp)$")
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@require_GET
@login_required
def uploaded_image(request: HttpRequest, name: str) -> FileResponse:
    match = UPLOAD_NAME.match(name)
    if match is None:
        raise Http404("No such image.")
    dataset_get_for_user(user=request.user, dataset_id=int(match["dataset_id"]))
    if not default_storage.exists(name):
        raise Http404("No such image.")
    response = FileResponse(default_storage.open(name), content_type=CONTENT_TYPES[match["extension"]])
    response["X-Content-Type-Options"] = "nosniff"
    # Private: an image is for the dataset's members, not for shared caches.
    response["Cache-Control"] = "private, max-age=86400"
    return response
