"""The API documentation through the gateway (spec/API.md, "API documentation"): the merged
OpenAPI document, Swagger UI and Redoc, served by the docs app with no resource from outside.

The browser tests drive Debian's Chromium (``/usr/bin/chromium``, installed by
``scripts/bootstrap.sh``) with Playwright, headless. Without the browser they are skipped on a
developer's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .api import User
from .stack import Stack, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
MERGED = "/api/schema/openapi.json"
SWAGGER_UI = "/api/schema/swagger-ui/"
REDOC = "/api/schema/redoc/"
# Rendering a page of this size takes well under a second; the deadline bounds a broken run.
UI_TIMEOUT_MS = 30_000

# Every public operation of spec/API.md (path parameters written {id}).
PUBLIC_OPERATIONS = {
    ("post", "/api/auth/register/"),
    ("post", "/api/auth/login/"),
    ("post", "/api/auth/token/refresh/"),
    ("get", "/api/auth/me/"),
    ("patch", "/api/auth/me/"),
    ("post", "/api/auth/logout/"),
    ("get", "/api/users/"),
    ("get", "/api/users/{id}/"),
    ("patch", "/api/users/{id}/"),
    ("delete", "/api/users/{id}/"),
    ("get", "/api/doctors/"),
    ("get", "/api/doctors/{id}/"),
    ("patch", "/api/doctors/{id}/"),
    ("get", "/api/doctors/me/"),
    ("patch", "/api/doctors/me/"),
    ("get", "/api/doctors/{id}/timeslots/"),
    ("post", "/api/timeslots/"),
    ("post", "/api/timeslots/bulk/"),
    ("get", "/api/timeslots/"),
    ("get", "/api/timeslots/{id}/"),
    ("delete", "/api/timeslots/{id}/"),
    ("post", "/api/appointments/"),
    ("get", "/api/appointments/me/"),
    ("get", "/api/appointments/"),
    ("get", "/api/appointments/{id}/"),
    ("patch", "/api/appointments/{id}/status/"),
    ("delete", "/api/appointments/{id}/"),
    ("post", "/api/waitlist/"),
    ("get", "/api/waitlist/me/"),
    ("delete", "/api/waitlist/{id}/"),
    ("get", "/api/calendar/feed/"),
    ("post", "/api/calendar/feed/rotate/"),
    ("get", "/api/calendar/feed.ics"),
    ("post", "/api/appointments/{id}/reschedule/"),
    ("get", "/api/appointments/{id}/history/"),
    ("get", "/api/doctors/me/booking-policy/"),
    ("patch", "/api/doctors/me/booking-policy/"),
    ("get", "/api/doctors/{id}/booking-policy/"),
    ("patch", "/api/doctors/{id}/booking-policy/"),
}
# Operations whose request body comes with ready-made examples to try.
WITH_REQUEST_EXAMPLES = {
    ("post", "/api/auth/register/"),
    ("post", "/api/auth/login/"),
    ("post", "/api/timeslots/"),
    ("post", "/api/timeslots/bulk/"),
    ("post", "/api/appointments/"),
    ("patch", "/api/appointments/{id}/status/"),
    ("post", "/api/appointments/{id}/reschedule/"),
    ("patch", "/api/doctors/me/booking-policy/"),
    ("patch", "/api/doctors/{id}/booking-policy/"),
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path with every parameter written {id}) -> operation."""
    return {
        (method, re.sub(r"\{[^}]+\}", "{id}", path)): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def complete_document(stack: Stack) -> dict[str, Any]:
    """The merged document once it covers every service (a restarted one comes back in seconds)."""
    with stack.client() as client:

        def fetch() -> dict[str, Any] | None:
            response = client.get(MERGED)
            assert response.status_code == 200, response.text
            document = response.json()
            return None if document["x-clinic-missing-services"] else document

        return wait_until(fetch, timeout=30, interval=0.5, what="a merged document of every service")


# -- the documents, over HTTP --------------------------------------------------------------


def test_the_merged_document_lists_every_public_operation_and_nothing_internal(stack):
    document = complete_document(stack)
    found = operations(document)
    assert set(found) >= PUBLIC_OPERATIONS, PUBLIC_OPERATIONS - set(found)
    for path in document["paths"]:
        assert path.startswith("/api/"), path
        assert "/internal" not in path and "/health" not in path, path
    assert document["servers"] == [{"url": "/", "description": "The gateway (this page's origin)"}]
    assert {operation["x-clinic-service"] for operation in found.values()} == set(SERVICES)


def test_every_operation_is_described_with_its_errors_and_protected_ones_name_the_bearer_scheme(stack):
    document = complete_document(stack)
    assert list(document["components"]["securitySchemes"]) == ["HTTPBearer"]
    public = {("post", f"/api/auth/{name}/") for name in ("register", "login", "token/refresh")}
    public.add(("get", "/api/calendar/feed.ics"))  # its secret is the credential (spec: Calendar feeds)
    for key, operation in operations(document).items():
        assert operation.get("summary"), key
        assert operation.get("description"), key
        errors = {status: r for status, r in operation["responses"].items() if status.startswith(("4", "5"))}
        assert errors, f"{key} documents no error response"
        if key not in public:
            assert operation.get("security") == [{"HTTPBearer": []}], key
            assert "401" in errors, key


def test_the_main_request_bodies_come_with_examples(stack):
    found = operations(complete_document(stack))
    for key in WITH_REQUEST_EXAMPLES:
        media = found[key]["requestBody"]["content"]["application/json"]
        assert media.get("examples"), f"{key} has no request examples"
        for example in media["examples"].values():
            assert example["summary"] and example["value"], key


def test_components_shared_by_services_are_kept_once_and_every_ref_resolves(stack):
    document = complete_document(stack)
    schemas = document["components"]["schemas"]
    assert "Problem" in schemas
    assert not [name for name in schemas if name.endswith(".Problem")]
    text = httpx.Response(200, json=document).text
    for kind, name in set(re.findall(r'"#/components/([^/"]+)/([^"]+)"', text)):
        assert name in document["components"][kind], f"#/components/{kind}/{name}"


def test_each_services_own_document_is_still_served(stack):
    with stack.client() as client:
        for service in SERVICES:
            response = client.get(f"/api/schema/{service}/openapi.json")
            assert response.status_code == 200
            assert response.json()["paths"]


@pytest.mark.parametrize("page", [SWAGGER_UI, REDOC, SWAGGER_UI.rstrip("/"), REDOC.rstrip("/")])
def test_the_pages_reference_nothing_outside_the_gateway(stack, page):
    with stack.client() as client:
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert not re.findall(r"https?://", response.text)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        for url in re.findall(r'(?:src|href)="([^"]+)"', response.text):
            if url.startswith("data:"):
                continue
            assert url.startswith("/api/schema/"), url
            assert client.get(url).status_code == 200, url


def test_identity_headers_sent_to_the_docs_are_stripped_and_the_docs_need_no_token(stack):
    with stack.client(headers={"X-User-Role": "admin"}) as client:
        assert client.get(MERGED).status_code == 200
        assert client.get("/api/schema/assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/api/schema/assets/unknown.js").status_code == 404


# -- the pages, in a browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright package is missing (make install)"
    if problem is None and not CHROMIUM.exists():
        problem = (
            f"{CHROMIUM} is missing (scripts/bootstrap.sh installs it as root: apt-get install chromium)"
        )
    if problem:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"no browser: {problem} (CI=true: a missing browser is a failure)", pytrace=False)
        pytest.skip(f"no browser: {problem}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """A browser page on the gateway that records every request and console error it makes."""

    def __init__(self, browser: Any, stack: Stack) -> None:
        self.stack = stack
        self.context = browser.new_context(base_url=stack.base_url)
        self.context.set_default_timeout(UI_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.requested: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def outside(self) -> list[str]:
        """Requested URLs that did not go to the gateway."""
        own = (self.stack.base_url + "/", "data:", "blob:")
        return [url for url in self.requested if not url.startswith(own)]

    def screenshot(self, name: str) -> Path:
        path = self.stack.log_dir / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, stack) -> Iterator[Visit]:
    complete_document(stack)
    visit = Visit(browser, stack)
    yield visit
    visit.close()


def test_swagger_ui_shows_every_service_and_calls_the_api_with_the_authorized_token(visit, patient: User):
    page = visit.page
    page.goto(SWAGGER_UI)
    # The spec picker (StandaloneLayout's top bar): the merged document first, then each service.
    picker = page.locator(".topbar select")
    picker.wait_for()
    assert picker.locator("option").all_inner_texts() == ["All services", *SERVICES]
    page.locator(".opblock").first.wait_for()
    paths = set(page.locator(".opblock-summary-path").evaluate_all("els => els.map(e => e.dataset.path)"))
    for path in (
        "/api/auth/login/",
        "/api/users/{user_id}/",
        "/api/doctors/",
        "/api/doctors/{doctor_id}/timeslots/",
        "/api/timeslots/bulk/",
        "/api/appointments/{appointment_id}/status/",
    ):
        assert path in paths, f"{path} is not shown"

    page.locator(".scheme-container .btn.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").fill(patient.access)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    me = page.locator(".opblock-get").filter(has=page.locator('[data-path="/api/auth/me/"]'))
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    me.locator("button.execute").click()
    status = me.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert patient.email in me.locator(".live-responses-table").inner_text()
    visit.screenshot("swagger-ui")
    assert visit.outside() == []
    assert visit.errors == []


def test_swagger_ui_keeps_the_authorization_across_a_reload(visit, patient: User):
    page = visit.page
    page.goto(SWAGGER_UI)
    page.locator(".scheme-container .btn.authorize").click()
    page.locator(".modal-ux input").fill(patient.access)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    page.reload()
    page.locator(".scheme-container .btn.authorize").click()
    # An authorized scheme shows a Logout button instead of the token field.
    page.locator(".modal-ux button.btn-done").wait_for()
    assert page.locator(".modal-ux button", has_text="Logout").count() == 1


def test_swagger_ui_shows_one_services_own_document_from_the_picker(visit):
    page = visit.page
    page.goto(SWAGGER_UI)
    page.locator(".topbar select").select_option("booking")
    page.locator('.opblock-summary-path[data-path="/api/appointments/"]').first.wait_for()
    paths = set(page.locator(".opblock-summary-path").evaluate_all("els => els.map(e => e.dataset.path)"))
    # booking's own paths only: appointments, the waitlist and calendar feeds
    assert all(
        path.startswith(("/api/appointments/", "/api/waitlist/", "/api/calendar/")) for path in paths
    ), paths
    assert "/api/waitlist/" in paths
    assert visit.outside() == []


def test_redoc_renders_the_merged_document(visit):
    page = visit.page
    page.goto(REDOC)
    page.locator("h1", has_text="Clinic API").wait_for()
    for summary in (
        "Log in with email and password",
        "List active doctors",
        "Publish a working pattern",
        "Book a timeslot",
    ):
        assert page.locator("h2", has_text=summary).count() >= 1, summary
    menu = page.locator(".menu-content").inner_text()
    for group in ("identity", "doctor", "scheduling", "booking"):
        assert group in menu.lower(), group
    visit.screenshot("redoc")
    assert visit.outside() == []
    assert visit.errors == []


# -- a service down ------------------------------------------------------------------------


def test_with_a_service_down_the_docs_serve_the_others_and_say_which_is_missing(stack, visit):
    stack.stop("doctor")
    try:
        with stack.client() as client:

            def without_doctor() -> dict[str, Any] | None:
                document = client.get(MERGED).json()
                return document if document["x-clinic-missing-services"] == ["doctor"] else None

            document = wait_until(without_doctor, timeout=30, interval=0.5, what="a document without doctor")
        assert "doctor-service did not answer" in document["info"]["description"]
        assert "/api/doctors/" not in document["paths"]
        assert "/api/appointments/" in document["paths"]
        visit.page.goto(SWAGGER_UI)
        visit.page.locator("text=doctor-service did not answer").wait_for()
        assert visit.page.locator('.opblock-summary-path[data-path="/api/appointments/"]').count() >= 1
    finally:
        stack.start("doctor")
    assert "/api/doctors/" in complete_document(stack)["paths"]
