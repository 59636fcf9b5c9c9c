"""Everything that speaks to Nucleus goes through this module; nothing else imports the SDK.

The SDK (`scale-nucleus`) is imported inside the functions: importing it costs ~0.4 s and configures
logging, which Django start-up should not pay for.

The SDK picks every route; the payloads are built here by `annotation_payloads`, tested equal to
the SDK's own `to_payload()`, and sent through the SDK's `annotate`. Only its transport is replaced
(`_OneAttemptConnection`): the SDK's own retries sleep up to ~80 s inside the worker on 503/504 and
its `NucleusAPIError` drops the response headers, so `Retry-After` is lost. The sync owns retries
instead (`labeling.services.sync`): it needs one attempt per call, the status, and `Retry-After`.
"""

import email.utils
import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from django.conf import settings

from labeling.models import CategoryAnnotation
from taxonomies.models import MULTI_LABEL_SEPARATOR

MULTI_LABEL_TRUE, MULTI_LABEL_FALSE = "True", "False"
BINARY_LABELS = [MULTI_LABEL_TRUE, MULTI_LABEL_FALSE]
# Answers worth trying again later: rate limiting and the server or a proxy failing. The SDK itself
# retries 503, 504, 520 and 524 (Cloudflare's "unknown error" and "timeout").
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 524})


def binary_taxonomy_name(taxonomy_name: str, label: str) -> str:
    """The Nucleus taxonomy that carries one class of a multi-label taxonomy (labels True/False)."""
    return f"{taxonomy_name}{MULTI_LABEL_SEPARATOR}{label}"


def annotation_payloads(annotation: CategoryAnnotation) -> list[dict]:
    """The payloads of one finished annotation, exactly as the SDK's `CategoryAnnotation(...).to_payload()`
    (an item) or `SceneCategoryAnnotation(...).to_payload()` (a scene) builds them, key order
    included (tests/labeling/sync/test_payloads.py compares them with the SDK's, line by line).

    Export, `sync_nucleus --dry-run` and the sync all call this one function, so they always agree.
    A multi-label annotation is one "True"/"False" payload per class its labeler was shown
    (`shown_label_ids`) that its taxonomy still has, in the taxonomy's order: a class added later
    is not reported as "False" by an answer whose labeler never saw it. Built as dicts, not SDK
    objects: a dataclass per payload cost more than the rest of a large export.

    Needs item, scene, taxonomy, label, labels and taxonomy.labels loaded.
    """
    taxonomy = annotation.taxonomy
    metadata = annotation.metadata if annotation.metadata else {}  # as the SDK's __post_init__
    if annotation.scene_id:
        base = {"type": "category", "geometry": {}, "reference_id": annotation.scene.reference_id, "metadata": metadata, "task_id": None}
    else:
        base = {
            "type": "category", "geometry": {}, "reference_id": annotation.item.reference_id, "metadata": metadata,
            "track_reference_id": None, "task_id": None,
        }
    if not taxonomy.multi_label:
        return [{"label": annotation.label.name, **base, "taxonomy_name": taxonomy.taxonomy_name}]
    chosen = {label.id for label in annotation.labels.all()}
    # Null only on a row written outside the services (answers_save and migration 0011 fill it):
    # every class then, as multi-label answers were sent before they recorded what was shown.
    shown = None if annotation.shown_label_ids is None else set(annotation.shown_label_ids)
    return [
        {
            "label": MULTI_LABEL_TRUE if label.id in chosen else MULTI_LABEL_FALSE,
            **base,
            "taxonomy_name": binary_taxonomy_name(taxonomy.taxonomy_name, label.name),
        }
        for label in taxonomy.labels.all()
        if shown is None or label.id in shown
    ]


def _prebuilt_annotation_class():
    from nucleus.annotation import Annotation

    class PrebuiltAnnotation(Annotation):
        """A payload of `annotation_payloads`, handed to the SDK's `annotate` (which sends what
        `to_payload()` returns, so the route and the request body stay the SDK's)."""

        def __init__(self, payload: dict):
            self.payload = payload
            self.reference_id = payload["reference_id"]

        def to_payload(self) -> dict:
            return self.payload

    return PrebuiltAnnotation


class NucleusFault(Exception):
    """A call to Nucleus did not succeed; `message` says why, in Nucleus's words when it gave any."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class NucleusUnavailable(NucleusFault):
    """Worth trying again later: 429, 5xx, a timeout or a broken connection. `retry_after` is the
    number of seconds Nucleus asked us to wait (`Retry-After`), if it said."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class NucleusRefused(NucleusFault):
    """Trying again will not help (401, 403, 404, 400, ...): a person must act."""


@dataclass(frozen=True)
class AnnotateAnswer:
    """What Nucleus said about one `annotate` request (HTTP 200 even when annotations failed)."""

    processed: int
    ignored: int
    errors: list[str]


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _one_attempt_connection_class():
    from nucleus.connection import Connection
    from nucleus.errors import NucleusAPIError

    class OneAttemptConnection(Connection):
        """The SDK's request, made once, on a kept-alive session, with our timeout; a bad answer
        raises the SDK's `NucleusAPIError` carrying `retry_after` and the response text."""

        def __init__(self, *args, session: requests.Session, timeout: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.session = session
            self.timeout = timeout

        def make_request(self, payload, route, requests_command=requests.post, return_raw_response=False):
            endpoint = f"{self.endpoint}/{route}"
            response = self.session.request(
                requests_command.__name__.upper(),  # the SDK passes requests.post, requests.get, ...
                endpoint,
                json=payload,
                headers={"Content-Type": "application/json", **(self.extra_headers or {})},
                timeout=self.timeout,
                verify=os.environ.get("NUCLEUS_SKIP_SSL_VERIFY") is None,
                auth=(self.api_key, ""),
            )
            if not response.ok:
                error = NucleusAPIError(endpoint, requests_command, response)
                error.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                error.detail = response.text
                raise error
            return response if return_raw_response else response.json()

    return OneAttemptConnection


class RemoteDataset:
    """One Nucleus dataset, reached through the SDK. Every method raises `NucleusUnavailable` or
    `NucleusRefused` instead of the SDK's and requests' own exceptions. Use it as a context manager:
    it keeps one HTTP connection open for the whole sync."""

    def __init__(self, *, dataset_id: str, api_key: str, endpoint: str, timeout: float):
        import nucleus
        import tqdm

        self.session = requests.Session()
        self.client = nucleus.NucleusClient(api_key=api_key, endpoint=endpoint)
        self.client.tqdm_bar = functools.partial(tqdm.tqdm, disable=True)
        self.client.connection = _one_attempt_connection_class()(
            api_key, endpoint, session=self.session, timeout=timeout
        )
        self.dataset = self.client.get_dataset(dataset_id)  # makes no request
        # What the caller's writes are conditioned on: a dataset linked elsewhere meanwhile must not
        # get snapshots of this one (see `labeling.services.sync.dataset_nucleus_link_hold`).
        self.dataset_id = dataset_id

    def __enter__(self) -> "RemoteDataset":
        return self

    def __exit__(self, *exc_info) -> None:
        self.session.close()

    def add_taxonomy(self, taxonomy_name: str, labels: list[str]) -> str:
        """Create the category taxonomy, or append the labels it lacks (`update=True`); its status."""
        answer = self._call(self.dataset.add_taxonomy, taxonomy_name, "category", labels, update=True)
        return answer.get("status", "")

    def delete_taxonomy(self, taxonomy_name: str) -> None:
        """Delete the taxonomy and, on Nucleus, every annotation in it."""
        self._call(self.dataset.delete_taxonomy, taxonomy_name)

    def annotate(self, payloads: list[dict]) -> AnnotateAnswer:
        """Send payloads (`annotation_payloads`) in ONE request through the SDK's `annotate`,
        replacing what Nucleus has (`update=True`)."""
        if not payloads:
            return AnnotateAnswer(processed=0, ignored=0, errors=[])
        prebuilt = _prebuilt_annotation_class()
        annotations = [prebuilt(payload) for payload in payloads]
        answer = self._call(self.dataset.annotate, annotations, update=True, batch_size=len(annotations))
        return AnnotateAnswer(
            processed=int(answer.get("annotations_processed") or 0),
            ignored=int(answer.get("annotations_ignored") or 0),
            errors=[str(error) for error in answer.get("errors") or []],
        )

    @staticmethod
    def _call(method, *args, **kwargs):
        from nucleus.errors import NucleusAPIError

        try:
            return method(*args, **kwargs)
        except NucleusAPIError as error:
            status = getattr(error, "status_code", None)
            detail = (getattr(error, "detail", "") or "").strip()
            message = f"Nucleus answered HTTP {status}" + (f": {detail}" if detail else ".")
            if status in TRANSIENT_STATUSES:
                raise NucleusUnavailable(message, status=status, retry_after=getattr(error, "retry_after", None)) from None
            raise NucleusRefused(message, status=status) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as error:
            raise NucleusRefused(f"NUCLEUS_ENDPOINT is not a usable URL: {error}") from None
        except requests.exceptions.Timeout:
            raise NucleusUnavailable("Nucleus did not answer in time.") from None
        except requests.exceptions.RequestException as error:
            # Refused or dropped connections, truncated bodies, an answer that is not JSON.
            raise NucleusUnavailable(f"Could not reach Nucleus: {type(error).__name__}: {error}") from None


def remote_dataset(nucleus_dataset_id: str) -> RemoteDataset:
    """The linked Nucleus dataset, with the API key and endpoint from the settings."""
    return RemoteDataset(
        dataset_id=nucleus_dataset_id,
        api_key=settings.NUCLEUS_API_KEY,
        endpoint=settings.NUCLEUS_ENDPOINT,
        timeout=settings.NUCLEUS_TIMEOUT_SECONDS,
    )


# --- Items (pull and push) ---
# Used by labeling.services.nucleus_items: checking a link, reading a dataset's items and scenes,
# appending ours. Every call goes through RemoteDataset._call, so faults arrive as NucleusFault.

# How often an append job is polled. The SDK's sleep_until_complete sleeps 5 s after every poll,
# even after the first one said Completed.
JOB_POLL_SECONDS = 0.5
JOB_WAITING_STATES = frozenset({"Queued", "Running"})
# Scene export pages: the SDK refuses more than 30 scenes per page.
SCENE_PAGE_SIZE = 30


@dataclass(frozen=True)
class RemoteDatasetInfo:
    dataset_id: str
    name: str
    length: int
    is_scene: bool


@dataclass(frozen=True)
class RemoteRow:
    """An item or a scene as Nucleus has it; `location` is the image URL of an item or the video
    URL of a scene ("" for a scene made of frames, which the export does not list)."""

    reference_id: str
    location: str
    metadata: dict


@dataclass(frozen=True)
class AppendAnswer:
    """What the append job said: its final status and its error strings (empty when Completed)."""

    status: str
    errors: list[str]


def dataset_info(remote: RemoteDataset) -> RemoteDatasetInfo:
    """`dataset.info()` (GET dataset/{id}/info: 404 for an unknown id), and whether it is a scene
    dataset, which info does not say: the SDK's `dataset.is_scene` (GET dataset/{id}/is_scene)."""
    info = remote._call(remote.dataset.info)
    is_scene = remote._call(lambda: remote.dataset.is_scene)
    return RemoteDatasetInfo(dataset_id=info.dataset_id, name=info.name, length=info.length or 0, is_scene=bool(is_scene))


def _rows_guarded(remote: RemoteDataset, rows: Iterator) -> Iterator:
    """Iterate an SDK generator (each step may be a page request) with its faults translated."""
    end = object()
    while (row := remote._call(next, rows, end)) is not end:
        yield row


def remote_items(remote: RemoteDataset, *, page_size: int) -> Iterator[RemoteRow]:
    """Every item of the dataset, page after page (`dataset.items_generator()`, POST itemsPage)."""
    for item in _rows_guarded(remote, remote.dataset.items_generator(page_size=page_size)):
        yield RemoteRow(reference_id=item.reference_id, location=item.image_location or "", metadata=item.metadata or {})


def remote_scenes(remote: RemoteDataset) -> Iterator[RemoteRow]:
    """Every scene of a scene dataset (`dataset.scene_and_annotation_generator()`, POST
    exportForTrainingByScene): reference_id, metadata and, for a video, its URL (`fileLocation`)."""
    rows = remote.dataset.scene_and_annotation_generator(page_size=SCENE_PAGE_SIZE)
    for row in _rows_guarded(remote, rows):
        scene = row.get("scene") or {}
        yield RemoteRow(
            reference_id=scene.get("reference_id") or "", location=scene.get("fileLocation") or "", metadata=scene.get("metadata") or {}
        )


def sdk_item(*, reference_id: str, image_url: str, metadata: dict):
    from nucleus import DatasetItem

    return DatasetItem(image_location=image_url, reference_id=reference_id, metadata=metadata)


def sdk_scene(*, reference_id: str, metadata: dict, video_url: str = "", frame_rate: float = 1.0, frames: list | None = None):
    """A `VideoScene`: a video (no frame rate: the SDK refuses one with a video) or frames given as
    SDK items (the SDK wants an integer frame rate of at least 1)."""
    from nucleus import VideoScene

    if video_url:
        return VideoScene(reference_id=reference_id, video_location=video_url, metadata=metadata)
    return VideoScene(reference_id=reference_id, frame_rate=max(1, round(frame_rate)), items=frames or [], metadata=metadata)


def append(remote: RemoteDataset, rows: list) -> AppendAnswer:
    """`dataset.append(rows, update=False)` (items, or VideoScenes), then wait for the job and read
    its errors. update=False: what Nucleus already has stays as it is, so appending twice is harmless."""

    import time

    def run() -> AppendAnswer:
        job = remote.dataset.append(rows, update=False)
        status = job.status()["status"]
        while status in JOB_WAITING_STATES:
            time.sleep(JOB_POLL_SECONDS)
            status = job.status()["status"]
        return AppendAnswer(status=status, errors=[] if status == "Completed" else [str(error) for error in job.errors()])

    try:
        return remote._call(run)
    except (AssertionError, ValueError) as error:
        # The SDK validates scenes with assert and refuses some inputs with ValueError, before sending.
        raise NucleusRefused(f"The SDK refused the upload: {error}") from None
