"""The recorder's pure parts: the order a batch is appended in, and what a record holds when its input is bad."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import topics
from schemas.events import CaseWithdrawn
from services.audit.chain import verify_chain
from services.audit.recorder import audit_order, envelope_of, seal_event
from tests.unit.audit.audit_scratch import START, consumer_record, raw_record


def withdrawn(partition: int, offset: int, seconds: float, topic: str = topics.CASES):
    return consumer_record(CaseWithdrawn(case_id=f"case-{partition}", reason="moved"), topic=topic,
                           partition=partition, offset=offset, event_id=f"{topic}-{partition}-{offset}",
                           time=START + timedelta(seconds=seconds))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 100)), max_size=40), st.randoms())
def test_every_partition_keeps_its_offset_order_whatever_the_clocks_say(events, shuffle) -> None:
    next_offset: dict[int, int] = {}
    batch = []
    for partition, seconds in events:
        offset = next_offset.get(partition, 0)
        next_offset[partition] = offset + 1
        batch.append(withdrawn(partition, offset, seconds))
    ordered = audit_order(batch)
    assert sorted(map(id, ordered)) == sorted(map(id, batch)), "nothing lost, nothing doubled"
    for partition in next_offset:
        offsets = [record.offset for record in ordered if record.partition == partition]
        assert offsets == sorted(offsets)
    mixed = list(batch)
    shuffle.shuffle(mixed)
    assert audit_order(mixed) == ordered, "the same batch is always appended in the same order"


def test_partitions_are_interleaved_by_event_time_then_topic_partition_offset() -> None:
    batch = [withdrawn(0, 0, 3), withdrawn(0, 1, 4), withdrawn(1, 0, 1), withdrawn(0, 0, 1, topics.DECISIONS),
             withdrawn(1, 1, 5)]
    assert [(r.topic, r.partition, r.offset) for r in audit_order(batch)] == [
        (topics.DECISIONS, 0, 0), (topics.CASES, 1, 0), (topics.CASES, 0, 0), (topics.CASES, 0, 1),
        (topics.CASES, 1, 1)]


def test_a_record_without_an_envelope_is_named_after_its_origin_the_same_way_every_time() -> None:
    moment = datetime(2026, 3, 1, 12, tzinfo=UTC)
    record = raw_record(b"{}", {"ce_type": "centre.x.v1"}, topic=topics.CASES, partition=2, offset=7, time=moment)
    first, again = envelope_of(record), envelope_of(record)
    assert first == again
    assert (first.id, first.source, first.type, first.time) == ("origin:intake.cases/2/7", "unknown", "centre.x.v1",
                                                                 moment)


def test_values_the_chain_cannot_hold_as_json_are_kept_as_bytes() -> None:
    deep = raw_record(b"[" * 500 + b"]" * 500, {}, topic=topics.CASES, partition=0, offset=0)
    nan = raw_record(b'{"score": NaN}', {}, topic=topics.CASES, partition=0, offset=1)
    first = seal_event(deep, envelope_of(deep), None)
    second = seal_event(nan, envelope_of(nan), first)
    assert set(first.payload) == set(second.payload) == {"unparseable_value_b64"}
    assert verify_chain([first, second]).ok


def test_a_valid_event_is_recorded_with_its_envelope_and_its_json() -> None:
    record = withdrawn(1, 4, 2)
    sealed = seal_event(record, envelope_of(record), None)
    assert (sealed.event_id, sealed.topic, sealed.partition, sealed.offset, sealed.subject) == (
        f"{topics.CASES}-1-4", topics.CASES, 1, 4, "case-1")
    assert sealed.payload == json.loads(record.value)
    assert sealed.event_time == (START + timedelta(seconds=2)).isoformat()
