"""The media storage of MEDIA_STORAGE=s3 (STORAGES["default"] in config/settings.py). A module of its
own so that boto3 (~20 MB per process) is imported only by deployments that use a bucket."""

from django.conf import settings
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage


class MembersOnlyS3Storage(S3Storage):
    """A private bucket whose images are shown to the members of their dataset only.

    `url()` is this site's /media/ view (labeling.media.uploaded_image), as with files on disk: it
    checks membership and then redirects to `presigned_url()`, which expires. So the URL in pages and
    API answers never grants access by itself, and never goes stale while a page stays open.
    """

    def url(self, name, parameters=None, expire=None, http_method=None):
        return f"{settings.MEDIA_URL}{filepath_to_uri(name)}"

    def presigned_url(self, name: str, *, content_type: str) -> str:
        # The bucket answers with this type whatever the object was stored with.
        return super().url(name, parameters={"ResponseContentType": content_type})
