"""Opening untrusted images with Pillow.

An upload is accepted only if Pillow recognises it as one of the allowed formats, it is within the
byte and pixel caps (so a small file that decompresses to gigapixels is refused before it is
decoded), and it decodes completely. The caller stores it under a name the server picks, with the
extension of the detected format.
"""

import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str

    @property
    def extension(self) -> str:
        return ALLOWED_FORMATS[self.format]


def read_image(file) -> ImageInfo:
    """Check an uploaded file and return its size and format, or raise ValidationError."""
    size = getattr(file, "size", None)
    if size is not None and size > settings.MAX_IMAGE_UPLOAD_BYTES:
        raise ValidationError(
            f"The image is {size} bytes; the limit is {settings.MAX_IMAGE_UPLOAD_BYTES}.", code="too_large"
        )
    file.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check only warns below twice its limit; ours is a hard cap below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                info = ImageInfo(width=image.width, height=image.height, format=image.format or "")
                _check_format_and_pixels(info)
                image.verify()
            file.seek(0)
            with Image.open(file) as image:
                image.load()
    except ValidationError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise ValidationError(f"The file is not a readable JPEG, PNG or WebP image ({error}).", code="invalid_image") from None
    finally:
        file.seek(0)
    return info


def _check_format_and_pixels(info: ImageInfo) -> None:
    if info.format not in ALLOWED_FORMATS:
        raise ValidationError(
            f"Images must be JPEG, PNG or WebP; this one is {info.format or 'of an unknown format'}.",
            code="invalid_format",
        )
    pixels = info.width * info.height
    if pixels > settings.MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"The image has {pixels} pixels ({info.width}x{info.height}); the limit is {settings.MAX_IMAGE_PIXELS}.",
            code="too_many_pixels",
        )
