"""The one settings module.

Every value comes from the environment and has a default that works with nothing set: SQLite in the
project folder, media on local disk, Celery tasks run eagerly in-process. Setting the production
variables (DATABASE_URL, CELERY_BROKER_URL or REDIS_URL, SECRET_KEY, DEBUG=false, ALLOWED_HOSTS, ...)
switches each part to its production counterpart. Bad values fail loudly at start-up instead of being
guessed at. Importing this module has no side effects: it reads variables, it creates nothing.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    # Only for the embedded development default; production refuses to start without a real key.
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "taxonomies",
    "labeling",
    "accounts",
    "audit",
]

MIDDLEWARE = [
    # GET/HEAD /health/ before anything checks the Host header: load balancers probe by address.
    "config.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # CONTENT_SECURITY_POLICY on every response (see "Content Security Policy and sign-in" below).
    "config.csp.ContentSecurityPolicyMiddleware",
    # Static files from STATIC_ROOT (compressed, hashed names, cached forever) before anything that
    # reads the session or the database.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A NUL in the query, the URL's parameters or a header is a 400 before any view (or the session) reads it.
    "config.unstorable_text.UnstorableTextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who is acting, for the audit log of services that are not told (audit/context.py).
    "audit.context.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL switches to PostgreSQL (postgres://user@host:port/name). The default is a SQLite file
# in WAL mode with IMMEDIATE transactions, so that concurrent writers queue on the lock instead of
# failing with "database is locked" when a read transaction tries to upgrade to a write.
SQLITE_PATH = Path(env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")))
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Tests use a file as well: Django's default in-memory test database has a shared cache
            # whose table locks fail at once ("database table is locked") instead of waiting out the
            # timeout, so concurrency tests would not see the locking that production sees.
            "TEST": {"NAME": SQLITE_PATH.with_name(f"test_{SQLITE_PATH.name}")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and media -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# In development static files come straight from the app folders (WhiteNoise looks them up on every
# request). In production `manage.py collectstatic` copies them to STATIC_ROOT under hashed names,
# with gzip copies, and WhiteNoise serves them from there with a far-future max-age.
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
# Uploaded images live on the local disk (MEDIA_ROOT) or, with MEDIA_STORAGE=s3, in an S3-compatible
# bucket. Either way a browser asks this site's /media/ view, which checks membership first; for the
# bucket it answers with a redirect to a presigned URL that expires after AWS_QUERYSTRING_EXPIRE
# seconds, so the bucket itself stays private.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "filesystem")
if MEDIA_STORAGE == "filesystem":
    MEDIA_STORAGE_BACKEND = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif MEDIA_STORAGE == "s3":
    MEDIA_STORAGE_BACKEND = {
        "BACKEND": "config.s3.MembersOnlyS3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            # Unset: AWS itself. Set for MinIO, Ceph, R2, ... (https://minio.example.com:9000).
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            # "path" for services that do not serve <bucket>.<host> (MinIO without a domain).
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE") or None,
            "signature_version": "s3v4",
            # Unset: boto3's own chain (instance role, ~/.aws, ...).
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 300),
            # Objects are private whatever the bucket's default ACL says.
            "default_acl": "private",
        },
    }
    if not MEDIA_STORAGE_BACKEND["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
else:
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be filesystem or s3, not {MEDIA_STORAGE!r}")
STORAGES = {
    "default": MEDIA_STORAGE_BACKEND,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "config.storage.CompressedManifestStaticFilesStorage"
    },
}

# Uploaded images are refused above these caps (decompression bombs included).
MAX_IMAGE_UPLOAD_BYTES = env_int("MAX_IMAGE_UPLOAD_BYTES", 50 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 100_000_000)
# The pixels of all the images of one upload request (or one items_import / scenes_import call)
# together: each is decoded once by a verification child, so this bounds what one request costs.
MAX_IMAGE_PIXELS_PER_REQUEST = env_int("MAX_IMAGE_PIXELS_PER_REQUEST", 500_000_000)
# The request checks only an upload's header; the full decode runs in a child process (python -m
# labeling.image_verify) under these hard limits (resource.setrlimit RLIMIT_CPU and RLIMIT_AS),
# started by a Celery worker, or after the request's commit in eager mode. Pillow keeps 4 bytes a
# pixel (RGB too), so an image at the 100 MP cap needs ~415 MB of address space. A child over a
# limit is killed and its item's image is marked failed; so is one still running after the timeout.
IMAGE_VERIFY_CPU_SECONDS = env_int("IMAGE_VERIFY_CPU_SECONDS", 10)
IMAGE_VERIFY_MEMORY_MB = env_int("IMAGE_VERIFY_MEMORY_MB", 640)
IMAGE_VERIFY_TIMEOUT_SECONDS = env_int("IMAGE_VERIFY_TIMEOUT_SECONDS", 30)
# `celery beat` re-enqueues the verification of uploads still pending after this many seconds (a
# message lost with the broker, a worker gone): the item rows are the truth, not the queue.
IMAGE_VERIFY_SWEEP_SECONDS = env_int("IMAGE_VERIFY_SWEEP_SECONDS", 300)
if min(MAX_IMAGE_PIXELS_PER_REQUEST, IMAGE_VERIFY_CPU_SECONDS, IMAGE_VERIFY_MEMORY_MB, IMAGE_VERIFY_TIMEOUT_SECONDS, IMAGE_VERIFY_SWEEP_SECONDS) < 1:
    raise ImproperlyConfigured("MAX_IMAGE_PIXELS_PER_REQUEST and the IMAGE_VERIFY_* settings must be at least 1")

# --- Uploaded images on Nucleus -------------------------------------------------------------
# Nucleus fetches every image it is given by URL. An uploaded image reaches it as this prefix
# followed by the stored name (items/<dataset id>/<name>.png): a bucket or a web server that serves
# MEDIA_ROOT to anyone. Not this site's /media/, which serves images to dataset members only.
# Empty: push_nucleus_items refuses datasets with uploaded images.
PUBLIC_MEDIA_URL = env_str("PUBLIC_MEDIA_URL")
if PUBLIC_MEDIA_URL and not PUBLIC_MEDIA_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"PUBLIC_MEDIA_URL must be an http(s) URL, not {PUBLIC_MEDIA_URL!r}")

# --- Celery ---------------------------------------------------------------------------------
# With no broker configured (the embedded default) tasks run eagerly, in the calling process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged message after the visibility timeout; every task's hard time
# limit stays below it so a slow task is never run twice at once.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    # Publishing (from a web request, after its commit) gives up at once when the broker is down,
    # instead of retrying for ~6 s: the outbox keeps the work and the sweep enqueues it later.
    # Workers reconnect by their own rules (broker_connection_retry), not these.
    "max_retries": 1,
    "interval_start": 0,
    "socket_connect_timeout": 5,
}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1800)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
if CELERY_TASK_TIME_LIMIT >= CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT must be below CELERY_VISIBILITY_TIMEOUT")

# --- Nucleus --------------------------------------------------------------------------------
# Without an API key the sync stays pending (and says why) instead of failing.
NUCLEUS_API_KEY = env_str("NUCLEUS_API_KEY")
NUCLEUS_ENDPOINT = env_str("NUCLEUS_ENDPOINT", "https://api.scale.com/v1/nucleus")
# Payloads per annotate request (a multi-label annotation is one payload per label of its taxonomy).
NUCLEUS_BATCH_SIZE = env_int("NUCLEUS_BATCH_SIZE", 5000)
# Connect and read timeout of each request to Nucleus (the SDK's own default is 120 s).
NUCLEUS_TIMEOUT_SECONDS = env_int("NUCLEUS_TIMEOUT_SECONDS", 120)
# A worker holds the batch it is sending this long; if it dies, the batch is sent again after that.
# Renewed right before the annotate request, so it must outlast one request.
NUCLEUS_SYNC_CLAIM_SECONDS = env_int("NUCLEUS_SYNC_CLAIM_SECONDS", 600)
# Retries of 429, 5xx, timeouts and broken connections: exponential backoff with equal jitter from
# BASE up to MAX seconds (or what Retry-After asks), then the annotation is marked failed.
NUCLEUS_SYNC_MAX_ATTEMPTS = env_int("NUCLEUS_SYNC_MAX_ATTEMPTS", 8)
NUCLEUS_SYNC_BACKOFF_BASE_SECONDS = env_int("NUCLEUS_SYNC_BACKOFF_BASE_SECONDS", 10)
NUCLEUS_SYNC_BACKOFF_MAX_SECONDS = env_int("NUCLEUS_SYNC_BACKOFF_MAX_SECONDS", 3600)
# How often `celery beat` re-enqueues datasets with annotations waiting (lost messages, retries due,
# batches of a worker that died).
NUCLEUS_SYNC_SWEEP_SECONDS = env_int("NUCLEUS_SYNC_SWEEP_SECONDS", 60)
# After an answer is stored, its sync starts this many seconds later, so the answers of that moment
# go to Nucleus in one request instead of one each; a web process publishes at most one such sync
# per dataset in half that time (0: start at once, one sync per answer).
NUCLEUS_SYNC_GATHER_SECONDS = env_int("NUCLEUS_SYNC_GATHER_SECONDS", 2)
if NUCLEUS_BATCH_SIZE < 1 or NUCLEUS_SYNC_MAX_ATTEMPTS < 1 or NUCLEUS_SYNC_SWEEP_SECONDS < 1:
    raise ImproperlyConfigured(
        "NUCLEUS_BATCH_SIZE, NUCLEUS_SYNC_MAX_ATTEMPTS and NUCLEUS_SYNC_SWEEP_SECONDS must be at least 1"
    )
if NUCLEUS_SYNC_CLAIM_SECONDS <= NUCLEUS_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("NUCLEUS_SYNC_CLAIM_SECONDS must be above NUCLEUS_TIMEOUT_SECONDS")
CELERY_BEAT_SCHEDULE = {
    "labeling-sync-sweep": {
        "task": "labeling.sync_sweep",
        "schedule": NUCLEUS_SYNC_SWEEP_SECONDS,
        # A sweep that waited longer than the next one is useless: drop it instead of piling up.
        "options": {"expires": NUCLEUS_SYNC_SWEEP_SECONDS},
    },
}

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes an anonymous request a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Ours: they refuse text that cannot be stored, bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (413) and
    # files where a view takes none (labeling/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.JSONParser",
        "labeling.api.parsers.FormParser",
        "labeling.api.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "labeling.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "labeling.api.errors.exception_handler",
    # NaN and Infinity are parsed so that validation can name the row and field that holds them
    # (and refuse them: Nucleus does) instead of failing the whole body with a parse error.
    "STRICT_JSON": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Labeling API",
    "DESCRIPTION": "Category labels for images and scenes, in Scale Nucleus's vocabulary.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's assets are served from here, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security -------------------------------------------------------------------------------
# Off in development (plain http on localhost); on by default in production, each overridable for
# a deployment behind a proxy that terminates TLS.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# No script reads either cookie: the pages get the CSRF token from the HTML (json_script, forms).
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# Lax: a link from elsewhere arrives signed in, a cross-site POST arrives without the cookies.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers and monitors probe the health check over plain http on the private network.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Content Security Policy and sign-in -----------------------------------------------------
# No inline script or style anywhere (the admin and the API docs included). Images and videos may
# come from other hosts: an item's image_url and a scene's video_url are any http(s) URL.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "media-src 'self' https: http:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'",
)
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_bool("CONTENT_SECURITY_POLICY_REPORT_ONLY", False)
# Sign-ins are counted in the database (accounts.LoginThrottle), shared by every web process.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_IP_FAILURE_LIMIT = env_int("LOGIN_IP_FAILURE_LIMIT", 50)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
# Behind a proxy, the header whose last address is the client's (X-Forwarded-For); else REMOTE_ADDR.
LOGIN_CLIENT_IP_HEADER = env_str("LOGIN_CLIENT_IP_HEADER")
# Counts whose window and lock are over are deleted hourly (they already count as a fresh start).
CELERY_BEAT_SCHEDULE["accounts-purge-login-throttles"] = {"task": "accounts.purge_login_throttles", "schedule": 3600}
# Uploads whose verification is pending for longer than IMAGE_VERIFY_SWEEP_SECONDS are enqueued again.
CELERY_BEAT_SCHEDULE["labeling-image-verify-sweep"] = {
    "task": "labeling.items_verify_images_sweep",
    "schedule": IMAGE_VERIFY_SWEEP_SECONDS,
    "options": {"expires": IMAGE_VERIFY_SWEEP_SECONDS},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:dataset-list"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Taxonomies belong to a dataset, but the taxonomies app must not import the labeling app
# (dependencies run one way); it reaches the dataset model through this setting, the way
# contrib apps reach AUTH_USER_MODEL. That model has a `taxonomies_revision` integer field, which
# taxonomies.services bumps on every change.
TAXONOMIES_DATASET_MODEL = "labeling.Dataset"
# The datasets a staff user manages in the Django admin (a function taking `user=`, returning a
# queryset of that model): the audit app's admin scopes its pages with it without importing labeling.
ADMIN_DATASET_SCOPE = "labeling.selectors.dataset_list_administered_by"

# --- Labeling queue -------------------------------------------------------------------------
# How long a labeler holds a task before it goes back to the queue.
LABELING_LEASE_SECONDS = env_int("LABELING_LEASE_SECONDS", 600)

# --- Remote images --------------------------------------------------------------------------
# A server-side fetch of an item's image_url (for its size) refuses loopback, private, link-local
# and metadata addresses, so that a URL cannot make the server probe its own network. An
# on-premise bucket on such an address is let through by CIDR or by host name.
REMOTE_IMAGE_ALLOWED_NETWORKS = env_list("REMOTE_IMAGE_ALLOWED_NETWORKS", [])
REMOTE_IMAGE_ALLOWED_HOSTS = env_list("REMOTE_IMAGE_ALLOWED_HOSTS", [])
# Applies to the connection and to each read, not to the whole download (the byte cap bounds that).
REMOTE_IMAGE_TIMEOUT_SECONDS = env_int("REMOTE_IMAGE_TIMEOUT_SECONDS", 10)
# Fetch the size of images imported by URL in the background. Off without a broker: eager tasks
# would make an import wait for every download.
REMOTE_IMAGE_SIZES = env_bool("REMOTE_IMAGE_SIZES", bool(CELERY_BROKER_URL))
