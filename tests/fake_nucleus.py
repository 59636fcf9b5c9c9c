"""A fake Scale Nucleus HTTP server that the real ``scale-nucleus`` SDK (0.22.3) can be pointed at.

Tests build ``NucleusClient(api_key, endpoint=fake.endpoint)`` so that nothing ever reaches the real
Nucleus. The server speaks the wire contract in ``/work/shared/docs/nucleus-wire-contract.md``: the
routes the SDK calls, the response keys it reads, and the server rules a sync must respect (one
category annotation per (reference_id, taxonomy_name), append-only taxonomy labels, validation
failures answered as HTTP 200 with ``errors``).

Two ways to run it:

- in the test process: ``with FakeNucleus(api_key="test-key") as fake: ...``;
- as its own process, for benchmarks and Celery workers:
  ``python -m tests.fake_nucleus --port 0 --api-key K --latency 0.05`` prints the endpoint on its
  first stdout line; another process seeds it, reads its state and injects faults over the small
  JSON control API under ``/_fake/`` through ``FakeNucleusRemote(endpoint)``.

Every error string about an annotation ends with ``(reference_id 'R', taxonomy_name 'T')`` so that a
client can tell which annotation of a batch failed; ``ANNOTATION_ERROR_PATTERN`` parses that tail.

Standard library only: a Celery worker or a benchmark can import it without Django or the SDK.
"""

import argparse
import base64
import binascii
import dataclasses
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

ENDPOINT_PATH = "/v1/nucleus"
CONTROL_PATH = "/_fake/"

ANNOTATION_ERROR_PATTERN = re.compile(r"\(reference_id '(?P<reference_id>.*)', taxonomy_name '(?P<taxonomy_name>.*)'\)$")

# The export row keys that the SDK's convert_export_payload iterates without .get(): all must be present.
EXPORT_ANNOTATION_TYPES = ("box", "polygon", "line", "keypoints", "cuboid", "category", "multicategory")

# An upload needs one of these to say where its media is; Nucleus refuses it otherwise.
ITEM_LOCATION_KEYS = ("image_url",)
SCENE_LOCATION_KEYS = ("frames", "video_url")

# (method, path pattern relative to the endpoint, route name, handler method). The route name is what
# RecordedRequest.route, requests_to() and the fault `route=` arguments match.
ROUTES = [
    ("POST", r"dataset/create", "create", "_answer_create_dataset"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/info", "info", "_answer_info"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/name", "name", "_answer_name"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/is_scene", "is_scene", "_answer_is_scene"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/use_privacy_mode", "use_privacy_mode", "_answer_use_privacy_mode"),
    ("POST", r"dataset/(?P<dataset_id>[^/]+)/add_taxonomy", "add_taxonomy", "_answer_add_taxonomy"),
    # The SDK does not url-encode the taxonomy name, so everything after "taxonomy/" is the name.
    ("DELETE", r"dataset/(?P<dataset_id>[^/]+)/taxonomy/(?P<taxonomy_name>.+)", "delete_taxonomy", "_answer_delete_taxonomy"),
    ("POST", r"dataset/(?P<dataset_id>[^/]+)/annotate", "annotate", "_answer_annotate"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/signedUrl/(?P<request_id>[^/]+)", "signedUrl", "_answer_signed_url"),
    ("PUT", r"signed_upload/(?P<request_id>[^/]+)", "signed_upload", "_answer_signed_upload"),
    ("POST", r"dataset/(?P<dataset_id>[^/]+)/append", "append", "_answer_append"),
    # The scene uploads are the only routes without the "dataset/" prefix.
    ("POST", r"(?P<dataset_id>[^/]+)/upload_video_scenes", "upload_video_scenes", "_answer_upload_scenes"),
    ("POST", r"(?P<dataset_id>[^/]+)/upload_scenes", "upload_scenes", "_answer_upload_scenes"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/refloc/(?P<reference_id>.+)", "refloc", "_answer_refloc"),
    ("GET", r"dataset/(?P<dataset_id>[^/]+)/datasetItems", "datasetItems", "_answer_dataset_items"),
    ("POST", r"dataset/(?P<dataset_id>[^/]+)/itemsPage", "itemsPage", "_answer_items_page"),
    ("POST", r"dataset/(?P<dataset_id>[^/]+)/exportForTrainingPage", "exportForTrainingPage", "_answer_export_items_page"),
    (
        "POST",
        r"dataset/(?P<dataset_id>[^/]+)/exportForTrainingByScene",
        "exportForTrainingByScene",
        "_answer_export_scenes_page",
    ),
    ("GET", r"job/(?P<job_id>[^/]+)", "job", "_answer_job_status"),
    ("GET", r"job/(?P<job_id>[^/]+)/errors", "job_errors", "_answer_job_errors"),
    ("GET", r"job/(?P<job_id>[^/]+)/info", "job_info", "_answer_job_info"),
]
COMPILED_ROUTES = [(method, re.compile(pattern), name, handler) for method, pattern, name, handler in ROUTES]
UNKNOWN_ROUTE = "unknown"


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, faulted or not."""

    method: str
    path: str  # relative to the endpoint and url-decoded, e.g. "dataset/ds_1/annotate"
    query: dict
    json: Any  # the parsed body, or None (no body, NDJSON upload, or invalid JSON)
    headers: dict  # lower-cased names
    api_key: str | None  # the HTTP Basic username, or None without Basic auth
    route: str = UNKNOWN_ROUTE  # the route name of ROUTES, e.g. "annotate"
    body: str = ""  # the raw body, for the NDJSON uploads


@dataclasses.dataclass
class Answer:
    status: int
    payload: Any = None
    headers: dict = dataclasses.field(default_factory=dict)
    drop_connection: bool = False


class InvalidRequest(Exception):
    """Raised by a route handler: becomes a JSON error answer with the given HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass
class Fault:
    """A fault queued by fail_next / drop_next / slow_next; `remaining` counts the requests it still hits."""

    kind: str  # "fail", "drop" or "slow"
    route: str | None
    remaining: int
    status: int = 0
    retry_after: float | int | str | None = None
    body: Any = None
    seconds: float = 0.0


@dataclasses.dataclass
class FailureWindow:
    until: float  # time.monotonic() deadline
    status: int
    route: str | None


@dataclasses.dataclass
class FakeDataset:
    dataset_id: str
    name: str
    is_scene: bool
    use_privacy_mode: bool = False
    items: dict = dataclasses.field(default_factory=dict)  # reference_id -> item JSON
    scenes: dict = dataclasses.field(default_factory=dict)  # reference_id -> scene JSON
    taxonomies: dict = dataclasses.field(default_factory=dict)  # taxonomy_name -> labels, append-only
    annotations: dict = dataclasses.field(default_factory=dict)  # (reference_id, taxonomy_name) -> payload


def annotation_error(reason: str, reference_id: Any, taxonomy_name: Any) -> str:
    return f"{reason} (reference_id '{reference_id}', taxonomy_name '{taxonomy_name}')"


def labels_of(annotations: dict) -> dict:
    return {key: payload.get("label") for key, payload in annotations.items()}


def requests_matching(recorded: list, route: str) -> list:
    return [request for request in recorded if request.route == route]


def reject_json_constant(constant: str):
    # The real server refuses NaN and Infinity, which Python's json module would otherwise accept.
    raise ValueError(f"{constant} is not valid JSON")


def parse_json(text: str) -> Any:
    return json.loads(text, parse_constant=reject_json_constant)


def basic_auth_username(authorization: str | None) -> str | None:
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[len("Basic ") :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0]


def page_of(rows: list, request_json: dict) -> tuple[list, str | None]:
    """Slice one export page; the page token is the offset, opaque to the SDK."""
    start = int(request_json.get("pageToken") or 0)
    size = int(request_json.get("pageSize") or 100_000)
    end = start + size
    return rows[start:end], (str(end) if end < len(rows) else None)


class FakeNucleus:
    """The fake server, in-process: its state, its fault injection and its HTTP server thread."""

    def __init__(self, api_key: str = "test-key", *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0):
        self.api_key = api_key
        self.latency = latency  # seconds added to every request; a float read per request, so no lock
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._datasets: dict[str, FakeDataset] = {}
        self._jobs: dict[str, dict] = {}
        self._uploads: dict[str, list] = {}  # signed-URL request_id -> the NDJSON lines PUT there
        self._faults: list[Fault] = []
        self._failure_windows: list[FailureWindow] = []
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer((host, port), FakeNucleusHandler)
        self._server.daemon_threads = True
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        return self.base_url + ENDPOINT_PATH

    def start(self) -> "FakeNucleus":
        # A short poll interval: shutdown() waits for the next poll, and every test fixture shuts one down.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-nucleus", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted: the standalone process mode."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeNucleus":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- seeding and reading state ----------------------------------------------------------------

    def create_dataset(self, name: str, is_scene: bool = False, use_privacy_mode: bool = False) -> str:
        with self._lock:
            return self._new_dataset(name, is_scene, use_privacy_mode)

    def _new_dataset(self, name: str, is_scene: bool, use_privacy_mode: bool) -> str:
        dataset_id = f"ds_{next(self._ids)}"
        self._datasets[dataset_id] = FakeDataset(dataset_id, name, is_scene, use_privacy_mode)
        return dataset_id

    def add_items(self, dataset_id: str, items: list[dict], update: bool = False) -> list[str]:
        """Store items ({"reference_id", "image_url", "metadata"}); returns one error string per rejected item."""
        with self._lock:
            return self._store_uploads(self._dataset(dataset_id).items, items, update, required_url_keys=ITEM_LOCATION_KEYS)

    def add_scenes(self, dataset_id: str, scenes: list[dict], update: bool = False) -> list[str]:
        """Store scenes ({"reference_id", "frames" or "video_url", "metadata"}); returns the error strings."""
        with self._lock:
            return self._store_uploads(self._dataset(dataset_id).scenes, scenes, update, required_url_keys=SCENE_LOCATION_KEYS)

    def taxonomies(self, dataset_id: str) -> dict[str, list[str]]:
        with self._lock:
            return {name: list(labels) for name, labels in self._dataset(dataset_id).taxonomies.items()}

    def annotations(self, dataset_id: str) -> dict[tuple[str, str], dict]:
        with self._lock:
            return {key: dict(payload) for key, payload in self._dataset(dataset_id).annotations.items()}

    def labels(self, dataset_id: str) -> dict[tuple[str, str], str]:
        return labels_of(self.annotations(dataset_id))

    def requests_to(self, route: str) -> list[RecordedRequest]:
        with self._lock:
            return requests_matching(self.requests, route)

    # -- fault injection ----------------------------------------------------------------------------

    def fail_next(self, status: int = 429, times: int = 1, route: str | None = None, retry_after=None, body=None) -> None:
        """Answer the next `times` matching requests with `status` (and `Retry-After` when given), unprocessed.

        `body` is sent as JSON, or as-is when it is a str (a gateway's HTML page, say).
        """
        self._queue_fault(Fault("fail", route, times, status=status, retry_after=retry_after, body=body))

    def drop_next(self, times: int = 1, route: str | None = None) -> None:
        """Close the connection of the next matching requests without answering or processing them."""
        self._queue_fault(Fault("drop", route, times))

    def slow_next(self, seconds: float, times: int = 1, route: str | None = None) -> None:
        """Delay the next matching requests by `seconds`, then process and answer them.

        The write lands even when the client gave up waiting: that is the case a timeout must not
        treat as "not sent".
        """
        self._queue_fault(Fault("slow", route, times, seconds=seconds))

    def fail_for(self, seconds: float, status: int = 503, route: str | None = None) -> None:
        """Fail every matching request with `status` for the next `seconds`."""
        with self._lock:
            self._failure_windows.append(FailureWindow(time.monotonic() + seconds, status, route))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._failure_windows.clear()

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def _queue_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, route: str) -> Fault | FailureWindow | None:
        """The fault that hits this request, if any: an open failure window first, then queued faults in order."""
        now = time.monotonic()
        with self._lock:
            self._failure_windows = [window for window in self._failure_windows if window.until > now]
            for window in self._failure_windows:
                if window.route in (None, route):
                    return window
            for fault in self._faults:
                if fault.route in (None, route):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- request handling ---------------------------------------------------------------------------

    def answer(self, method: str, raw_path: str, headers: dict, body: bytes) -> Answer:
        """Record the request, apply latency and faults, then route it (called from the handler threads)."""
        split = urlsplit(raw_path)
        query = dict(parse_qsl(split.query))
        text = body.decode("utf-8", errors="replace")
        if split.path.startswith(CONTROL_PATH):
            return self._answer_control(method, split.path[len(CONTROL_PATH) :], query, text)
        if not split.path.startswith(ENDPOINT_PATH + "/"):
            return Answer(404, {"error": f"Not a Nucleus path: {split.path}"})
        relative_path = split.path[len(ENDPOINT_PATH) + 1 :]
        route_name, handler, params = UNKNOWN_ROUTE, None, {}
        for route_method, pattern, name, handler_name in COMPILED_ROUTES:
            match = pattern.fullmatch(relative_path)
            if match and route_method == method:
                route_name, handler = name, getattr(self, handler_name)
                params = {key: unquote(value) for key, value in match.groupdict().items()}
                break
        try:
            request_json, json_error = (parse_json(text), None) if text and route_name != "signed_upload" else (None, None)
        except (ValueError, RecursionError) as error:
            request_json, json_error = None, str(error)
        api_key = basic_auth_username(headers.get("authorization"))
        with self._lock:
            self.requests.append(
                RecordedRequest(method, unquote(relative_path), query, request_json, headers, api_key, route_name, text)
            )

        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(route_name)
        if isinstance(fault, FailureWindow):
            return Answer(fault.status, {"error": f"Injected failure window: HTTP {fault.status}"})
        if fault and fault.kind == "drop":
            return Answer(0, drop_connection=True)
        if fault and fault.kind == "fail":
            retry_headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            payload = fault.body if fault.body is not None else {"error": f"Injected fault: HTTP {fault.status}"}
            return Answer(fault.status, payload, retry_headers)
        if fault and fault.kind == "slow":
            time.sleep(fault.seconds)

        # The signed URL stands in for S3, which authorises by the URL itself, not by the API key.
        if route_name != "signed_upload" and api_key != self.api_key:
            return Answer(401, {"error": "Invalid API key: use HTTP Basic auth with the API key as username"})
        if json_error:
            return Answer(400, {"error": f"Invalid JSON body: {json_error}"})
        if handler is None:
            return Answer(404, {"error": f"No route for {method} {relative_path}"})
        if request_json is not None and not isinstance(request_json, dict):
            return Answer(400, {"error": "Input validation failed: the body must be a JSON object"})
        try:
            with self._lock:
                return Answer(200, handler(params=params, query=query, body=request_json or {}, text=text))
        except InvalidRequest as error:
            return Answer(error.status, {"error": error.message})

    def _dataset(self, dataset_id: str) -> FakeDataset:
        if dataset_id not in self._datasets:
            raise InvalidRequest(404, f"Dataset {dataset_id} does not exist")
        return self._datasets[dataset_id]

    # Route handlers run under self._lock and take (params, query, body, text) keyword arguments.

    def _answer_create_dataset(self, *, body, **_):
        if not isinstance(body.get("name"), str):
            raise InvalidRequest(400, "Input validation failed: name must be a string")
        return {"dataset_id": self._new_dataset(body["name"], bool(body.get("is_scene")), bool(body.get("use_privacy_mode")))}

    def _answer_info(self, *, params, **_):
        dataset = self._dataset(params["dataset_id"])
        return {
            "dataset_id": dataset.dataset_id,
            "name": dataset.name,
            "length": len(dataset.items) + len(dataset.scenes),
            "model_run_ids": [],
            "slice_ids": [],
            "annotation_metadata_schema": None,
            "item_metadata_schema": None,
            "tags": [],
        }

    def _answer_name(self, *, params, **_):
        return {"name": self._dataset(params["dataset_id"]).name}

    def _answer_is_scene(self, *, params, **_):
        return {"is_scene": self._dataset(params["dataset_id"]).is_scene}

    def _answer_use_privacy_mode(self, *, params, **_):
        return {"use_privacy_mode": self._dataset(params["dataset_id"]).use_privacy_mode}

    def _answer_add_taxonomy(self, *, params, body, **_):
        dataset = self._dataset(params["dataset_id"])
        taxonomy_name, labels = body.get("taxonomy_name"), body.get("labels")
        if body.get("type") != "category":
            raise InvalidRequest(400, f"Input validation failed: taxonomy type {body.get('type')!r} is not 'category'")
        labels_are_strings = isinstance(labels, list) and all(isinstance(label, str) for label in labels)
        if not isinstance(taxonomy_name, str) or not labels_are_strings:
            raise InvalidRequest(400, "Input validation failed: taxonomy_name must be a string and labels a list of strings")
        if taxonomy_name not in dataset.taxonomies:
            dataset.taxonomies[taxonomy_name] = list(dict.fromkeys(labels))
            status = "Taxonomy created"
        elif body.get("update"):
            existing = dataset.taxonomies[taxonomy_name]
            existing.extend(label for label in dict.fromkeys(labels) if label not in existing)
            status = "Taxonomy updated"
        else:
            status = "Taxonomy already exists"
        return {"dataset_id": dataset.dataset_id, "taxonomy_name": taxonomy_name, "status": status}

    def _answer_delete_taxonomy(self, *, params, **_):
        dataset, taxonomy_name = self._dataset(params["dataset_id"]), params["taxonomy_name"]
        if taxonomy_name not in dataset.taxonomies:
            raise InvalidRequest(404, f"Taxonomy {taxonomy_name} does not exist in dataset {dataset.dataset_id}")
        del dataset.taxonomies[taxonomy_name]
        dataset.annotations = {key: value for key, value in dataset.annotations.items() if key[1] != taxonomy_name}
        return {"dataset_id": dataset.dataset_id, "taxonomy_name": taxonomy_name, "status": "Taxonomy successfully deleted"}

    def _answer_annotate(self, *, params, query, body, **_):
        dataset = self._dataset(params["dataset_id"])
        update = bool(body.get("update"))
        if query.get("async") == "1":
            payloads = self._take_upload(body.get("requestId"))
            counts, errors = self._store_annotations(dataset, payloads, update)
            upload = {"epoch": 1, "total": len(payloads), "errored": len(errors), "datasetId": dataset.dataset_id, **counts}
            message = {"annotation_upload": upload}
            return self._finish_job("annotate", message, errors)
        payloads = body.get("annotations")
        if not isinstance(payloads, list):
            raise InvalidRequest(400, "Input validation failed: annotations must be a list")
        counts, errors = self._store_annotations(dataset, payloads, update)
        answer = {
            "dataset_id": dataset.dataset_id,
            "annotations_processed": counts["processed"],
            "annotations_ignored": counts["ignored"],
        }
        if errors:  # the contract marks "errors" optional: left out, a client that indexes it fails here, not live
            answer["errors"] = errors
        return answer

    def _store_annotations(self, dataset: FakeDataset, payloads: list, update: bool) -> tuple[dict, list[str]]:
        counts, errors = {"processed": 0, "ignored": 0}, []
        for payload in payloads:
            error = self._annotation_error(dataset, payload)
            if error:
                errors.append(error)
                continue
            key = (payload["reference_id"], payload["taxonomy_name"])
            if key in dataset.annotations and not update:
                counts["ignored"] += 1  # one label per (item, taxonomy): the first one stays
                continue
            dataset.annotations[key] = dict(payload)
            counts["processed"] += 1
        return counts, errors

    def _annotation_error(self, dataset: FakeDataset, payload: Any) -> str | None:
        if not isinstance(payload, dict):
            return annotation_error(f"Input validation failed: annotation {payload!r} is not an object", None, None)
        reference_id, taxonomy_name, label = payload.get("reference_id"), payload.get("taxonomy_name"), payload.get("label")
        if payload.get("type") != "category":
            reason = f"Input validation failed: annotation type {payload.get('type')!r} is not supported, only 'category'"
        elif reference_id not in dataset.items and reference_id not in dataset.scenes:
            reason = f"Item with reference_id '{reference_id}' does not exist in dataset {dataset.dataset_id}"
        elif taxonomy_name is None:
            # Real Nucleus files it under a "default taxonomy"; this project always names one.
            reason = "Input validation failed: taxonomy_name is required (this fake does not model the default taxonomy)"
        elif taxonomy_name not in dataset.taxonomies:
            reason = f"Input validation failed: Taxonomy {taxonomy_name} does not exist in dataset {dataset.dataset_id}"
        elif label not in dataset.taxonomies[taxonomy_name]:
            reason = f"Input validation failed: Label '{label}' is not in taxonomy {taxonomy_name}"
        elif not isinstance(payload.get("metadata", {}), dict):
            reason = "Input validation failed: metadata must be an object"
        else:
            return None
        return annotation_error(reason, reference_id, taxonomy_name)

    def _answer_signed_url(self, *, params, **_):
        self._dataset(params["dataset_id"])
        return {"signed_url": f"{self.endpoint}/signed_upload/{params['request_id']}"}

    def _answer_signed_upload(self, *, params, text, **_):
        try:
            self._uploads[params["request_id"]] = [parse_json(line) for line in text.splitlines() if line.strip()]
        except ValueError as error:
            raise InvalidRequest(400, f"Invalid NDJSON line: {error}") from error
        return {}

    def _take_upload(self, request_id: Any) -> list:
        if request_id not in self._uploads:
            raise InvalidRequest(400, f"Input validation failed: no upload for requestId {request_id!r}")
        return self._uploads.pop(request_id)

    def _answer_append(self, *, params, body, **_):
        items = self._dataset(params["dataset_id"]).items
        return self._store_signed_upload_as_job(items, body, ITEM_LOCATION_KEYS, job_type="appendDatasetItems")

    def _answer_upload_scenes(self, *, params, body, **_):
        scenes = self._dataset(params["dataset_id"]).scenes
        return self._store_signed_upload_as_job(scenes, body, SCENE_LOCATION_KEYS, job_type="uploadScenes")

    def _store_signed_upload_as_job(self, stored: dict, body: dict, required_url_keys: tuple, job_type: str) -> dict:
        uploads = self._take_upload(body.get("requestId"))
        errors = self._store_uploads(stored, uploads, bool(body.get("update")), required_url_keys)
        return self._finish_job(job_type, {"total": len(uploads), "errored": len(errors)}, errors)

    def _store_uploads(self, stored: dict, uploads: list, update: bool, required_url_keys: tuple) -> list[str]:
        """Store items or scenes by reference_id: a known one is kept unless `update` (Nucleus's append rule)."""
        errors = []
        for upload in uploads:
            located = isinstance(upload, dict) and any(upload.get(key) for key in required_url_keys)
            if not located or not upload.get("reference_id"):
                needed = ", ".join(required_url_keys)
                errors.append(f"Input validation failed: {upload!r} needs a reference_id and one of {needed}")
                continue
            if upload["reference_id"] in stored and not update:
                continue
            stored[upload["reference_id"]] = {"metadata": {}, **upload, "dataset_item_id": f"di_{next(self._ids)}"}
        return errors

    def _finish_job(self, job_type: str, message: Any, errors: list[str]) -> dict:
        """Jobs complete at once: the status says so on the first poll."""
        job_id = f"job_{next(self._ids)}"
        self._jobs[job_id] = {
            "job_id": job_id,
            "job_type": job_type,
            "job_creation_time": datetime.now(timezone.utc).isoformat(),
            "status": "Errored_Partial" if errors else "Completed",
            "message": message,
            "errors": errors,
        }
        return self._job_info(job_id)

    def _job(self, job_id: str) -> dict:
        if job_id not in self._jobs:
            raise InvalidRequest(404, f"Job {job_id} does not exist")
        return self._jobs[job_id]

    def _job_info(self, job_id: str) -> dict:
        job = self._job(job_id)
        info = {key: job[key] for key in ("job_id", "job_type", "job_creation_time")}
        return info | {"job_last_known_status": job["status"]}

    def _answer_job_status(self, *, params, **_):
        job = self._job(params["job_id"])
        return {
            "job_id": job["job_id"],
            "status": job["status"],
            "message": job["message"],
            "job_progress": "1.00",
            "completed_steps": 1,
            "total_steps": 1,
        }

    def _answer_job_errors(self, *, params, **_):
        return list(self._job(params["job_id"])["errors"])

    def _answer_job_info(self, *, params, **_):
        return self._job_info(params["job_id"])

    def _answer_refloc(self, *, params, **_):
        dataset, reference_id = self._dataset(params["dataset_id"]), params["reference_id"]
        if reference_id not in dataset.items:
            raise InvalidRequest(404, f"Item with reference_id '{reference_id}' does not exist in dataset {dataset.dataset_id}")
        categories = self._item_categories(dataset, reference_id)
        return {"item": dict(dataset.items[reference_id]), "annotations": {"category": categories}}

    def _item_categories(self, dataset: FakeDataset, reference_id: str) -> list[dict]:
        return [dict(payload) for (annotated, _), payload in dataset.annotations.items() if annotated == reference_id]

    def _answer_dataset_items(self, *, params, **_):
        return {"dataset_items": [dict(item) for item in self._dataset(params["dataset_id"]).items.values()]}

    def _answer_items_page(self, *, params, body, **_):
        page, next_token = page_of(list(self._dataset(params["dataset_id"]).items.values()), body)
        return {"items": [dict(item) for item in page], "nextPageToken": next_token}

    def _answer_export_items_page(self, *, params, body, **_):
        dataset = self._dataset(params["dataset_id"])
        page, next_token = page_of(list(dataset.items.values()), body)
        rows = [
            {annotation_type: [] for annotation_type in EXPORT_ANNOTATION_TYPES}
            | {"item": dict(item), "category": self._item_categories(dataset, item["reference_id"])}
            for item in page
        ]
        return {"data": rows, "nextPageToken": next_token}

    def _answer_export_scenes_page(self, *, params, body, **_):
        page, next_token = page_of(list(self._dataset(params["dataset_id"]).scenes.values()), body)
        rows = [
            {
                "scene": {
                    "id": scene["dataset_item_id"],
                    "reference_id": scene["reference_id"],
                    "metadata": scene.get("metadata", {}),
                    "type": "video",
                    "fileLocation": scene.get("video_url", ""),
                },
                "annotations": {},  # keyed by track id on the real server; category scenes have no tracks
            }
            for scene in page
        ]
        return {"data": rows, "nextPageToken": next_token}

    # -- control API for other processes ----------------------------------------------------------

    def _answer_control(self, method: str, action: str, query: dict, text: str) -> Answer:
        """The /_fake/ JSON API that FakeNucleusRemote speaks; never recorded, never faulted."""
        try:
            body = parse_json(text) if text else {}
            if (method, action) == ("GET", "config"):
                return Answer(200, {"endpoint": self.endpoint, "api_key": self.api_key, "latency": self.latency})
            if (method, action) == ("GET", "requests"):
                with self._lock:
                    return Answer(200, [dataclasses.asdict(request) for request in self.requests])
            if (method, action) == ("GET", "taxonomies"):
                return Answer(200, self.taxonomies(query["dataset_id"]))
            if (method, action) == ("GET", "annotations"):
                return Answer(200, list(self.annotations(query["dataset_id"]).values()))
            if (method, action) == ("POST", "datasets"):
                return Answer(200, {"dataset_id": self.create_dataset(**body)})
            if (method, action) == ("POST", "items"):
                return Answer(200, {"errors": self.add_items(**body)})
            if (method, action) == ("POST", "scenes"):
                return Answer(200, {"errors": self.add_scenes(**body)})
            if (method, action) == ("POST", "faults") and body.get("method") in REMOTE_FAULT_METHODS:
                getattr(self, body["method"])(**body.get("kwargs", {}))
                return Answer(200, {})
        except (InvalidRequest, KeyError, TypeError, ValueError) as error:
            return Answer(getattr(error, "status", 400), {"error": str(error)})
        return Answer(404, {"error": f"No control route for {method} /_fake/{action}"})


REMOTE_FAULT_METHODS = {"fail_next", "drop_next", "slow_next", "fail_for", "reset_faults", "set_latency"}


class FakeNucleusHandler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self):
        self.serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.fake.answer(self.command, self.path, headers, body)
        if answer.drop_connection:
            self.close_connection = True  # the server closes the socket unanswered: a ConnectionError for the SDK
            return
        if isinstance(answer.payload, str):
            encoded, content_type = answer.payload.encode(), "text/plain; charset=utf-8"
        else:
            encoded, content_type = json.dumps(answer.payload).encode(), "application/json"
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(encoded)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format, *args):
        """Silent: a test run would otherwise print one line per request."""

    def handle_one_request(self):
        # A client that timed out has closed its socket before a slow answer; that is expected, not an error.
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class FakeNucleusRemote:
    """Drives a FakeNucleus running in another process through its /_fake/ control API.

    Pass the endpoint the process printed (or its base URL); the method names are FakeNucleus's.
    """

    def __init__(self, url: str):
        split = urlsplit(url)
        self.base_url = f"{split.scheme}://{split.netloc}"
        config = self._call("GET", "config")
        self.endpoint, self.api_key = config["endpoint"], config["api_key"]

    def _call(self, method: str, action: str, body: Any = None) -> Any:
        """One control API call; its JSON error becomes the InvalidRequest that FakeNucleus raises in-process."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{CONTROL_PATH}{action}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise InvalidRequest(error.code, json.loads(error.read())["error"]) from error

    @property
    def latency(self) -> float:
        return self._call("GET", "config")["latency"]

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.set_latency(seconds)

    def create_dataset(self, name: str, is_scene: bool = False, use_privacy_mode: bool = False) -> str:
        body = {"name": name, "is_scene": is_scene, "use_privacy_mode": use_privacy_mode}
        return self._call("POST", "datasets", body)["dataset_id"]

    def add_items(self, dataset_id: str, items: list[dict], update: bool = False) -> list[str]:
        return self._call("POST", "items", {"dataset_id": dataset_id, "items": items, "update": update})["errors"]

    def add_scenes(self, dataset_id: str, scenes: list[dict], update: bool = False) -> list[str]:
        return self._call("POST", "scenes", {"dataset_id": dataset_id, "scenes": scenes, "update": update})["errors"]

    def taxonomies(self, dataset_id: str) -> dict[str, list[str]]:
        return self._call("GET", f"taxonomies?dataset_id={dataset_id}")

    def annotations(self, dataset_id: str) -> dict[tuple[str, str], dict]:
        payloads = self._call("GET", f"annotations?dataset_id={dataset_id}")
        return {(payload["reference_id"], payload["taxonomy_name"]): payload for payload in payloads}

    def labels(self, dataset_id: str) -> dict[tuple[str, str], str]:
        return labels_of(self.annotations(dataset_id))

    @property
    def requests(self) -> list[RecordedRequest]:
        return [RecordedRequest(**fields) for fields in self._call("GET", "requests")]

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return requests_matching(self.requests, route)

    def _fault(self, method: str, **kwargs) -> None:
        self._call("POST", "faults", {"method": method, "kwargs": kwargs})

    def fail_next(self, status: int = 429, times: int = 1, route: str | None = None, retry_after=None, body=None) -> None:
        self._fault("fail_next", status=status, times=times, route=route, retry_after=retry_after, body=body)

    def drop_next(self, times: int = 1, route: str | None = None) -> None:
        self._fault("drop_next", times=times, route=route)

    def slow_next(self, seconds: float, times: int = 1, route: str | None = None) -> None:
        self._fault("slow_next", seconds=seconds, times=times, route=route)

    def fail_for(self, seconds: float, status: int = 503, route: str | None = None) -> None:
        self._fault("fail_for", seconds=seconds, status=status, route=route)

    def reset_faults(self) -> None:
        self._fault("reset_faults")

    def set_latency(self, seconds: float) -> None:
        self._fault("set_latency", seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Scale Nucleus until killed; prints the endpoint first.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    arguments = parser.parse_args()
    fake = FakeNucleus(api_key=arguments.api_key, host=arguments.host, port=arguments.port, latency=arguments.latency)
    print(fake.endpoint, flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way to stop it by hand


if __name__ == "__main__":
    main()
