"""The Swagger UI and Redoc pages (their files: ``clinic_docs.assets``).

The pages load nothing but this app's files: their configuration sits in a JSON ``<script>``
block that a small initializer script of ours reads, so the Content-Security-Policy allows
only this origin's scripts, styles, images and connections.
"""

from __future__ import annotations

import html
import json
from typing import Any

from clinic_docs.config import SERVICES

BASE = "/api/schema"
ASSETS = f"{BASE}/assets"
MERGED_URL = f"{BASE}/openapi.json"
ALL_SERVICES = "All services"

# Only this origin's scripts, styles, images and connections. Swagger UI and Redoc set inline
# styles, and Redoc runs its search in a blob: worker.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


def swagger_config() -> dict[str, Any]:
    """Swagger UI's options: the merged document first, then each service's own."""
    urls = [{"name": ALL_SERVICES, "url": MERGED_URL}]
    urls += [{"name": name, "url": f"{BASE}/{name}/openapi.json"} for name in SERVICES]
    return {
        "urls": urls,
        "urls.primaryName": ALL_SERVICES,
        "deepLinking": True,
        "persistAuthorization": True,
        "displayRequestDuration": True,
        "filter": True,
        "docExpansion": "list",
        "defaultModelsExpandDepth": 0,
        # The default would show a badge fetched from validator.swagger.io.
        "validatorUrl": None,
    }


def redoc_config() -> dict[str, Any]:
    return {
        "specUrl": MERGED_URL,
        "options": {"expandResponses": "200,201", "hideDownloadButton": False, "jsonSampleExpandLevel": 3},
    }


def swagger_page() -> str:
    return _page(
        title="Clinic API · Swagger UI",
        styles=["swagger-ui.css", "docs.css"],
        body=_nav("swagger-ui") + '\n    <div id="swagger-ui"></div>',
        config_id="swagger-config",
        config=swagger_config(),
        scripts=["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-initializer.js"],
    )


def redoc_page() -> str:
    return _page(
        title="Clinic API · Redoc",
        styles=["docs.css"],
        body=_nav("redoc") + '\n    <div id="redoc"></div>',
        config_id="redoc-config",
        config=redoc_config(),
        scripts=["redoc.standalone.js", "redoc-initializer.js"],
    )


def _nav(current: str) -> str:
    """Links between the two pages and to the merged document."""
    links = [("swagger-ui", f"{BASE}/swagger-ui/", "Swagger UI"), ("redoc", f"{BASE}/redoc/", "Redoc")]
    current_mark = ' aria-current="page"'
    items = [
        f'<a href="{href}"{current_mark if key == current else ""}>{label}</a>' for key, href, label in links
    ]
    items.append(f'<a href="{MERGED_URL}">OpenAPI document</a>')
    return '<nav class="clinic-docs-nav"><strong>Clinic API</strong>' + "".join(items) + "</nav>"


def _page(
    *, title: str, styles: list[str], body: str, config_id: str, config: dict[str, Any], scripts: list[str]
) -> str:
    # "</" cannot end the JSON block early: json.dumps output is made HTML-safe.
    data = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    links = "\n".join(f'    <link rel="stylesheet" href="{ASSETS}/{name}">' for name in styles)
    tags = "\n".join(f'    <script src="{ASSETS}/{name}"></script>' for name in scripts)
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{html.escape(title)}</title>
    <link rel="icon" href="data:,">
{links}
  </head>
  <body>
    {body}
    <script id="{config_id}" type="application/json">{data}</script>
{tags}
  </body>
</html>
"""
