"""What the demo datasets hold: their taxonomies, and what each image and scene shows.

Each image's spec is also its right answer, so the labels fit the pictures and the finished demo
annotations are correct.
"""

import random
from dataclasses import dataclass

from taxonomies.models import Taxonomy
from taxonomies.services import LabelSpec

IMAGES_DATASET_NAME = "Demo images"
SCENES_DATASET_NAME = "Demo scenes"


@dataclass(frozen=True)
class TaxonomySpec:
    taxonomy_name: str
    labels: tuple[LabelSpec, ...]
    multi_label: bool = False
    required: bool = True
    applies_to: str = Taxonomy.AppliesTo.ITEMS


# Hotkeys are unique across a dataset's taxonomies, not only within each one: the labeling page shows
# all of them at once.
IMAGE_TAXONOMIES = (
    TaxonomySpec(
        "clothing_type",
        labels=(
            LabelSpec("shirt", "h"),
            LabelSpec("pants", "p"),
            LabelSpec("dress", "d"),
            LabelSpec("jacket", "j"),
            LabelSpec("shoes", "o"),
        ),
    ),
    TaxonomySpec(
        "attributes",
        labels=(LabelSpec("striped", "t"), LabelSpec("logo", "l"), LabelSpec("long_sleeves")),
        multi_label=True,
        required=False,
    ),
    TaxonomySpec(
        "image_quality",
        labels=(LabelSpec("good"), LabelSpec("blurry"), LabelSpec("dark")),
        required=False,
    ),
)
SCENE_TAXONOMIES = (
    TaxonomySpec(
        "action",
        labels=(LabelSpec("walking", "w"), LabelSpec("running", "r"), LabelSpec("standing", "t"), LabelSpec("waving", "v")),
        applies_to=Taxonomy.AppliesTo.SCENES,
    ),
)

IMAGE_COUNT = 36
FINISHED_IMAGE_COUNT = 6
# Any fixed seed: every run, on every machine, describes the same drawings.
IMAGE_SEED = 20240601
GARMENTS = ("shirt", "pants", "dress", "jacket", "shoes")
COLORS = {
    "blue": (52, 101, 164),
    "red": (204, 40, 40),
    "green": (78, 154, 6),
    "yellow": (237, 212, 0),
    "black": (46, 52, 54),
    "white": (248, 248, 246),
    "pink": (240, 130, 180),
    "orange": (245, 121, 0),
    "purple": (117, 80, 123),
    "grey": (136, 138, 133),
}


@dataclass(frozen=True)
class ImageSpec:
    reference_id: str
    garment: str
    color: str
    striped: bool
    logo: bool
    long_sleeves: bool
    quality: str

    @property
    def metadata(self) -> dict:
        return {"source": "demo", "drawn": self.garment, "color": self.color}

    def answers(self) -> dict[str, list[str]]:
        """The right label names for this image, by taxonomy_name."""
        attributes = {"striped": self.striped, "logo": self.logo, "long_sleeves": self.long_sleeves}
        return {
            "clothing_type": [self.garment],
            "attributes": [name for name, shown in attributes.items() if shown],
            "image_quality": [self.quality],
        }


def image_specs() -> list[ImageSpec]:
    rng = random.Random(IMAGE_SEED)
    specs = []
    for index in range(IMAGE_COUNT):
        # Garments take turns, so the first few (finished) items already show every clothing_type.
        garment = GARMENTS[index % len(GARMENTS)]
        specs.append(
            ImageSpec(
                reference_id=f"demo_image_{index + 1:03}",
                garment=garment,
                color=rng.choice(list(COLORS)),
                striped=rng.random() < 0.35,
                logo=rng.random() < 0.3,
                long_sleeves=garment == "jacket" or (garment in ("shirt", "dress") and rng.random() < 0.5),
                quality=rng.choices(("good", "blurry", "dark"), weights=(6, 1, 1))[0],
            )
        )
    return specs


FRAMES_PER_SCENE = 10
SCENE_FRAME_RATE = 5.0
FINISHED_SCENE_COUNT = 1


@dataclass(frozen=True)
class SceneSpec:
    """A stick figure moving `step_x` pixels to the right per frame."""

    reference_id: str
    action: str
    start_x: int
    step_x: int = 0
    stride_degrees: int = 0
    lean_degrees: int = 0

    @property
    def metadata(self) -> dict:
        return {"source": "demo", "drawn": self.action}

    def answers(self) -> dict[str, list[str]]:
        return {"action": [self.action]}

    def frame_reference_id(self, frame_index: int) -> str:
        return f"{self.reference_id}_frame_{frame_index:02}"


SCENE_SPECS = (
    SceneSpec("demo_scene_001", "walking", start_x=140, step_x=40, stride_degrees=20),
    SceneSpec("demo_scene_002", "running", start_x=60, step_x=58, stride_degrees=40, lean_degrees=15),
    SceneSpec("demo_scene_003", "standing", start_x=320),
)
