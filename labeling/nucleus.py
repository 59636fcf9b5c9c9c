"""Everything that speaks to Nucleus goes through this module; nothing else imports the SDK.

The SDK (`scale-nucleus`) is imported inside the functions: importing it costs ~0.4 s and configures
logging, which Django start-up should not pay for.
"""

from collections.abc import Iterable, Iterator

from labeling.models import CategoryAnnotation
from taxonomies.models import MULTI_LABEL_SEPARATOR

MULTI_LABEL_TRUE, MULTI_LABEL_FALSE = "True", "False"


def binary_taxonomy_name(taxonomy_name: str, label: str) -> str:
    """The Nucleus taxonomy that carries one class of a multi-label taxonomy (labels True/False)."""
    return f"{taxonomy_name}{MULTI_LABEL_SEPARATOR}{label}"


def annotation_payloads(annotations: Iterable[CategoryAnnotation]) -> Iterator[dict]:
    """The payloads the SDK sends for these annotations, exactly as its classes build them:
    `CategoryAnnotation` for items, `SceneCategoryAnnotation` for scenes; a multi-label annotation
    becomes one binary annotation per label of its taxonomy, "True" for the chosen ones.

    Each annotation needs item, scene, taxonomy, label, labels and taxonomy.labels loaded.
    """
    from nucleus import CategoryAnnotation as NucleusCategoryAnnotation
    from nucleus import SceneCategoryAnnotation

    for annotation in annotations:
        build = SceneCategoryAnnotation if annotation.scene_id else NucleusCategoryAnnotation
        reference_id = annotation.reference_id
        taxonomy = annotation.taxonomy
        if taxonomy.multi_label:
            chosen = {label.id for label in annotation.labels.all()}
            for label in taxonomy.labels.all():
                yield build(
                    label=MULTI_LABEL_TRUE if label.id in chosen else MULTI_LABEL_FALSE,
                    reference_id=reference_id,
                    taxonomy_name=binary_taxonomy_name(taxonomy.taxonomy_name, label.name),
                    metadata=annotation.metadata,
                ).to_payload()
        else:
            yield build(
                label=annotation.label.name,
                reference_id=reference_id,
                taxonomy_name=taxonomy.taxonomy_name,
                metadata=annotation.metadata,
            ).to_payload()
