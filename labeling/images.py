"""Opening untrusted images with Pillow, in two steps.

In the request, only what is cheap: Pillow recognises one of the allowed formats from the file's
header (nothing is decoded), and the byte and pixel caps hold, so a small file that decompresses to
gigapixels is refused before anything decodes it. The full decode runs later in a child process
under hard CPU-time and memory limits (labeling/image_verify.py, started by
`labeling.services.images`), never in a web worker. The caller stores the file under a name the
server picks, with the extension of the detected format.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

from labeling.image_verify import displayed_size

logger = logging.getLogger(__name__)
ALLOWED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
EXIF_ORIENTATION = 0x0112
MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: the size as displayed (EXIF orientation applied) and the format."""

    width: int
    height: int
    format: str

    @property
    def extension(self) -> str:
        return ALLOWED_FORMATS[self.format]

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_image(file) -> ImageInfo:
    """Check a file's header and caps and return its size and format, or raise ValidationError.
    Decodes nothing: the pixels are checked by the verification child."""
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
                _check_format_and_pixels(image)
                width, height = displayed_size(image.width, image.height, _orientation(image))
                info = ImageInfo(width=width, height=height, format=image.format)
    except ValidationError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise ValidationError(f"The file is not a readable JPEG, PNG or WebP image ({error}).", code="invalid_image") from None
    finally:
        file.seek(0)
    return info


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation the header carries (1 when none). Read from the raw EXIF block: a PNG's
    `getexif()` would decode the whole image to look for an eXIf chunk after the pixels."""
    raw = image.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return 1
    orientation = exif.get(EXIF_ORIENTATION, 1)
    return orientation if isinstance(orientation, int) else 1


def _check_format_and_pixels(image: Image.Image) -> None:
    if image.format not in ALLOWED_FORMATS:
        raise ValidationError(
            f"Images must be JPEG, PNG or WebP; this one is {image.format or 'of an unknown format'}.",
            code="invalid_format",
        )
    pixels = image.width * image.height
    if pixels > settings.MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"The image has {pixels} pixels ({image.width}x{image.height}); the limit is {settings.MAX_IMAGE_PIXELS}.",
            code="too_many_pixels",
        )


@dataclass(frozen=True)
class Verdict:
    """What the verification child found: the displayed size, or why the image cannot be used."""

    width: int | None = None
    height: int | None = None
    error: str = ""


def image_verify_in_child(stream) -> Verdict:
    """Decode an image (a real file, read from its start) in a child process under the
    IMAGE_VERIFY_* limits. The child gets the file as its stdin and an environment with PATH only:
    no settings, no secrets."""
    cpu, memory, timeout = settings.IMAGE_VERIFY_CPU_SECONDS, settings.IMAGE_VERIFY_MEMORY_MB, settings.IMAGE_VERIFY_TIMEOUT_SECONDS
    command = [
        sys.executable, "-m", "labeling.image_verify", "--max-pixels", str(settings.MAX_IMAGE_PIXELS),
        "--cpu-seconds", str(cpu), "--memory-bytes", str(memory * MEGABYTE),
    ]
    try:
        # run() kills the child (SIGKILL) when the timeout passes.
        done = subprocess.run(
            command, stdin=stream, capture_output=True, timeout=timeout, cwd=settings.BASE_DIR,
            env={"PATH": os.environ.get("PATH", "")},
        )
    except subprocess.TimeoutExpired:
        return Verdict(error=f"Checking the image did not finish within {timeout} s and was stopped.")
    if done.returncode == -signal.SIGXCPU or done.returncode == -signal.SIGKILL:
        return Verdict(error=f"Decoding the image took more than the {cpu} s of CPU time allowed (IMAGE_VERIFY_CPU_SECONDS).")
    try:
        result = json.loads(done.stdout.decode().strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (ValueError, IndexError, UnicodeDecodeError):
        result = {}
    if result.get("memory"):
        return Verdict(error=f"Decoding the image needs more than the {memory} MB of memory allowed (IMAGE_VERIFY_MEMORY_MB).")
    if "error" in result:
        return Verdict(error=str(result["error"]))
    if isinstance(result.get("width"), int) and isinstance(result.get("height"), int):
        return Verdict(width=result["width"], height=result["height"])
    logger.error("The image verification child failed (exit %s): %s", done.returncode, done.stderr.decode(errors="replace")[-2000:])
    return Verdict(error=f"Checking the image failed (the checking process ended with code {done.returncode}).")
