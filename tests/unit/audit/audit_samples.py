"""Sample audit streams for the tests: realistic records, forged rewrites, and generated record fields.

A plain module rather than conftest.py, so that test modules can import from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

from services.audit.chain import AuditRecord, seal

SEALED_AT = "2026-03-01T12:00:00.000000+00:00"


def event_fields(i: int) -> dict[str, Any]:
    """Fields of the i-th event of a made-up stream; the identity is only ever a sealed blob."""
    return {
        "event_id": f"evt-{i:06d}",
        "event_type": "org.matchingcentre.case.registered.v1",
        "source": "/services/intake",
        "subject": f"case-{i % 7}" if i % 5 else None,
        "event_time": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000000+00:00",
        "topic": "cases",
        "partition": i % 3,
        "offset": i // 3,
        "traceparent": f"00-{i:032x}-{i:016x}-01" if i % 2 else None,
        "payload": {
            "case_id": f"case-{i % 7}",
            "household_size": 1 + i % 6,
            "needs": ["wheelchair"] if i % 4 == 0 else [],
            "identity": {"key_id": f"case-{i % 7}", "nonce": "bm9uY2U=", "ciphertext": "w7bDpMO8"},
            "note": "Zürich – قسم",
        },
    }


def build_chain(n: int, start: AuditRecord | None = None) -> list[AuditRecord]:
    """n sealed records, continuing after ``start`` when given."""
    records: list[AuditRecord] = []
    prev = start
    for _ in range(n):
        prev = seal(**event_fields(prev.seq + 1 if prev else 1), prev=prev)
        records.append(prev)
    return records


def iter_chain(n: int) -> Iterator[AuditRecord]:
    """The same stream as build_chain, generated lazily."""
    prev = None
    for i in range(1, n + 1):
        prev = seal(**event_fields(i), prev=prev)
        yield prev


def reseal_from(records: list[AuditRecord], index: int, **changes: Any) -> list[AuditRecord]:
    """What a careful forger does: change records[index] and recompute every hash from there on."""
    forged = list(records[:index])
    prev = forged[-1] if forged else None
    for position, record in enumerate(records[index:]):
        fields = record.to_dict()
        for name in ("seq", "prev_hash", "record_hash"):
            del fields[name]
        if position == 0:
            fields.update(changes)
        prev = seal(**fields, prev=prev)
        forged.append(prev)
    return forged


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
optional_text = st.none() | st.text(min_size=1, max_size=20)
event_times = st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat())


@st.composite
def record_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(st.text(min_size=1, max_size=20)),
        "event_type": draw(st.text(min_size=1, max_size=40)),
        "source": draw(st.text(min_size=1, max_size=20)),
        "subject": draw(optional_text),
        "event_time": draw(event_times),
        "topic": draw(st.text(min_size=1, max_size=20)),
        "partition": draw(st.integers(0, 1000)),
        "offset": draw(st.integers(0, 2**63)),
        "traceparent": draw(optional_text),
        "payload": draw(json_values),
    }
