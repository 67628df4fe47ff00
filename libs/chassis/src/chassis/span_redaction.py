"""What exported spans must not carry: the values of a request's query string.

FastAPI's server spans record the query string (``url.query``), and ours carry personal data and
secrets: ``?search=`` holds names and emails, a calendar feed's secret travels in its query
string (docs/security.md). Loaded with the OpenTelemetry SDK, only when tracing is configured
(chassis.tracing).
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor


class QueryValueRedactor(SpanProcessor):
    """Every value in a span's ``url.query`` becomes ``REDACTED``; the keys stay, so an operator
    still sees which parameters a request used. Add it before the exporter's processor."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        query = (span.attributes or {}).get("url.query")
        if isinstance(query, str) and query:
            span.set_attribute("url.query", redacted_query(query))


def redacted_query(query: str) -> str:
    """``a=1&b=x`` → ``a=REDACTED&b=REDACTED`` (a parameter without a value stays as it is)."""
    return "&".join(
        f"{part.partition('=')[0]}=REDACTED" if "=" in part else part for part in query.split("&")
    )
