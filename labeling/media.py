"""Uploaded images, served only to members of their dataset.

Uploads are stored as `items/<dataset_id>/<32 hex>.<ext>` (names the server picks), so the path
says which dataset an image belongs to; anything else is a 404. The answer is always an image type
chosen from the stored extension, with `nosniff`, so a browser never reads it as anything else.

Images in a bucket (MEDIA_STORAGE=s3, config.s3.MembersOnlyS3Storage) pass the same check; the
answer is then a redirect to a presigned URL (with the same forced type), which expires, instead of
the bytes: the web process does not carry the download.
"""

import re

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET

from labeling.selectors import dataset_get_for_user

UPLOAD_NAME = re.compile(r"^items/(?P<dataset_id>[0-9]+)/[0-9a-f]{32}\.(?P<extension>jpg|png|webp)$")
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@require_GET
@login_required
def uploaded_image(request: HttpRequest, name: str) -> HttpResponse:
    match = UPLOAD_NAME.match(name)
    if match is None:
        raise Http404("No such image.")
    dataset_get_for_user(user=request.user, dataset_id=int(match["dataset_id"]))
    content_type = CONTENT_TYPES[match["extension"]]
    presigned_url = getattr(default_storage, "presigned_url", None)
    if presigned_url is not None:
        # No existence check: it would cost a request to the bucket, which answers 404 itself.
        response = HttpResponseRedirect(presigned_url(name, content_type=content_type))
        # The browser may reuse the redirect while the signature is good, with a margin for the
        # time the download takes.
        max_age = max(default_storage.querystring_expire - 60, 0)
    else:
        if not default_storage.exists(name):
            raise Http404("No such image.")
        response = FileResponse(default_storage.open(name), content_type=content_type)
        max_age = 86400
    response["X-Content-Type-Options"] = "nosniff"
    # Private: an image is for the dataset's members, not for shared caches.
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response
