from django.urls import path

from labeling.api import annotations, datasets, items, queue, taxonomies

app_name = "api"

urlpatterns = [
    path("datasets/", datasets.DatasetListApi.as_view(), name="dataset-list"),
    path("datasets/<int:dataset_id>/", datasets.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<int:dataset_id>/members/", datasets.MemberListApi.as_view(), name="member-list"),
    path("datasets/<int:dataset_id>/members/<str:username>/", datasets.MemberDetailApi.as_view(), name="member-detail"),
    path("datasets/<int:dataset_id>/taxonomies/", taxonomies.TaxonomyListApi.as_view(), name="taxonomy-list"),
    path(
        "datasets/<int:dataset_id>/taxonomies/<str:taxonomy_name>/",
        taxonomies.TaxonomyDetailApi.as_view(),
        name="taxonomy-detail",
    ),
    path(
        "datasets/<int:dataset_id>/taxonomies/<str:taxonomy_name>/ask-new-classes/",
        taxonomies.AskNewClassesApi.as_view(),
        name="taxonomy-ask-new-classes",
    ),
    path(
        "datasets/<int:dataset_id>/taxonomies/<str:taxonomy_name>/labels/",
        taxonomies.LabelListApi.as_view(),
        name="label-list",
    ),
    # path: a label of a single-label taxonomy may contain '/'.
    path(
        "datasets/<int:dataset_id>/taxonomies/<str:taxonomy_name>/labels/<path:label>/",
        taxonomies.LabelDetailApi.as_view(),
        name="label-detail",
    ),
    path("datasets/<int:dataset_id>/items/", items.ItemListApi.as_view(), name="item-list"),
    path("datasets/<int:dataset_id>/scenes/", items.SceneListApi.as_view(), name="scene-list"),
    path("datasets/<int:dataset_id>/annotations/", annotations.AnnotationListApi.as_view(), name="annotation-list"),
    path("datasets/<int:dataset_id>/export/", annotations.ExportApi.as_view(), name="export"),
    path("datasets/<int:dataset_id>/next/", queue.NextApi.as_view(), name="next"),
    path("datasets/<int:dataset_id>/submit/", queue.SubmitApi.as_view(), name="submit"),
    path("datasets/<int:dataset_id>/submit-and-next/", queue.SubmitAndNextApi.as_view(), name="submit-and-next"),
    path("datasets/<int:dataset_id>/skip/", queue.SkipApi.as_view(), name="skip"),
    path("datasets/<int:dataset_id>/draft/", queue.DraftApi.as_view(), name="draft"),
    path("datasets/<int:dataset_id>/ahead/", queue.AheadApi.as_view(), name="ahead"),
    # path: a reference_id may contain '/'.
    path("datasets/<int:dataset_id>/tasks/<path:reference_id>/", queue.TaskDetailApi.as_view(), name="task-detail"),
]
