"""The files the pages load, served by the docs app itself from installed packages (no CDN).

- Swagger UI: the ``swagger-ui-bundle-v2`` package, swagger-ui-dist 5.31.0 (Apache-2.0): the
  bundle, the standalone preset (its top bar holds the spec picker) and the CSS.
- Redoc: the ``fastapi-offline`` package, Redoc's standalone bundle 2.5.3 (MIT). Its side menu
  shows Redocly's logo from their CDN; that one URL is replaced by an empty ``data:`` URL (the
  image then hides itself), so the page asks nothing of any other host, online or not.
- Our own initializer scripts and style sheet (``clinic_docs/static``).

Each file is read once, at start-up, and served from memory with an ETag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from swagger_ui_bundle import swagger_ui_path

_STATIC = files("clinic_docs") / "static"
_SWAGGER = Path(str(swagger_ui_path))
_REDOC = files("fastapi_offline") / "static"
JAVASCRIPT = "text/javascript"
CSS = "text/css"

# name under /api/schema/assets/ -> (file, media type)
SOURCES: dict[str, tuple[Traversable | Path, str]] = {
    "swagger-ui-bundle.js": (_SWAGGER / "swagger-ui-bundle.js", JAVASCRIPT),
    "swagger-ui-standalone-preset.js": (_SWAGGER / "swagger-ui-standalone-preset.js", JAVASCRIPT),
    "swagger-ui.css": (_SWAGGER / "swagger-ui.css", CSS),
    "redoc.standalone.js": (_REDOC / "redoc.standalone.js", JAVASCRIPT),
    "swagger-initializer.js": (_STATIC / "swagger-initializer.js", JAVASCRIPT),
    "redoc-initializer.js": (_STATIC / "redoc-initializer.js", JAVASCRIPT),
    "docs.css": (_STATIC / "docs.css", CSS),
}
# name -> (bytes to find, replacement): each must be found, or the app refuses to start.
REWRITES: dict[str, list[tuple[bytes, bytes]]] = {
    "redoc.standalone.js": [(b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'src:"data:,"')],
}


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every asset, read and rewritten; a missing file or rewrite raises at once."""
    assets = {}
    for name, (source, media_type) in SOURCES.items():
        content = source.read_bytes()
        for old, new in REWRITES.get(name, []):
            if old not in content:
                raise RuntimeError(f"{name}: expected {old!r} in {source} (a different version?)")
            content = content.replace(old, new)
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        assets[name] = Asset(content, media_type, etag)
    return assets
