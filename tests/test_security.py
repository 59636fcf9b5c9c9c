"""Security guarantees outside the browser: the CSP header, the sign-in throttle and lockout (kept in
the database, so every process sees it), and CSRF protection of every form of every page."""

import re
from datetime import timedelta
from html.parser import HTMLParser
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.backends import ModelBackend
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import LoginThrottle
from accounts.services import ThrottleKey, login_attempt_start, login_throttles_purge
from tests.factories import ItemFactory, UserFactory
from tests.test_project import run_with_env

pytestmark = pytest.mark.django_db

LOGIN_URLS = ["/accounts/login/", "/admin/login/", "/api/auth/login/"]


# --- Content Security Policy ----------------------------------------------------------------


def test_every_response_carries_the_strict_policy(client, admin, dataset):
    client.force_login(admin)
    for url in ["/", f"/datasets/{dataset.id}/label/", "/api/v1/datasets/", "/accounts/login/"]:
        policy = client.get(url)["Content-Security-Policy"]
        assert policy == settings.CONTENT_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in settings.CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"


def test_the_policy_can_be_report_only(client, settings):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = True
    response = client.get("/accounts/login/")
    assert "Content-Security-Policy" not in response
    assert response["Content-Security-Policy-Report-Only"] == settings.CONTENT_SECURITY_POLICY


# --- Sign-in throttle -----------------------------------------------------------------------


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_IP_FAILURE_LIMIT = 5
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600
    settings.LOGIN_LOCKOUT_SECONDS = 900
    return settings


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", password="right-password", is_staff=True)


def sign_in(url: str, username: str, password: str, address: str = "10.0.0.1"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(url, {"username": username, "password": password})
    return response, "_auth_user_id" in client.session


def form_errors(response) -> str:
    return " ".join(response.context["form"].non_field_errors()) if response.context else ""


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_a_username_is_locked_after_the_limit_even_with_the_right_password(limits, alice, url):
    for _ in range(2):
        response, signed_in = sign_in(url, "alice", "wrong")
        assert not signed_in and "Too many" not in form_errors(response)
    response, _ = sign_in(url, "alice", "wrong")
    assert response.status_code == 200 and "Too many failed sign-ins" in form_errors(response)
    # From another address too: the username's lock holds wherever the guesses come from.
    response, signed_in = sign_in(url, "alice", "right-password", address="10.9.9.9")
    assert response.status_code == 200 and not signed_in
    assert "Try again in 15 minute(s)" in form_errors(response)


def test_the_username_lock_ignores_case(limits, alice):
    for name in ["Alice", "ALICE", "alice"]:
        sign_in("/accounts/login/", name, "wrong")
    assert not sign_in("/accounts/login/", "alice", "right-password", address="10.9.9.9")[1]


def test_the_lock_ends_after_the_lockout(limits, alice):
    for _ in range(3):
        sign_in("/accounts/login/", "alice", "wrong")
    LoginThrottle.objects.update(locked_until=timezone.now() - timedelta(seconds=1), window_started_at=timezone.now() - timedelta(hours=1))
    assert sign_in("/accounts/login/", "alice", "right-password")[1]


def test_a_successful_sign_in_resets_the_username_count(limits, alice):
    for _ in range(2):
        sign_in("/accounts/login/", "alice", "wrong")
    assert sign_in("/accounts/login/", "alice", "right-password")[1]
    for _ in range(2):
        sign_in("/accounts/login/", "alice", "wrong")
    assert sign_in("/accounts/login/", "alice", "right-password")[1]


def test_failures_outside_the_window_start_a_new_count(limits, alice):
    for _ in range(2):
        sign_in("/accounts/login/", "alice", "wrong")
    LoginThrottle.objects.update(window_started_at=timezone.now() - timedelta(seconds=601))
    sign_in("/accounts/login/", "alice", "wrong")
    assert LoginThrottle.objects.get(scope="username").failures == 1
    assert sign_in("/accounts/login/", "alice", "right-password")[1]


def test_an_address_is_locked_after_its_limit_across_usernames(limits, alice):
    for n in range(5):
        sign_in("/accounts/login/", f"guess{n}", "wrong", address="10.6.6.6")
    response, signed_in = sign_in("/accounts/login/", "alice", "right-password", address="10.6.6.6")
    assert not signed_in and "Too many failed sign-ins" in form_errors(response)
    # Alice herself, from her own address, is not locked out by the guesser.
    assert sign_in("/accounts/login/", "alice", "right-password", address="10.0.0.1")[1]


def test_a_proxy_header_names_the_client_when_configured(limits, alice):
    limits.LOGIN_CLIENT_IP_HEADER = "X-Forwarded-For"
    for n in range(5):
        Client(REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 10.6.6.6").post("/accounts/login/", {"username": f"guess{n}", "password": "x"})
    assert LoginThrottle.objects.get(scope="ip").key == "10.6.6.6"
    response = Client(REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="10.6.6.6").post("/accounts/login/", {"username": "alice", "password": "right-password"})
    assert "Too many failed sign-ins" in form_errors(response)


def test_every_authenticate_call_is_throttled_not_only_the_forms(limits, alice):
    client = Client()
    for _ in range(3):
        assert not client.login(username="alice", password="wrong")
    assert not client.login(username="alice", password="right-password")


def test_the_purge_deletes_only_counts_that_are_over(limits, alice):
    sign_in("/accounts/login/", "alice", "wrong")
    for _ in range(3):
        sign_in("/accounts/login/", "bob", "wrong", address="10.1.1.1")
    old = timezone.now() - timedelta(hours=1)
    LoginThrottle.objects.filter(key__in=["alice", "10.0.0.1"]).update(window_started_at=old)
    LoginThrottle.objects.filter(key="bob").update(window_started_at=old)  # still locked
    assert login_throttles_purge() == 2
    assert set(LoginThrottle.objects.values_list("key", flat=True)) == {"bob", "10.1.1.1"}


def test_attempts_are_counted_on_the_existing_row_up_to_the_lock(limits, alice):
    key = ThrottleKey(LoginThrottle.Scope.USERNAME, "carol", 3)
    LoginThrottle.objects.create(scope=key.scope, key=key.key, failures=1, window_started_at=timezone.now())
    assert login_attempt_start(keys=[key]) is not None
    assert login_attempt_start(keys=[key]) is not None
    row = LoginThrottle.objects.get(key="carol")
    assert (row.failures, row.locked_until is not None) == (3, True)
    assert login_attempt_start(keys=[key]) is None


def test_guesses_in_flight_when_the_lock_is_set_never_get_their_password_checked(limits, alice):
    """Each guess arrives while the one before it is still hashing its password, as on several web
    workers at once: only LOGIN_FAILURE_LIMIT of them get a password check, the rest are refused."""
    checked = []
    check = ModelBackend.authenticate

    def slow_check(self, request, username=None, password=None, **kwargs):
        checked.append(password)
        if len(checked) < 10:
            authenticate(username="alice", password=f"guess{len(checked)}")
        return check(self, request, username=username, password=password, **kwargs)

    with mock.patch.object(ModelBackend, "authenticate", slow_check):
        assert authenticate(username="alice", password="guess0") is None

    assert checked == ["guess0", "guess1", "guess2"]
    row = LoginThrottle.objects.get(scope="username")
    assert (row.failures, row.locked_until is not None) == (3, True)
    assert authenticate(username="alice", password="right-password") is None


def test_a_refused_sign_in_is_not_counted(limits, alice):
    for _ in range(5):
        sign_in("/accounts/login/", "alice", "wrong")
    assert LoginThrottle.objects.get(scope="username").failures == 3
    assert LoginThrottle.objects.get(scope="ip").failures == 3


def test_a_successful_sign_in_does_not_count_against_its_address(limits, alice):
    for n in range(4):
        sign_in("/accounts/login/", f"guess{n}", "wrong", address="10.6.6.6")
    # The address's fifth attempt reaches its limit while it runs, and is taken back when it succeeds.
    assert sign_in("/accounts/login/", "alice", "right-password", address="10.6.6.6")[1]
    row = LoginThrottle.objects.get(scope="ip")
    assert (row.failures, row.locked_until) == (4, None)
    assert not LoginThrottle.objects.filter(scope="username", key="alice").exists()
    response, _ = sign_in("/accounts/login/", "guess4", "wrong", address="10.6.6.6")
    assert "Too many failed sign-ins" in form_errors(response)


@pytest.mark.django_db(transaction=True)
def test_the_lock_holds_in_another_process(limits, settings):
    """Several gunicorn workers share the lock because it is in the database: a second Python
    process, on the same database, refuses alice's right password after this one saw the failures."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    UserFactory(username="alice", password="right-password")
    UserFactory(username="dave", password="right-password")
    for _ in range(3):
        sign_in("/accounts/login/", "alice", "wrong")
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        env = {"SQLITE_PATH": str(database["NAME"])}
    else:
        env = {"DATABASE_URL": f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"}
    script = (
        "import django; django.setup(); from django.contrib.auth import authenticate; "
        "print([getattr(authenticate(username=name, password='right-password'), 'username', None) for name in ('alice', 'dave')])"
    )
    result = run_with_env(["-c", script], **env, LOGIN_FAILURE_LIMIT="3")
    assert result.returncode == 0, result.stderr
    # dave (never failed) signs in there, so that process does see this database; alice is refused.
    assert result.stdout.strip() == "[None, 'dave']"


# --- CSRF -----------------------------------------------------------------------------------


class FormParser(HTMLParser):
    """The POST forms of a page: their action and whether they carry the CSRF token."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._open = {"method": (attrs.get("method") or "get").lower(), "action": attrs.get("action") or "", "token": False}
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and attrs.get("name") == "csrfmiddlewaretoken" and attrs.get("value"):
            self._open["token"] = True

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def every_url(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from every_url(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def concrete(route: str, pattern: URLPattern, values: dict) -> str | None:
    """The route with its parameters filled in, or None when it has one we have no value for."""
    if route.startswith("^") or "(?P<" in route:  # the admin's regex routes: the app index and the catch-all
        return None
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    if "object_id" in names:
        model_admin = getattr(pattern.callback, "model_admin", None)
        if model_admin is None or not model_admin.model.objects.exists():
            return None
        values = {**values, "object_id": model_admin.model.objects.first().pk}
    if any(name not in values for name in names):
        return None
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(values[match.group(1)]), route)


@pytest.fixture
def everything(dataset, admin, labeler, superuser):
    """One row of each kind, so that the admin's change pages and the dataset pages have something to show."""
    from labeling.services.annotations import annotation_save
    from taxonomies.services import taxonomy_create

    taxonomy = taxonomy_create(dataset=dataset, taxonomy_name="clothing", labels=["shirt"])
    item = ItemFactory(dataset=dataset, reference_id="img-1")
    annotation_save(target=item, taxonomy=taxonomy, labels=[taxonomy.labels.get()], annotator=labeler, finished=True)
    return {"dataset_id": dataset.id, "app_label": "labeling", "taxonomy_name": "clothing", "reference_id": "img-1"}


def test_every_post_form_of_every_page_carries_the_csrf_token_and_needs_it(everything, superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    checked_pages, checked_forms = [], 0
    for route, pattern in every_url(get_resolver().url_patterns):
        url = concrete(route, pattern, everything)
        if url is None or url.startswith(("/api/v1/", "/media/")) or "logout" in url or "/delete/" in url:
            continue
        response = client.get(url)
        if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
            continue
        parser = FormParser()
        parser.feed(response.content.decode())
        checked_pages.append(url)
        for form in (form for form in parser.forms if form["method"] == "post"):
            assert form["token"], f"a POST form of {url} has no CSRF token"
            checked_forms += 1
            # The same POST without the token is refused.
            target = form["action"] or url
            assert client.post(target, {}).status_code == 403, f"{target} accepted a POST without a CSRF token"
    anonymous = Client(enforce_csrf_checks=True)
    for url in LOGIN_URLS:
        parser = FormParser()
        parser.feed(anonymous.get(url).content.decode())
        assert [form["token"] for form in parser.forms if form["method"] == "post"] == [True], url
        assert anonymous.post(url, {"username": "x", "password": "y"}).status_code == 403
    # The walk reached the site's own pages and the admin's forms, not only a handful of pages.
    for expected in ["/", f"/datasets/{everything['dataset_id']}/sync/", f"/datasets/{everything['dataset_id']}/audit/", "/admin/labeling/dataset/add/"]:
        assert expected in checked_pages
    assert len(checked_pages) > 30 and checked_forms > 30


def test_the_api_enforces_csrf_for_sessions_but_not_for_tokens(admin, dataset):
    from tests.labeling.api.support import token_client

    session = Client(enforce_csrf_checks=True)
    session.force_login(admin)
    body = {"taxonomy_name": "size", "type": "category", "labels": ["s"]}
    assert session.post(f"/api/v1/datasets/{dataset.id}/taxonomies/", body, content_type="application/json").status_code == 403
    assert token_client(admin).post(f"/api/v1/datasets/{dataset.id}/taxonomies/", body, format="json").status_code == 201
