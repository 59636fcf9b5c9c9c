"""Each invariant is refused twice: by the database (by the constraint named, even when Python is
bypassed) and by validation (`full_clean`, with a message a person can act on)."""

import pytest
from django.core.exceptions import ValidationError

from labeling.models import AnnotationLabel, CategoryAnnotation, Dataset, Item
from tests.constraints import refused_by_database
from tests.factories import (
    CategoryAnnotationFactory,
    DatasetFactory,
    ItemFactory,
    LabelFactory,
    SceneFactory,
    TaxonomyFactory,
)

pytestmark = pytest.mark.django_db


# Composite keys are checked at commit, like Django's foreign keys, so these tests really commit.
committing = pytest.mark.django_db(transaction=True)


def validation_messages(instance) -> list[str]:
    with pytest.raises(ValidationError) as error:
        instance.full_clean()
    return error.value.messages


class TestItemReferenceIds:
    def test_the_database_refuses_a_duplicate_reference_id_in_a_dataset(self):
        item = ItemFactory(reference_id="image_1")
        refused_by_database(
            "labeling_item_reference_id_unique_in_dataset",
            lambda: Item.objects.create(dataset=item.dataset, reference_id="image_1", image_url="https://x.test/a.jpg"),
        )

    def test_validation_explains_a_duplicate_reference_id(self):
        item = ItemFactory(reference_id="image_1")
        twin = Item(dataset=item.dataset, reference_id="image_1", image_url="https://x.test/a.jpg")
        assert "This dataset already has an item with this reference_id." in validation_messages(twin)

    def test_the_same_reference_id_is_fine_in_another_dataset(self):
        ItemFactory(reference_id="image_1")
        ItemFactory(reference_id="image_1", dataset=DatasetFactory()).full_clean()

    def test_the_database_refuses_an_item_with_both_an_upload_and_a_url(self):
        dataset = DatasetFactory()
        refused_by_database(
            "labeling_item_one_image_source",
            lambda: Item.objects.create(dataset=dataset, reference_id="a", image="items/x.png", image_url="https://x.test/a.jpg")
        )

    def test_the_database_refuses_an_item_without_any_image(self):
        dataset = DatasetFactory()
        refused_by_database("labeling_item_one_image_source", lambda: Item.objects.create(dataset=dataset, reference_id="a"))

    def test_the_database_refuses_a_blank_reference_id(self):
        dataset = DatasetFactory()
        refused_by_database(
            "labeling_item_reference_id_not_blank",
            lambda: Item.objects.create(dataset=dataset, reference_id="  ", image_url="https://x.test/a.jpg"),
        )

    def test_validation_refuses_a_non_http_image_url(self):
        item = ItemFactory.build(dataset=DatasetFactory(), image_url="file:///etc/passwd")
        assert "Only http and https URLs are accepted." in validation_messages(item)


class TestScenes:
    def test_the_database_refuses_a_duplicate_scene_reference_id(self):
        scene = SceneFactory(reference_id="drive_1")
        refused_by_database(
            "labeling_scene_reference_id_unique_in_dataset",
            lambda: SceneFactory(dataset=scene.dataset, reference_id="drive_1"),
        )

    def test_the_database_refuses_a_frame_past_the_3000_frame_limit(self):
        scene = SceneFactory()
        refused_by_database(
            "labeling_item_frame_index_within_limit",
            lambda: ItemFactory(dataset=scene.dataset, scene=scene, frame_index=3000),
        )

    @committing
    def test_the_database_refuses_a_frame_of_a_scene_in_another_dataset(self):
        scene = SceneFactory()
        other = DatasetFactory(kind=Dataset.Kind.SCENES)
        refused_by_database("labeling_item_scene_in_dataset", lambda: ItemFactory(dataset=other, scene=scene, frame_index=0))

    def test_validation_explains_a_frame_of_a_scene_in_another_dataset(self):
        scene = SceneFactory()
        frame = ItemFactory.build(dataset=DatasetFactory(kind=Dataset.Kind.SCENES), scene=scene, frame_index=0)
        assert "A frame must be in the same dataset as its scene." in validation_messages(frame)

    def test_the_database_refuses_two_frames_at_one_index(self):
        scene = SceneFactory()
        ItemFactory(dataset=scene.dataset, scene=scene, frame_index=0)
        refused_by_database("labeling_item_one_frame_per_index", lambda: ItemFactory(dataset=scene.dataset, scene=scene, frame_index=0))

    def test_the_database_refuses_a_non_positive_frame_rate(self):
        refused_by_database("labeling_scene_frame_rate_positive", lambda: SceneFactory(frame_rate=0))


class TestAnnotationTarget:
    def test_the_database_refuses_an_annotation_on_both_an_item_and_a_scene(self):
        annotation = CategoryAnnotationFactory()
        scene = SceneFactory(dataset=annotation.dataset)
        refused_by_database(
            "labeling_categoryannotation_item_xor_scene",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(scene=scene),
        )

    def test_the_database_refuses_an_annotation_on_neither(self):
        taxonomy = TaxonomyFactory()
        refused_by_database(
            "labeling_categoryannotation_item_xor_scene",
            lambda: CategoryAnnotation.objects.create(dataset=taxonomy.dataset, taxonomy=taxonomy),
        )

    def test_validation_explains_an_annotation_on_both_an_item_and_a_scene(self):
        annotation = CategoryAnnotationFactory()
        annotation.scene = SceneFactory(dataset=annotation.dataset)
        assert "An annotation is on exactly one item or one scene, not both." in validation_messages(annotation)

    def test_the_database_refuses_a_second_annotation_in_one_taxonomy(self):
        annotation = CategoryAnnotationFactory()
        refused_by_database(
            "labeling_categoryannotation_one_per_item_and_taxonomy",
            lambda: CategoryAnnotation.objects.create(
                dataset=annotation.dataset, item=annotation.item, taxonomy=annotation.taxonomy
            )
        )

    def test_validation_explains_a_second_annotation_in_one_taxonomy(self):
        annotation = CategoryAnnotationFactory()
        twin = CategoryAnnotation(dataset=annotation.dataset, item=annotation.item, taxonomy=annotation.taxonomy)
        assert "This item already has an annotation in this taxonomy." in validation_messages(twin)

    @committing
    def test_the_database_refuses_an_item_of_another_dataset(self):
        annotation = CategoryAnnotationFactory()
        stranger = ItemFactory()
        refused_by_database(
            "labeling_categoryannotation_item_in_dataset",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(item=stranger),
        )

    @committing
    def test_the_database_refuses_a_taxonomy_of_another_dataset(self):
        annotation = CategoryAnnotationFactory()
        stranger = TaxonomyFactory()
        refused_by_database(
            "labeling_categoryannotation_taxonomy_in_dataset",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(taxonomy=stranger),
        )


class TestChosenLabels:
    @committing
    def test_the_database_refuses_a_label_from_another_taxonomy(self):
        annotation = CategoryAnnotationFactory()
        foreign_label = LabelFactory(taxonomy=TaxonomyFactory(dataset=annotation.dataset))
        refused_by_database(
            "labeling_categoryannotation_label_in_taxonomy",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(label=foreign_label),
        )

    def test_validation_explains_a_label_from_another_taxonomy(self):
        annotation = CategoryAnnotationFactory()
        annotation.label = LabelFactory(taxonomy=TaxonomyFactory(dataset=annotation.dataset))
        assert "The label is not a label of this taxonomy." in validation_messages(annotation)

    def test_a_label_of_the_annotations_own_taxonomy_is_accepted(self):
        annotation = CategoryAnnotationFactory()
        annotation.label = LabelFactory(taxonomy=annotation.taxonomy)
        annotation.full_clean()
        annotation.save()

    @committing
    def test_the_database_refuses_a_multi_label_choice_from_another_taxonomy(self):
        annotation = CategoryAnnotationFactory(taxonomy__multi_label=True)
        foreign_label = LabelFactory(taxonomy=TaxonomyFactory(dataset=annotation.dataset))
        refused_by_database(
            "labeling_annotationlabel_label_in_taxonomy",
            lambda: AnnotationLabel.objects.create(annotation=annotation, label=foreign_label, taxonomy=annotation.taxonomy)
        )
        refused_by_database(
            "labeling_annotationlabel_annotation_in_taxonomy",
            lambda: AnnotationLabel.objects.create(annotation=annotation, label=foreign_label, taxonomy=foreign_label.taxonomy)
        )

    def test_the_database_refuses_choosing_one_label_twice(self):
        annotation = CategoryAnnotationFactory(taxonomy__multi_label=True)
        label = LabelFactory(taxonomy=annotation.taxonomy)
        AnnotationLabel.objects.create(annotation=annotation, label=label, taxonomy=annotation.taxonomy)
        refused_by_database(
            "labeling_annotationlabel_once_per_annotation",
            lambda: AnnotationLabel.objects.create(annotation=annotation, label=label, taxonomy=annotation.taxonomy)
        )


class TestSyncBookkeeping:
    def test_the_database_refuses_a_synced_version_ahead_of_the_version(self):
        annotation = CategoryAnnotationFactory()
        refused_by_database(
            "labeling_categoryannotation_synced_version_not_ahead",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(synced_version=2),
        )

    def test_the_database_refuses_a_draft_that_claims_to_be_pending_sync(self):
        annotation = CategoryAnnotationFactory()
        refused_by_database(
            "labeling_categoryannotation_sync_state_matches_status",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(sync_state=CategoryAnnotation.SyncState.PENDING)
        )

    def test_the_database_refuses_a_finished_annotation_without_finished_at(self):
        annotation = CategoryAnnotationFactory()
        refused_by_database(
            "labeling_categoryannotation_finished_at_iff_finished",
            lambda: CategoryAnnotation.objects.filter(pk=annotation.pk).update(
                status=CategoryAnnotation.Status.FINISHED, sync_state=CategoryAnnotation.SyncState.PENDING
            )
        )


class TestDeletion:
    @committing
    def test_deleting_a_dataset_deletes_everything_in_it(self):
        annotation = CategoryAnnotationFactory(taxonomy__multi_label=True)
        label = LabelFactory(taxonomy=annotation.taxonomy)
        AnnotationLabel.objects.create(annotation=annotation, label=label, taxonomy=annotation.taxonomy)
        scene = SceneFactory(dataset=annotation.dataset)
        ItemFactory(dataset=annotation.dataset, scene=scene, frame_index=0)

        annotation.dataset.delete()

        assert not CategoryAnnotation.objects.exists()
        assert not AnnotationLabel.objects.exists()
        assert not Item.objects.exists()

    @committing
    def test_deleting_a_taxonomy_deletes_its_labels_and_annotations(self):
        annotation = CategoryAnnotationFactory()
        annotation.label = LabelFactory(taxonomy=annotation.taxonomy)
        annotation.save()

        annotation.taxonomy.delete()

        assert not CategoryAnnotation.objects.exists()
        assert Item.objects.filter(pk=annotation.item_id).exists()
