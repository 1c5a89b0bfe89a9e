"""JSON logs through structlog, with trace and event ids, and no personal data.

Handlers log ids and counts, never payloads. As a second line of defence, a processor removes any
field whose name says it may hold identifying data, so one careless ``log.info(..., name=...)`` cannot
leak a person's data into the logs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

PERSONAL_FIELDS = frozenset(
    {
        "name", "full_name", "given_name", "family_name", "date_of_birth", "dob", "birth_date",
        "document", "document_number", "passport", "phone", "email", "address", "contact",
        "identity", "payload", "body", "profile",
    }
)
REDACTED = "[redacted]"


def redact_personal_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for field in PERSONAL_FIELDS.intersection(event):
        event[field] = REDACTED
    return event


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(service_name: str, level: str = "INFO") -> None:
    """Send JSON lines to stdout for this service, the stdlib's loggers (uvicorn, aiokafka) included."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_personal_fields,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            lambda _, __, event: {**event, "service": service_name},
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every rebalance at INFO: useful, but not at the rate of a surge.
    logging.getLogger("aiokafka").setLevel("WARNING")
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    # httpx logs every request's URL at INFO: a partner's callback URL has no place in the logs.
    logging.getLogger("httpx").setLevel("WARNING")
    # FastStream reports every message received at INFO; its warnings and errors are what matter here.
    logging.getLogger("faststream").setLevel("WARNING")
