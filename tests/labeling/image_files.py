"""Image files for the verification tests and bench/image_upload.py: a flat PNG of any size, built
row by row (gigapixels in a few hundred KB, without holding them), and JPEGs with an EXIF orientation."""

import io
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image


def flat_png(width: int, height: int) -> bytes:
    """An all-white RGB PNG: what a decompression bomb under the pixel cap looks like (9,990 x 9,990
    is ~310 KB and needs ~415 MB and about a second of CPU to decode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * (3 * width)  # filter type 0, then the pixels
    rows_per_block = max(1, (4 << 20) // len(row))
    compressor, parts = zlib.compressobj(9), []
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def png_file(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="image/png")


def jpeg_with_orientation(name: str, size: tuple[int, int], orientation: int) -> SimpleUploadedFile:
    """A JPEG stored `size` wide and high whose EXIF says how to turn it for display."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, format="JPEG", exif=exif.tobytes())
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")
