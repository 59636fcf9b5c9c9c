"""The verification child: `python -m labeling.image_verify --max-pixels N --cpu-seconds S
--memory-bytes B < image` decodes one uploaded image completely and prints one JSON line,
`{"width": w, "height": h}` (as displayed: EXIF orientation applied) or `{"error": "..."}`.

It sets its own hard limits (resource.setrlimit) before it reads or decodes anything, so a
decompression bomb is killed here (SIGXCPU at the CPU-time limit, MemoryError at the address-space
limit) and never costs a web or Celery worker more than waiting. It imports Pillow and the standard
library only, not Django: it starts in a few tens of milliseconds and holds no settings or secrets.
"""

import argparse
import io
import json
import resource
import sys
import warnings

from PIL import Image, UnidentifiedImageError

ALLOWED = frozenset({"JPEG", "PNG", "WEBP"})
EXIF_ORIENTATION = 0x0112
# Orientations 5 to 8 turn the image a quarter: it is displayed with width and height swapped.
TRANSPOSED = frozenset({5, 6, 7, 8})


def displayed_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in TRANSPOSED else (width, height)


def limit_resources(*, cpu_seconds: int, memory_bytes: int) -> None:
    """Hard limits for the rest of this process's life. The CPU soft limit sends SIGXCPU (which
    kills: Python installs no handler for it); the hard limit one second later is SIGKILL."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def verify(data: bytes, *, max_pixels: int) -> dict:
    """Decode the image fully; its displayed size, or why it cannot be used."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ALLOWED:
                    return {"error": f"Images must be JPEG, PNG or WebP; this one is {image.format or 'of an unknown format'}."}
                if image.width * image.height > max_pixels:
                    return {"error": f"The image has {image.width * image.height} pixels; the limit is {max_pixels}."}
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                orientation = image.getexif().get(EXIF_ORIENTATION, 1)
                width, height = displayed_size(image.width, image.height, orientation)
    except MemoryError:
        return {"memory": True}
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as error:
        return {"error": f"The image could not be decoded ({error})."}
    return {"width": width, "height": height}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-pixels", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--memory-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    limit_resources(cpu_seconds=args.cpu_seconds, memory_bytes=args.memory_bytes)
    result = verify(sys.stdin.buffer.read(), max_pixels=args.max_pixels)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
