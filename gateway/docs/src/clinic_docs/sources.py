"""Fetching the services' OpenAPI documents, and the merged document, kept for a short while."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from clinic_docs.merge import Document, merge_documents

log = logging.getLogger("clinic_docs.sources")

TITLE = "Clinic API"
OVERVIEW = """\
The whole public API of Clinic in one document, merged from the OpenAPI documents of its
services. Every path goes through the gateway, the origin of this page.

- **Authentication**: register (`POST /api/auth/register/`), log in (`POST /api/auth/login/`),
  then send `Authorization: Bearer <access>`. In Swagger UI, press *Authorize* and paste the
  `access` token; it is kept across reloads and across the documents of the picker.
- **Roles**: `patient`, `doctor`, `admin`; each operation says which may call it.
- **Errors**: RFC 9457 problem details (`application/problem+json`) with `status`, `title`,
  `detail`, and `errors: [{field, message}]` for validation errors.
- **Lists**: `{count, next, previous, results}`, with `?page=` (from 1) and `?page_size=`
  (default 20, at most 100).
- **Rate limit**: register, login and token refresh allow 120 requests a minute per client
  address (the gateway's default); past that it answers `429` (problem+json, code
  `rate_limited`) with `Retry-After`. Failed logins are throttled per account (5 in 15
  minutes) and per address (100): `429`, code `login_throttled`, with `Retry-After`.
- **Times**: RFC 3339; a time without an offset is read in the clinic time zone.
- **FHIR R4 (R4B, 4.3.0)**: other health systems read doctors, schedules and appointments, and
  book, with the same tokens and rules, as `application/fhir+json` under `/fhir/`: the
  [CapabilityStatement at `/fhir/metadata`](/fhir/metadata) (public) lists what is served:
  `Practitioner/{id}`, `Practitioner?name=`; `Schedule/{id}` (the doctor's id),
  `Slot?schedule=Schedule/{id}&start=ge…&status=free`; `Appointment/{id}`,
  `Appointment?patient=Patient/{id}`, `Appointment?practitioner=Practitioner/{id}`, and
  `POST /fhir/Appointment` to book. Searches answer `searchset` Bundles (`_count`, `_page`,
  `next` links); errors are `OperationOutcome` resources.
"""


def describe(available: Sequence[str], missing: Sequence[str]) -> str:
    """The merged document's description: what it covers, and what is missing right now."""
    parts = []
    if missing:
        names = ", ".join(f"{name}-service" for name in missing)
        their = "its endpoints are" if len(missing) == 1 else "their endpoints are"
        parts.append(
            f"> **Incomplete right now:** {names} did not answer, so {their} missing "
            "from this document. Reload in a few seconds.\n"
        )
    parts.append(OVERVIEW)
    rows = [
        f"| {name} | [`/api/schema/{name}/openapi.json`](/api/schema/{name}/openapi.json) |"
        for name in available
    ]
    rows += [f"| {name} | not available right now |" for name in missing]
    parts.append("| service | its own document |\n| --- | --- |\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def document_path(service: str) -> str:
    return f"/api/schema/{service}/openapi.json"


def merge_openapi(documents: Mapping[str, Document], missing: Sequence[str]) -> Document:
    """The merged OpenAPI document of the services that answered."""
    return merge_documents(
        documents, title=TITLE, description=describe(list(documents), missing), missing=missing
    )


def is_openapi(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("paths"), dict)


class MergedDocument:
    """The merged document, rebuilt from the services at most once per ``ttl`` seconds.

    A document that misses a service is kept for at most ``partial_ttl`` seconds. Requests
    arriving while it is being rebuilt wait for that one rebuild. By default the OpenAPI
    documents; ``path``, ``accept`` and ``merge`` say which documents and how they merge (the
    FHIR CapabilityStatement: ``clinic_docs.fhir``).
    """

    def __init__(
        self,
        services: Mapping[str, Sequence[str]],
        client: httpx.AsyncClient,
        *,
        ttl: float,
        partial_ttl: float,
        clock: Callable[[], float] = time.monotonic,
        path: Callable[[str], str] = document_path,
        accept: Callable[[Any], bool] = is_openapi,
        merge: Callable[[Mapping[str, Document], Sequence[str]], Document] = merge_openapi,
        kind: str = "OpenAPI document",
    ) -> None:
        self.services = {name: list(urls) for name, urls in services.items()}
        self.client = client
        self.ttl = ttl
        self.partial_ttl = partial_ttl
        self.clock = clock
        self.path = path
        self.accept = accept
        self.merge = merge
        self.kind = kind
        self._document: Document | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Document:
        async with self._lock:
            if self._document is None or self.clock() >= self._expires:
                self._document, missing = await self._build()
                self._expires = self.clock() + (min(self.ttl, self.partial_ttl) if missing else self.ttl)
            return self._document

    async def _build(self) -> tuple[Document, list[str]]:
        names = list(self.services)
        fetched = await asyncio.gather(*(self._fetch(name) for name in names))
        documents = {name: doc for name, doc in zip(names, fetched, strict=True) if doc is not None}
        missing = [name for name in names if name not in documents]
        if missing:
            log.warning("serving the merged %s without %s", self.kind, ", ".join(missing))
        return self.merge(documents, missing), missing

    async def _fetch(self, service: str) -> Document | None:
        """The service's document from the first of its URLs that answers, else None."""
        for base in self.services[service]:
            url = base + self.path(service)
            try:
                response = await self.client.get(url)
                response.raise_for_status()
                document: Any = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not fetch the %s of %s from %s: %s", self.kind, service, url, exc)
                continue
            if self.accept(document):
                return document
            log.warning("%s did not answer a %s", url, self.kind)
        return None
