"""Security in a real browser: every page loads under the Content Security Policy without a single
violation, and user data with HTML in it (reference ids, metadata, taxonomy names, labels, dataset
names) shows as text everywhere, never as markup or script."""

import pytest

from labeling.models import CategoryAnnotation, Dataset, DatasetMember
from labeling.services.annotations import annotation_save
from labeling.services.datasets import dataset_create
from labeling.services.items import item_create, scene_create
from taxonomies.services import taxonomy_create
from tests.factories import DatasetMemberFactory, png_upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
BOLD = '"><b>bold</b>'
# taxonomy_name may not contain '/', so the taxonomy carries the ones without it.
TAXONOMY_NAME = 'tax"><img src=x onerror="window.__xss=1">'


def watch_csp(page) -> list[str]:
    """Collect the page's CSP violations: the securitypolicyviolation events (installed before any
    script of the page runs) and the console messages Chromium logs for them ("Refused to ... because it violates the
    following Content Security Policy directive ...")."""
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    page.add_init_script("""
        document.addEventListener('securitypolicyviolation', (event) => {
            (window.__csp = window.__csp || []).push(event.violatedDirective + ' ' + event.blockedURI + ' ' + event.sourceFile + ':' + event.lineNumber);
        });
    """)
    return violations


def csp_violations(page, console: list[str]) -> list[str]:
    return [*page.evaluate("() => window.__csp || []"), *console]


@pytest.fixture
def hostile_dataset(superuser) -> Dataset:
    """An image dataset whose every user-controlled text holds HTML, with a finished annotation
    (and one that failed to sync, for the sync page's table), administered by `superuser`."""
    dataset = dataset_create(name=f"ds {SCRIPT} {BOLD}", kind=Dataset.Kind.IMAGES, created_by=superuser)
    taxonomy = taxonomy_create(dataset=dataset, taxonomy_name=TAXONOMY_NAME, labels=[SCRIPT, IMG, BOLD])
    for n, text in enumerate([SCRIPT, IMG, BOLD]):
        item_create(
            dataset=dataset, reference_id=f"{text}{n}", image_file=png_upload(f"i{n}.png"),
            metadata={text: text, "note": f"{BOLD} {IMG}"},
        )
    first = dataset.items.order_by("id").last()
    saved = annotation_save(target=first, taxonomy=taxonomy, labels=[taxonomy.labels.get(name=IMG)], annotator=superuser, finished=True, metadata={SCRIPT: BOLD})
    CategoryAnnotation.objects.filter(pk=saved.annotation.pk).update(sync_state=CategoryAnnotation.SyncState.FAILED, sync_error=f"{SCRIPT} {IMG}")
    return dataset


@pytest.fixture
def hostile_scenes(superuser) -> Dataset:
    dataset = dataset_create(name=f"scenes {IMG}", kind=Dataset.Kind.SCENES, created_by=superuser)
    taxonomy_create(dataset=dataset, taxonomy_name=TAXONOMY_NAME, labels=[SCRIPT, BOLD], applies_to="scenes")
    scene_create(
        dataset=dataset, reference_id=f"scene{SCRIPT}", frame_rate=2,
        frames=[{"reference_id": f"frame{n}{IMG}", "image_file": png_upload(f"f{n}.png")} for n in range(2)],
        metadata={BOLD: SCRIPT},
    )
    return dataset


def assert_no_injection(page, where: str) -> None:
    assert page.evaluate("() => window.__xss") is None, f"{where}: a script from the data ran"
    bold = page.evaluate("() => [...document.querySelectorAll('b')].map((b) => b.textContent)")
    assert "bold" not in bold, f"{where}: a <b> element came from the data"
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0, f"{where}: an <img> came from the data"


def open_checked(page, console, url: str, *, shows: list[str] = ()) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    for text in shows:
        assert page.get_by_text(text, exact=False).count() > 0, f"{url} does not show {text!r} as text"
    assert_no_injection(page, url)
    assert csp_violations(page, console) == [], url


def test_user_data_with_html_shows_as_text_on_every_page(new_page, superuser, hostile_dataset, hostile_scenes):
    page = new_page(superuser)
    console = watch_csp(page)
    open_checked(page, console, "/", shows=[f"ds {SCRIPT} {BOLD}", f"scenes {IMG}"])
    open_checked(page, console, f"/datasets/{hostile_dataset.id}/sync/", shows=[f"{SCRIPT} {IMG}", TAXONOMY_NAME])
    open_checked(page, console, f"/datasets/{hostile_dataset.id}/audit/", shows=[TAXONOMY_NAME])

    page.goto(f"/datasets/{hostile_dataset.id}/label/")
    page.wait_for_function("() => document.getElementById('label-page').dataset.shownReferenceId")
    shown = page.evaluate("() => document.getElementById('label-page').dataset.shownReferenceId")
    assert page.locator("#reference-id").text_content() == shown
    assert page.locator("#target-metadata").text_content().count(BOLD) >= 1
    for text in (TAXONOMY_NAME, SCRIPT, IMG, BOLD):
        assert page.locator("#taxonomies").get_by_text(text, exact=False).count() > 0, text
    page.keyboard.press("?")
    page.wait_for_selector("#help:not([hidden])")
    assert_no_injection(page, "label page with the help open")
    assert csp_violations(page, console) == []

    page.goto(f"/datasets/{hostile_scenes.id}/label/")
    page.wait_for_function("() => document.getElementById('label-page').dataset.shownReferenceId")
    assert page.locator("#reference-id").text_content() == f"scene{SCRIPT}"
    assert page.locator("#target-metadata").text_content().count(SCRIPT) == 1
    assert_no_injection(page, "scene page")
    assert csp_violations(page, console) == []

    for changelist in ("labeling/dataset", "labeling/item", "labeling/categoryannotation", "taxonomies/taxonomy", "taxonomies/label", "audit/auditevent"):
        open_checked(page, console, f"/admin/{changelist}/")
    open_checked(page, console, f"/admin/taxonomies/taxonomy/{hostile_dataset.taxonomies.get().pk}/change/")


def test_every_page_loads_without_a_csp_violation(new_page, superuser, hostile_dataset):
    anonymous = new_page()
    console = watch_csp(anonymous)
    for url in ("/accounts/login/", "/admin/login/", "/api/auth/login/"):
        open_checked(anonymous, console, url)

    page = new_page(superuser)
    console = watch_csp(page)
    for url in ("/", f"/datasets/{hostile_dataset.id}/sync/", f"/datasets/{hostile_dataset.id}/audit/", "/admin/", "/admin/labeling/dataset/add/"):
        open_checked(page, console, url)
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock")
    assert csp_violations(page, console) == [], "/api/docs/"
    page.goto(f"/datasets/{hostile_dataset.id}/label/")
    page.wait_for_function("() => document.getElementById('label-page').dataset.shownReferenceId")
    page.keyboard.press("?")
    page.wait_for_selector("#help:not([hidden])")
    assert csp_violations(page, console) == [], "label page"


def test_csp_blocks_an_inline_script_that_got_into_a_page(new_page, superuser, live_server):
    """The policy really is enforced: a script injected past escaping would not run."""
    page = new_page(superuser)
    page.goto("/")
    page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.__xss = 1';
        document.body.append(script);
    }""")
    assert page.evaluate("() => window.__xss") is None


def test_a_labeler_sees_the_labeling_page_of_a_hostile_dataset_as_text(new_page, hostile_dataset, django_user_model):
    labeler = DatasetMemberFactory(dataset=hostile_dataset, role=DatasetMember.Role.LABELER).user
    page = new_page(labeler)
    console = watch_csp(page)
    page.goto(f"/datasets/{hostile_dataset.id}/label/")
    page.wait_for_function("() => document.getElementById('label-page').dataset.shownReferenceId")
    assert_no_injection(page, "labeler's label page")
    assert csp_violations(page, console) == []
