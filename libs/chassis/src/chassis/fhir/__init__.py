"""HL7 FHIR plumbing for the services that serve resources under ``/fhir/`` (spec/API.md, "FHIR R4").

Written once, used by every service's own ``fhir`` module:

- FHIR R4B (4.3.0) models of ``fhir.resources``: every resource a service answers is one of
  them, so it validates against the FHIR definitions before it leaves (``FhirResponse``).
- ``FhirErrors``: every problem+json error of a FHIR request (domain errors, validation,
  401/403 of the token checks, 404/405 of the router, 413/415 of the body guard, 500, 503)
  becomes an ``OperationOutcome`` with the same status, so the services' error tables stay
  the one place that decides statuses.
- Reads: ``read_id``, the ``{id}`` of a read; an id that cannot be one of ours (``abc``, ``0``,
  ``007``) is the service's own 404, like an unknown one.
- Search: ``_count``/``_page`` paging into a ``searchset`` Bundle with ``total`` and
  ``self``/``next``/``previous`` links (``_count`` capped at 100; ``0``: the total only); date
  (``ge``, ``gt``, ``le``, ``lt``, ``eq``; a year, month, day or instant), token (``code``,
  ``system|code``, comma-separated alternatives) and reference (``Type/id``) parameters.
- The ``CapabilityStatement``: each service describes its own resources
  (``resource_capability``) and serves its own statement; the gateway's ``/fhir/metadata``
  merges them (``merge_capabilities``, in the docs app), like the OpenAPI documents.
"""

from chassis.fhir.capabilities import (
    CAPABILITIES_DATE,
    capability_statement,
    fhir_router,
    merge_capabilities,
    resource_capability,
)
from chassis.fhir.outcomes import (
    PROBLEM_CODE_SYSTEM,
    FhirErrors,
    is_fhir_request,
    operation_outcome,
    outcome_of_problem,
)
from chassis.fhir.resources import (
    BASE_PATH,
    FHIR_JSON,
    FHIR_VERSION,
    FhirResponse,
    fhir_base,
    invalid_resource,
    our_id,
    parse_resource,
    read_id,
)
from chassis.fhir.search import (
    DateBound,
    SearchPaging,
    date_bound,
    invalid_search,
    reference_id,
    searchset,
    token_codes,
)

__all__ = [
    "BASE_PATH",
    "CAPABILITIES_DATE",
    "FHIR_JSON",
    "FHIR_VERSION",
    "PROBLEM_CODE_SYSTEM",
    "DateBound",
    "FhirErrors",
    "FhirResponse",
    "SearchPaging",
    "capability_statement",
    "date_bound",
    "fhir_base",
    "fhir_router",
    "invalid_resource",
    "invalid_search",
    "is_fhir_request",
    "merge_capabilities",
    "operation_outcome",
    "our_id",
    "outcome_of_problem",
    "parse_resource",
    "read_id",
    "reference_id",
    "resource_capability",
    "searchset",
    "token_codes",
]
