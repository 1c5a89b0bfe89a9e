"""Bad messages land on the dead-letter topic with their reason and origin; the consumer goes on."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from schemas import topics
from schemas.events import DeadLettered, HostProfile, HostSubmitted
from tests.e2e.centre import Centre, envelope_headers, eventually

pytestmark = pytest.mark.integration


async def test_unparseable_schema_violating_and_unknown_version_messages_are_dead_lettered(centre: Centre) -> None:
    marker = uuid.uuid4().hex
    bad = {
        "unparseable": (b"{not json " + marker.encode(), envelope_headers(HostSubmitted.type)),
        "schema_violation": (json.dumps({"organisation_id": "org-x", "marker": marker}).encode(),
                             envelope_headers(HostSubmitted.type)),
        "unknown_type": (json.dumps({"marker": marker}).encode(), envelope_headers("centre.partner.host-submitted.v9")),
    }
    for value, headers in bad.values():
        await centre.send_raw(topics.PARTNER_SUBMISSIONS, value, headers)
    good = HostSubmitted(
        organisation_id="org-test-partner", external_ref=f"after-bad-{marker}", pool_id=f"dlq-{marker[:8]}",
        profile=HostProfile(host_type="municipality", place="dlq-town",
                            capacity={"people": 10, "beds": 10}),  # type: ignore[arg-type]
    )
    await centre.send_raw(topics.PARTNER_SUBMISSIONS, good.model_dump_json().encode(),
                          envelope_headers(HostSubmitted.type, good.key()))

    consumer = AIOKafkaConsumer(topics.DEAD_LETTERS, bootstrap_servers=centre.bootstrap_servers,
                                group_id=f"test-{marker}", auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, DeadLettered] = {}
    try:
        async def all_three() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    letter = DeadLettered.model_validate_json(record.value)
                    original = base64.b64decode(letter.original_value_b64)
                    if marker.encode() in original and letter.consumer == "submissions":
                        found[letter.reason_kind] = letter
            return len(found) == 3

        await eventually(all_three, what="three dead letters from intake", within=30)
    finally:
        await consumer.stop()

    assert "value is not JSON" in found["unparseable"].reason
    assert "profile" in found["schema_violation"].reason and "Field required" in found["schema_violation"].reason
    assert "centre.partner.host-submitted.v9" in found["unknown_type"].reason
    for letter in found.values():
        assert letter.origin_topic == topics.PARTNER_SUBMISSIONS
        assert letter.origin_offset >= 0
    offsets = sorted(letter.origin_offset for letter in found.values())
    assert len(set(offsets)) == 3

    async def registered_after_the_bad_ones() -> bool:
        connection = await centre.database()
        try:
            return bool(await connection.fetchval(
                "SELECT true FROM intake.hosts WHERE external_ref = $1", good.external_ref))
        finally:
            await connection.close()

    await eventually(registered_after_the_bad_ones, what="the good submission after the bad ones")
