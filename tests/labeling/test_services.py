import io

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from labeling.errors import BatchInvalid
from labeling.models import AnnotationLabel, CategoryAnnotation, Dataset, DatasetMember, Item, Scene
from labeling.services.annotations import Answer, annotation_save, answers_save
from labeling.services.taxonomy_removals import label_remove
from labeling.services.datasets import dataset_create, dataset_member_set
from labeling.services.items import item_create, scene_create
from taxonomies.models import Label
from taxonomies.services import taxonomy_create
from tests.factories import DatasetFactory, ItemFactory, SceneFactory, png_upload

pytestmark = pytest.mark.django_db


def label(taxonomy, name) -> Label:
    return taxonomy.labels.get(name=name)


class TestDatasets:
    def test_the_creator_becomes_the_first_admin(self, outsider):
        dataset = dataset_create(name="Street scenes", kind=Dataset.Kind.SCENES, created_by=outsider)
        assert DatasetMember.objects.get(dataset=dataset, user=outsider).role == DatasetMember.Role.ADMIN

    def test_it_refuses_an_unknown_kind(self):
        with pytest.raises(ValidationError) as error:
            dataset_create(name="Odd", kind="pointclouds")
        assert "kind" in error.value.message_dict

    def test_setting_a_role_twice_changes_it_instead_of_adding_a_member(self, dataset, labeler):
        dataset_member_set(dataset=dataset, user=labeler, role=DatasetMember.Role.ADMIN)
        assert list(DatasetMember.objects.filter(user=labeler).values_list("role", flat=True)) == ["admin"]


class TestItems:
    def test_an_uploaded_image_gets_its_size_from_pillow_and_a_name_the_server_picks(self, dataset):
        item = item_create(dataset=dataset, reference_id="image_1", image_file=png_upload("../../evil name.png", (120, 80)))
        item.refresh_from_db()
        assert (item.width, item.height) == (120, 80)
        assert item.image.name.startswith(f"items/{dataset.id}/") and item.image.name.endswith(".png")
        assert "evil" not in item.image.name
        with Image.open(item.image.path) as stored:
            assert stored.size == (120, 80)

    def test_an_item_by_url_is_stored_without_a_size(self, dataset):
        item = item_create(dataset=dataset, reference_id="image_1", image_url="https://cdn.example.com/1.jpg")
        assert item.image_src == "https://cdn.example.com/1.jpg" and item.width is None

    def test_it_refuses_a_file_that_is_not_an_image(self, dataset):
        svg = SimpleUploadedFile("cat.png", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
        with pytest.raises(ValidationError, match="not a readable JPEG, PNG or WebP"):
            item_create(dataset=dataset, reference_id="image_1", image_file=svg)
        assert not Item.objects.exists()

    def test_it_refuses_an_image_format_outside_the_allowed_ones(self, dataset):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, format="BMP")
        with pytest.raises(ValidationError, match="must be JPEG, PNG or WebP; this one is BMP"):
            item_create(dataset=dataset, reference_id="image_1", image_file=SimpleUploadedFile("a.png", buffer.getvalue()))

    def test_it_refuses_an_image_over_the_pixel_cap(self, dataset, settings):
        settings.MAX_IMAGE_PIXELS = 100
        with pytest.raises(ValidationError, match="has 400 pixels"):
            item_create(dataset=dataset, reference_id="image_1", image_file=png_upload(size=(20, 20)))

    def test_a_truncated_image_is_stored_pending_and_fails_its_check_after_the_commit(self, dataset, django_capture_on_commit_callbacks):
        # Only the header is read in the request; the decode that finds the cut runs in a child process.
        data = png_upload(size=(200, 200)).read()
        with django_capture_on_commit_callbacks(execute=True):
            item = item_create(dataset=dataset, reference_id="image_1", image_file=SimpleUploadedFile("a.png", data[: len(data) // 2]))
            assert Item.objects.get(pk=item.pk).image_check == "pending"
        item.refresh_from_db()
        assert (item.image_check, item.task.state) == ("failed", "waiting")
        assert item.image_error.startswith("The image could not be decoded")

    def test_it_refuses_metadata_with_nan(self, dataset):
        with pytest.raises(ValidationError, match="NaN or Infinity"):
            item_create(dataset=dataset, reference_id="x", image_url="https://a.test/x.jpg", metadata={"score": float("nan")})

    def test_it_refuses_a_standalone_item_in_a_scene_dataset(self):
        scenes = DatasetFactory(kind=Dataset.Kind.SCENES)
        with pytest.raises(ValidationError, match="scene dataset holds scenes"):
            item_create(dataset=scenes, reference_id="x", image_url="https://a.test/x.jpg")


class TestScenes:
    @pytest.fixture
    def scenes(self):
        return DatasetFactory(kind=Dataset.Kind.SCENES)

    def test_a_frame_sequence_is_stored_in_order(self, scenes):
        frames = [{"reference_id": f"drive_1_{i}", "image_url": f"https://a.test/{i}.jpg"} for i in range(5)]
        scene = scene_create(dataset=scenes, reference_id="drive_1", frame_rate=5, frames=frames)
        assert list(scene.frames.order_by("frame_index").values_list("reference_id", flat=True)) == [
            f"drive_1_{i}" for i in range(5)
        ]

    def test_one_bad_frame_stores_nothing(self, scenes):
        frames = [{"reference_id": "f0", "image_url": "https://a.test/0.jpg"}, {"reference_id": "f1", "image_url": "ftp://x/1.jpg"}]
        with pytest.raises(ValidationError) as error:
            scene_create(dataset=scenes, reference_id="drive_1", frame_rate=5, frames=frames)
        assert "frames[1]" in error.value.messages[0]
        assert not Scene.objects.exists() and not Item.objects.exists()

    def test_it_refuses_more_than_3000_frames(self, scenes):
        frames = [{"reference_id": f"f{i}", "image_url": "https://a.test/x.jpg"} for i in range(3001)]
        with pytest.raises(ValidationError, match="at most 3000 frames; this one has 3001"):
            scene_create(dataset=scenes, reference_id="long", frame_rate=30, frames=frames)

    def test_it_refuses_both_a_video_and_frames(self, scenes):
        with pytest.raises(ValidationError, match="either a video_url or a list of frames"):
            scene_create(
                dataset=scenes, reference_id="s", frame_rate=5, video_url="https://a.test/v.mp4",
                frames=[{"reference_id": "f0", "image_url": "https://a.test/0.jpg"}],
            )

    def test_a_scene_cannot_share_a_reference_id_with_a_frame(self, scenes):
        scene_create(dataset=scenes, reference_id="s1", frame_rate=5, frames=[{"reference_id": "shared", "image_url": "https://a.test/0.jpg"}])
        with pytest.raises(ValidationError, match="'shared' is already used in this dataset"):
            scene_create(dataset=scenes, reference_id="shared", frame_rate=5, video_url="https://a.test/v.mp4")

    def test_every_bad_frame_is_reported_with_its_index(self, scenes):
        frames = [
            {"reference_id": "f0", "image_url": "ftp://a.test/0.jpg"},
            {"reference_id": "f1", "image_url": "https://a.test/1.jpg"},
            {"reference_id": "f2"},
            {"reference_id": "f1", "image_url": "https://a.test/3.jpg"},
        ]
        with pytest.raises(BatchInvalid) as error:
            scene_create(dataset=scenes, reference_id="drive_1", frame_rate=5, frames=frames)
        assert [(row.index, row.field) for row in error.value.rows] == [(0, "frames[0].image_url"), (0, "frames[2].image_url")]

    def test_a_frame_reference_id_repeated_in_the_scene_is_reported_on_each_frame(self, scenes):
        frames = [{"reference_id": "f1", "image_url": "https://a.test/1.jpg"}, {"reference_id": "f1", "image_url": "https://a.test/3.jpg"}]
        with pytest.raises(BatchInvalid) as error:
            scene_create(dataset=scenes, reference_id="drive_1", frame_rate=5, frames=frames)
        assert [(row.field, row.message) for row in error.value.rows] == [
            ("frames[0].reference_id", "'f1' appears more than once in this batch."),
            ("frames[1].reference_id", "'f1' appears more than once in this batch."),
        ]

    def test_a_scene_whose_rows_fail_to_store_leaves_no_files_behind(self, scenes, settings, monkeypatch):
        def fail(*args, **kwargs):
            raise IntegrityError("simulated race on a reference_id")

        monkeypatch.setattr(Item.objects, "bulk_create", fail)
        frames = [{"reference_id": f"f{i}", "image_file": png_upload()} for i in range(3)]
        with pytest.raises(IntegrityError):
            scene_create(dataset=scenes, reference_id="drive_1", frame_rate=5, frames=frames)
        assert not Scene.objects.exists()
        assert [path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()] == []

    def test_uploaded_frames_are_stored_with_their_sizes(self, scenes):
        frames = [{"reference_id": f"f{i}", "image_file": png_upload(size=(30 + i, 20))} for i in range(2)]
        scene = scene_create(dataset=scenes, reference_id="drive_1", frame_rate=5, frames=frames)
        assert [(f.width, f.height, f.image.storage.exists(f.image.name)) for f in scene.frames.order_by("frame_index")] == [
            (30, 20, True),
            (31, 20, True),
        ]


class TestAnnotationSave:
    def test_a_first_finished_answer_is_pending_sync_at_version_1(self, dataset, clothing_type, labeler):
        item = ItemFactory(dataset=dataset)
        saved = annotation_save(target=item, taxonomy=clothing_type, labels=[label(clothing_type, "shirt")], annotator=labeler, finished=True)
        annotation = saved.annotation
        assert saved.changed
        assert (annotation.status, annotation.sync_state, annotation.version, annotation.synced_version) == (
            "finished", "pending", 1, 0
        )
        assert annotation.chosen_label_names() == ["shirt"]

    def test_a_relabel_of_a_finished_answer_is_a_new_version(self, dataset, clothing_type, labeler):
        item = ItemFactory(dataset=dataset)
        first = annotation_save(target=item, taxonomy=clothing_type, labels=[label(clothing_type, "shirt")], annotator=labeler, finished=True)
        CategoryAnnotation.objects.filter(pk=first.annotation.pk).update(synced_version=1, sync_state="synced")

        second = annotation_save(target=item, taxonomy=clothing_type, labels=[label(clothing_type, "pants")], annotator=labeler, finished=True)

        assert second.annotation.pk == first.annotation.pk
        assert (second.annotation.version, second.annotation.sync_state) == (2, "pending")
        assert CategoryAnnotation.objects.count() == 1

    def test_saving_the_same_answer_again_changes_nothing(self, dataset, clothing_type, labeler):
        item = ItemFactory(dataset=dataset)
        shirt = label(clothing_type, "shirt")
        annotation_save(target=item, taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=True)
        again = annotation_save(target=item, taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=True)
        assert not again.changed and again.annotation.version == 1

    def test_a_multi_label_answer_stores_the_set_and_may_be_empty(self, dataset, attributes, labeler):
        item = ItemFactory(dataset=dataset)
        saved = annotation_save(
            target=item, taxonomy=attributes, labels=[label(attributes, "striped"), label(attributes, "logo")], annotator=labeler, finished=True
        )
        assert sorted(saved.annotation.chosen_label_names()) == ["logo", "striped"]
        emptied = annotation_save(target=item, taxonomy=attributes, labels=[], annotator=labeler, finished=True)
        assert emptied.annotation.chosen_label_names() == [] and emptied.annotation.version == 2

    @pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
    def test_an_insert_first_save_over_an_annotation_made_meanwhile_compares_it_as_usual(
        self, dataset, clothing_type, attributes, labeler, multi_label
    ):
        # A first submit inserts first (surely_new); a draft saved between its check and its insert
        # must still end as one annotation, finished, and a re-save of a finished one a new version.
        taxonomy, first, second = (attributes, "striped", "logo") if multi_label else (clothing_type, "shirt", "pants")
        item = ItemFactory(dataset=dataset)
        draft = annotation_save(target=item, taxonomy=taxonomy, labels=[label(taxonomy, first)], annotator=labeler, finished=False)

        def save(name):
            answer = Answer(target=item, taxonomy=taxonomy, labels=[label(taxonomy, name)], metadata={})
            (saved,) = answers_save(target=item, answers=[answer], annotator=labeler, finished=True, surely_new=True)
            return saved

        finished = save(first)
        relabelled = save(second)

        assert finished.annotation.pk == relabelled.annotation.pk == draft.annotation.pk
        assert (finished.annotation.status, finished.annotation.version) == ("finished", 1)
        assert (relabelled.changed, relabelled.annotation.version) == (True, 2)
        assert CategoryAnnotation.objects.get().chosen_label_names() == [second]

    def test_an_insert_first_save_of_new_answers_stores_them_with_their_chosen_labels(self, dataset, clothing_type, attributes, labeler):
        item = ItemFactory(dataset=dataset)
        answers = [
            Answer(target=item, taxonomy=clothing_type, labels=[label(clothing_type, "shirt")], metadata={"note": "faint"}),
            Answer(target=item, taxonomy=attributes, labels=[label(attributes, "striped"), label(attributes, "logo")], metadata={}),
        ]
        saved = answers_save(target=item, answers=answers, annotator=labeler, finished=True, surely_new=True)
        stored = {annotation.taxonomy_id: annotation for annotation in CategoryAnnotation.objects.all()}
        assert [result.annotation.pk for result in saved] == [stored[clothing_type.id].pk, stored[attributes.id].pk]
        assert stored[clothing_type.id].metadata == {"note": "faint"}
        assert sorted(stored[attributes.id].chosen_label_names()) == ["logo", "striped"]
        assert {(a.status, a.sync_state, a.version) for a in stored.values()} == {("finished", "pending", 1)}

    def test_it_refuses_a_list_for_a_single_label_taxonomy(self, dataset, clothing_type, labeler):
        item = ItemFactory(dataset=dataset)
        with pytest.raises(ValidationError, match="single-label taxonomy: choose one label, not 2"):
            annotation_save(
                target=item, taxonomy=clothing_type, labels=[label(clothing_type, "shirt"), label(clothing_type, "pants")],
                annotator=labeler, finished=True,
            )
        assert not CategoryAnnotation.objects.exists()

    def test_it_refuses_a_label_of_another_taxonomy(self, dataset, clothing_type, attributes, labeler):
        item = ItemFactory(dataset=dataset)
        with pytest.raises(ValidationError, match="Not a label of “clothing_type”: logo"):
            annotation_save(target=item, taxonomy=clothing_type, labels=[label(attributes, "logo")], annotator=labeler, finished=True)

    def test_it_refuses_a_finished_single_label_answer_without_a_label(self, dataset, clothing_type, labeler):
        with pytest.raises(ValidationError, match="Choose a label for “clothing_type”"):
            annotation_save(target=ItemFactory(dataset=dataset), taxonomy=clothing_type, labels=[], annotator=labeler, finished=True)

    def test_it_refuses_a_scene_taxonomy_on_an_item(self, dataset, labeler):
        action = taxonomy_create(dataset=dataset, taxonomy_name="action", labels=["walking"], applies_to="scenes")
        with pytest.raises(ValidationError, match="applies to scenes, not items"):
            annotation_save(target=ItemFactory(dataset=dataset), taxonomy=action, labels=[label(action, "walking")], annotator=labeler, finished=True)

    def test_it_refuses_nan_in_metadata_before_anything_is_stored(self, dataset, clothing_type, labeler):
        with pytest.raises(ValidationError, match="NaN or Infinity"):
            annotation_save(
                target=ItemFactory(dataset=dataset), taxonomy=clothing_type, labels=[label(clothing_type, "shirt")],
                annotator=labeler, finished=True, metadata={"confidence": float("inf")},
            )
        assert not CategoryAnnotation.objects.exists()

    def test_a_scene_annotation_is_stored_on_the_scene(self, labeler):
        scenes = DatasetFactory(kind=Dataset.Kind.SCENES)
        action = taxonomy_create(dataset=scenes, taxonomy_name="action", labels=["walking", "running"], applies_to="scenes")
        scene = SceneFactory(dataset=scenes)
        saved = annotation_save(target=scene, taxonomy=action, labels=[label(action, "running")], annotator=labeler, finished=True)
        assert saved.annotation.scene == scene and saved.annotation.item is None
        assert saved.annotation.reference_id == scene.reference_id


class TestLabelRemove:
    def test_it_refuses_removing_a_label_that_finished_annotations_use(self, dataset, clothing_type, labeler):
        shirt = label(clothing_type, "shirt")
        annotation_save(target=ItemFactory(dataset=dataset), taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=True)
        with pytest.raises(ValidationError, match="used by 1 finished annotation"):
            label_remove(label=shirt)
        assert Label.objects.filter(pk=shirt.pk).exists()

    def test_relabelling_moves_finished_annotations_to_a_new_version(self, dataset, clothing_type, labeler):
        shirt, pants = label(clothing_type, "shirt"), label(clothing_type, "pants")
        saved = annotation_save(target=ItemFactory(dataset=dataset), taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=True)
        CategoryAnnotation.objects.filter(pk=saved.annotation.pk).update(synced_version=1, sync_state="synced")

        removal = label_remove(label=shirt, relabel_to=pants)

        annotation = CategoryAnnotation.objects.get(pk=saved.annotation.pk)
        assert removal.relabelled_finished == 1
        assert (annotation.label, annotation.version, annotation.sync_state) == (pants, 2, "pending")
        assert not Label.objects.filter(pk=shirt.pk).exists()

    def test_an_unused_label_is_removed_without_asking(self, clothing_type):
        label_remove(label=label(clothing_type, "dress"))
        assert clothing_type.label_names() == ["shirt", "pants"]

    def test_a_draft_just_loses_a_removed_label(self, dataset, clothing_type, labeler):
        saved = annotation_save(
            target=ItemFactory(dataset=dataset), taxonomy=clothing_type, labels=[label(clothing_type, "dress")], annotator=labeler, finished=False
        )
        removal = label_remove(label=label(clothing_type, "dress"))
        assert removal.relabelled_drafts == 1
        assert CategoryAnnotation.objects.get(pk=saved.annotation.pk).label is None

    def test_a_multi_label_class_can_be_dropped_from_finished_annotations_when_confirmed(self, dataset, attributes, labeler):
        striped, logo = label(attributes, "striped"), label(attributes, "logo")
        saved = annotation_save(target=ItemFactory(dataset=dataset), taxonomy=attributes, labels=[striped, logo], annotator=labeler, finished=True)
        with pytest.raises(ValidationError, match="or confirm removing it from them"):
            label_remove(label=striped)

        label_remove(label=striped, drop_from_annotations=True)

        annotation = CategoryAnnotation.objects.get(pk=saved.annotation.pk)
        assert annotation.chosen_label_names() == ["logo"] and annotation.version == 2

    def test_a_multi_label_class_merged_into_one_already_chosen_is_not_doubled(self, dataset, attributes, labeler):
        striped, logo = label(attributes, "striped"), label(attributes, "logo")
        saved = annotation_save(target=ItemFactory(dataset=dataset), taxonomy=attributes, labels=[striped, logo], annotator=labeler, finished=True)
        label_remove(label=striped, relabel_to=logo)
        assert list(AnnotationLabel.objects.filter(annotation=saved.annotation).values_list("label__name", flat=True)) == ["logo"]

    def test_it_refuses_to_relabel_to_a_label_of_another_taxonomy(self, clothing_type, attributes):
        with pytest.raises(ValidationError, match="another label of the same taxonomy"):
            label_remove(label=label(clothing_type, "shirt"), relabel_to=label(attributes, "logo"))


def test_removing_a_label_records_that_nucleus_must_rebuild_the_taxonomy(clothing_type):
    clothing_type.nucleus_labels = ["shirt", "pants", "dress"]
    clothing_type.save()
    label_remove(label=label(clothing_type, "dress"))
    assert clothing_type.nucleus_labels_removed() == ["dress"] and clothing_type.needs_nucleus_rebuild()

