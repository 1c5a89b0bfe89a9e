"""CloudEvents 1.0 in Kafka headers (the Kafka protocol binding's binary mode).

The record value is the event's JSON; its attributes travel as ``ce_*`` headers beside
``content-type`` and the W3C ``traceparent`` that continues a trace across each Kafka hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion")


class EnvelopeError(ValueError):
    """A record whose headers are not a valid CloudEvents envelope."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was read from: the address an auditor or an operator can find it by."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime
    subject: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def to_headers(self) -> dict[str, str]:
        """The Kafka headers of this envelope."""
        headers = {
            "ce_id": self.id,
            "ce_source": self.source,
            "ce_type": self.type,
            "ce_specversion": SPEC_VERSION,
            "ce_time": self.time.isoformat(),
            "content-type": CONTENT_TYPE,
        }
        if self.subject is not None:
            headers["ce_subject"] = self.subject
        if self.traceparent is not None:
            headers["traceparent"] = self.traceparent
        if self.tracestate is not None:
            headers["tracestate"] = self.tracestate
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Envelope:
        """Read an envelope from Kafka headers; raise EnvelopeError naming what is missing or wrong."""
        missing = [name for name in REQUIRED_HEADERS if not headers.get(name)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents header(s): {', '.join(missing)}")
        if headers["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"unsupported CloudEvents specversion {headers['ce_specversion']!r}")
        raw_time = headers.get("ce_time")
        try:
            time = datetime.fromisoformat(raw_time) if raw_time else datetime.now(UTC)
        except ValueError as error:
            raise EnvelopeError(f"ce_time is not an RFC 3339 timestamp: {raw_time!r}") from error
        return cls(
            id=headers["ce_id"],
            source=headers["ce_source"],
            type=headers["ce_type"],
            time=time,
            subject=headers.get("ce_subject"),
            traceparent=headers.get("traceparent"),
            tracestate=headers.get("tracestate"),
        )


def decode_headers(raw: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> dict[str, str]:
    """Kafka headers as text. Undecodable bytes are replaced, not fatal: the envelope check judges them."""
    return {name: value.decode("utf-8", errors="replace") for name, value in raw or ()}
