"""The docs app: ``uvicorn --factory clinic_docs.main:create_app``.

    GET /api/schema/openapi.json      the merged OpenAPI document of every service
    GET /api/schema/swagger-ui/       Swagger UI: "All services", then each service's own document
    GET /api/schema/redoc/            Redoc on the merged document
    GET /api/schema/assets/<file>     the pages' scripts and styles, served from installed packages
    GET /health/live, /health/ready   for the gateway's health check (not routed publicly)
    GET /problems/<status>            the gateway's own errors as problem+json (problems.py; not routed)
    GET /fhir/metadata                the FHIR CapabilityStatement of every service (fhir.py)
    GET /fhir/problems/<status>       the gateway's own errors of FHIR requests, as OperationOutcome

The services' own documents (``/api/schema/<name>/openapi.json``) are served by the services.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.middleware.gzip import GZipMiddleware

from chassis.app import OptionalTrailingSlash
from chassis.errors import ProblemException, install_problem_handlers
from chassis.fhir import FHIR_JSON, FhirErrors, fhir_base
from chassis.health import health_router
from chassis.observability import RequestContextMiddleware, configure_logging
from chassis.shutdown import drain_on_sigterm
from clinic_docs import fhir, pages
from clinic_docs.assets import load_assets
from clinic_docs.config import Settings
from clinic_docs.problems import gateway_problem
from clinic_docs.sources import MergedDocument

PAGE_HEADERS = {
    "Content-Security-Policy": pages.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The assets change only with a package upgrade, which restarts the app; ETags revalidate them.
ASSET_CACHE = "public, max-age=3600"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The docs app of ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging("docs", settings.log_level, settings.log_format)
    # One line per fetched document is noise; failures are logged by MergedDocument.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.fetch_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout) as client:
            app.state.merged = MergedDocument(
                settings.service_urls(),
                client,
                ttl=settings.cache_ttl_seconds,
                partial_ttl=settings.partial_cache_ttl_seconds,
            )
            app.state.capabilities = MergedDocument(
                {name: urls for name, urls in settings.service_urls().items() if name in fhir.FHIR_SERVICES},
                client,
                ttl=settings.cache_ttl_seconds,
                partial_ttl=settings.partial_cache_ttl_seconds,
                path=fhir.metadata_path,
                accept=fhir.is_capability_statement,
                merge=functools.partial(fhir.merge_statements, cors=settings.cors_enabled),
                kind="FHIR CapabilityStatement",
            )
            # SIGTERM: not ready first, then uvicorn's graceful shutdown (chassis.shutdown).
            with drain_on_sigterm(app):
                yield

    app = FastAPI(
        title="Clinic API docs",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.settings = settings
    assets = load_assets()
    install_problem_handlers(app, {})

    @app.get(pages.MERGED_URL)
    async def merged_document(request: Request) -> JSONResponse:
        document = await request.app.state.merged.get()
        return JSONResponse(document, headers={"Cache-Control": "no-cache"})

    @app.get(f"{pages.BASE}/swagger-ui/", response_class=HTMLResponse)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(pages.swagger_page(), headers=PAGE_HEADERS)

    @app.get(f"{pages.BASE}/redoc/", response_class=HTMLResponse)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(pages.redoc_page(), headers=PAGE_HEADERS)

    @app.get(f"{pages.ASSETS}/{{name}}")
    async def asset(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None:
            raise ProblemException(404, "No such file.")
        headers = {"ETag": found.etag, "Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.content, media_type=found.media_type, headers=headers)

    @app.get(fhir.METADATA_PATH)
    async def fhir_metadata(request: Request) -> JSONResponse:
        statement = await request.app.state.capabilities.get()
        return JSONResponse(
            fhir.with_base_url(statement, fhir_base(request)),
            media_type=FHIR_JSON,
            headers={"Cache-Control": "no-cache"},
        )

    # Any method: the gateway's not-found router sends every request it gets here, as it came.
    # Under /fhir/ (the FHIR routers' pages), FhirErrors answers the same as an OperationOutcome.
    @app.api_route(
        "/fhir/problems/{status}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    @app.api_route("/problems/{status}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def problem_page(
        status: int, average: str | None = None, period: str | None = None, cause: str | None = None
    ) -> JSONResponse:
        # Traefik keeps the status it caught (or rewrites it to this page's) and sends this
        # body and these headers with it.
        return gateway_problem(status, average, period, cause)

    app.include_router(health_router({}))
    # The gateway's errors of FHIR requests (a path under /fhir/, or replaced from one) as OperationOutcome.
    app.add_middleware(FhirErrors)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(OptionalTrailingSlash)
    return app
