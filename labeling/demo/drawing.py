"""Pillow drawings of the demo specs: flat clothes on a plain background, and stick-figure frames."""

import io
import math

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from labeling.demo.specs import COLORS, ImageSpec, SceneSpec

CANVAS = (640, 480)
Point = tuple[int, int]
Polygon = list[Point]


def jpeg_upload(image: Image.Image, name: str) -> SimpleUploadedFile:
    """The image as a browser would upload it, so it goes through the same checks as a real upload."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return SimpleUploadedFile(f"{name}.jpg", buffer.getvalue(), content_type="image/jpeg")


# --- Clothes ---------------------------------------------------------------------------------------

BACKGROUND = (236, 232, 224)


def _mirrored(polygon: Polygon) -> Polygon:
    """The right-hand twin of a left-hand shape."""
    return [(CANVAS[0] - x, y) for x, y in polygon]


def _shifted(polygon: Polygon, dx: int) -> Polygon:
    return [(x + dx, y) for x, y in polygon]


TORSO = [(270, 95), (230, 105), (230, 400), (410, 400), (410, 105), (370, 95), (320, 125)]
SHORT_SLEEVE = [(230, 105), (160, 170), (190, 215), (232, 185)]
LONG_SLEEVE = [(230, 105), (175, 200), (150, 360), (190, 368), (232, 200)]
DRESS = [
    (285, 85), (255, 95), (262, 180), (280, 235), (190, 425),
    (450, 425), (360, 235), (378, 180), (385, 95), (355, 85), (320, 110),
]
DRESS_SLEEVE = [(255, 95), (215, 190), (195, 330), (228, 336), (262, 180)]
PANTS = [(245, 70), (395, 70), (425, 420), (340, 420), (320, 190), (300, 420), (215, 420)]
SHOE = [(90, 250), (160, 250), (180, 300), (280, 325), (290, 380), (90, 380)]
SECOND_SHOE_DX = 250
SHOE_LINES = [[(90, 362), (290, 362)], [(165, 285), (185, 275)], [(180, 300), (200, 290)]]  # sole, laces
# Lines drawn over a garment in its outline colour.
DETAILS: dict[str, list[Polygon]] = {
    "jacket": [[(320, 125), (320, 400)], [(250, 300), (295, 300)], [(345, 300), (390, 300)]],  # zip, pockets
    "pants": [[(245, 95), (395, 95)], [(320, 95), (320, 160)]],  # waistband, fly
    "shoes": SHOE_LINES + [_shifted(line, SECOND_SHOE_DX) for line in SHOE_LINES],
}
LOGO_CENTERS = {
    "shirt": [(365, 165)],
    "jacket": [(370, 170)],
    "dress": [(345, 150)],
    "pants": [(375, 125)],
    "shoes": [(150, 330), (150 + SECOND_SHOE_DX, 330)],
}


def draw_garment(spec: ImageSpec) -> Image.Image:
    color = COLORS[spec.color]
    outline = tuple(channel // 2 for channel in color)
    polygons = _garment_polygons(spec)
    image = Image.new("RGB", CANVAS, BACKGROUND)
    image.paste(_fabric(color, striped=spec.striped), mask=_mask(polygons))
    draw = ImageDraw.Draw(image)
    for polygon in polygons:
        draw.polygon(polygon, outline=outline, width=3)
    for line in DETAILS.get(spec.garment, []):
        draw.line(line, fill=outline, width=3)
    if spec.logo:
        for center in LOGO_CENTERS[spec.garment]:
            _draw_logo(draw, center)
    return _degraded(image, spec.quality)


def _garment_polygons(spec: ImageSpec) -> list[Polygon]:
    if spec.garment in ("shirt", "jacket"):
        sleeve = LONG_SLEEVE if spec.long_sleeves else SHORT_SLEEVE
        return [TORSO, sleeve, _mirrored(sleeve)]
    if spec.garment == "dress":
        return [DRESS, DRESS_SLEEVE, _mirrored(DRESS_SLEEVE)] if spec.long_sleeves else [DRESS]
    if spec.garment == "pants":
        return [PANTS]
    return [SHOE, _shifted(SHOE, SECOND_SHOE_DX)]


def _mask(polygons: list[Polygon]) -> Image.Image:
    mask = Image.new("L", CANVAS, 0)
    draw = ImageDraw.Draw(mask)
    for polygon in polygons:
        draw.polygon(polygon, fill=255)
    return mask


def _fabric(color: tuple[int, int, int], *, striped: bool) -> Image.Image:
    """The garment's colour over the whole canvas, striped if asked; the mask cuts the garment out of it."""
    image = Image.new("RGB", CANVAS, color)
    if striped:
        red, green, blue = color
        is_light = 0.299 * red + 0.587 * green + 0.114 * blue > 150
        stripe = (40, 40, 40) if is_light else (245, 245, 245)
        draw = ImageDraw.Draw(image)
        for top in range(0, CANVAS[1], 32):
            draw.rectangle((0, top, CANVAS[0], top + 11), fill=stripe)
    return image


def _draw_logo(draw: ImageDraw.ImageDraw, center: Point) -> None:
    """A white badge with a red triangle: it stands out from any fabric, stripes included."""
    x, y = center
    draw.ellipse((x - 18, y - 18, x + 18, y + 18), fill=(255, 255, 255), outline=(30, 30, 30), width=2)
    draw.polygon([(x, y - 11), (x + 11, y + 8), (x - 11, y + 8)], fill=(200, 30, 30))


def _degraded(image: Image.Image, quality: str) -> Image.Image:
    if quality == "blurry":
        return image.filter(ImageFilter.GaussianBlur(radius=5))
    if quality == "dark":
        return ImageEnhance.Brightness(image).enhance(0.3)
    return image


# --- Stick figures -----------------------------------------------------------------------------------

SKY = (200, 225, 245)
GRASS = (110, 170, 90)
FIGURE = (30, 30, 30)
GROUND_Y = 400
LEG_LENGTH = 110
BODY_LENGTH = 100
ARM_LENGTH = 80
HEAD_RADIUS = 24
# Even at rest the legs and arms stand a little apart, or they would hide behind each other and the body.
STANCE = math.radians(10)
ARMS_OUT = math.radians(20)


def draw_scene_frame(scene: SceneSpec, frame_index: int) -> Image.Image:
    image = Image.new("RGB", CANVAS, SKY)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, GROUND_Y, CANVAS[0], CANVAS[1]), fill=GRASS)
    # Seen from the side, a stick figure's legs open and close: wide open every other frame.
    stride = math.radians(scene.stride_degrees) * abs(math.sin(frame_index * math.pi / 2))
    x = scene.start_x + scene.step_x * frame_index
    _draw_stick_figure(draw, x=x, stride=stride, lean=math.radians(scene.lean_degrees))
    return image


def _draw_stick_figure(draw: ImageDraw.ImageDraw, *, x: int, stride: float, lean: float) -> None:
    hip = (x, GROUND_Y - LEG_LENGTH)
    # Angles are measured from straight down, so pi - lean points up and a little forward.
    shoulder = _limb_end(hip, BODY_LENGTH, math.pi - lean)
    head_x, head_y = _limb_end(hip, BODY_LENGTH + 4 + HEAD_RADIUS, math.pi - lean)
    head = (head_x - HEAD_RADIUS, head_y - HEAD_RADIUS, head_x + HEAD_RADIUS, head_y + HEAD_RADIUS)
    draw.ellipse(head, outline=FIGURE, width=5)
    draw.line((shoulder, hip), fill=FIGURE, width=6)
    for side in (1, -1):
        draw.line((hip, _limb_end(hip, LEG_LENGTH, side * (STANCE + stride))), fill=FIGURE, width=6)
        draw.line((shoulder, _limb_end(shoulder, ARM_LENGTH, side * (ARMS_OUT + stride))), fill=FIGURE, width=5)


def _limb_end(joint: Point, length: int, angle: float) -> Point:
    """Where a limb from `joint` ends when it points `angle` radians forward from straight down."""
    x, y = joint
    return (round(x + length * math.sin(angle)), round(y + length * math.cos(angle)))
