"""The audit log against the people who run its database: privileges, the trigger, and insiders who tamper.

A log of 650 records (three checkpoints, at 200, 400 and 600) is built once through the real recorder
and sealer; every test gets its own copy of that database. The service's writer role may only read and
append; a superuser who disables nothing is refused by the trigger; an insider who disables the trigger
(``ALTER TABLE ... DISABLE TRIGGER`` or ``session_replication_role = replica``) can change anything, and
``verify`` must then name the first bad record.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.audit import store
from services.audit.chain import AuditRecord, payload_json, seal, stored_record_hash
from services.audit.checkpoint import SignedCheckpoint, generate_private_key, load_public_key_pem, public_key_to_pem
from services.audit.checkpoints import seal_checkpoint
from services.audit.recorder import Recorder
from services.audit.verification import verify_stored_log
from tests.unit.audit.audit_samples import reseal_from
from tests.unit.audit.audit_scratch import SCHEMA, centre_records, create_database, drop_database, scratch_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Each table of evidence, and a column to "change" it by.
EVIDENCE = {"records": "seq", "checkpoints": "size", "signing_keys": "key_id", "merkle_subtrees": "index"}
INSIDER_METHODS = ("disable_trigger", "replication_role")


@pytest.fixture(scope="module")
async def template() -> AsyncIterator[dict[str, Any]]:
    """The database every test copies: 600 sealed records and 50 unsealed ones."""
    async with scratch_database("test_audit_tamper") as (url, pool):
        recorder = Recorder(["test"], writer_role="audit_writer")
        recorder.pool = pool
        records = list(centre_records(65))
        for start in range(0, len(records), 100):
            await recorder.handle_batch(records[start:start + 100])
        key = generate_private_key()
        async with pool.acquire() as connection:
            for _ in range(3):
                await seal_checkpoint(connection, key, max_records=200, writer_role="audit_writer")
            kept = [signed.to_dict() for signed in await store.checkpoints(connection)]
        await pool.close()  # a template may have no sessions
        yield {"name": url.rsplit("/", 1)[1], "key_pem": public_key_to_pem(key.public_key()), "kept": kept}


@pytest.fixture
async def log_copy(template: dict[str, Any]) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    name = f"test_audit_tamper_{uuid.uuid4().hex[:12]}"
    url = await create_database(name, template=template["name"])
    connection = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        yield url, connection
    finally:
        await connection.close()
        await drop_database(name)


async def as_insider(connection: asyncpg.Connection, method: str, change: Callable[[], Any],
                     tables: tuple[str, ...] = ("records",)) -> None:
    """Make ``change`` as an insider: a superuser who first switches the append-only guard off."""
    if method == "disable_trigger":
        for table in tables:
            await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            await change()
        finally:
            for table in tables:
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    else:
        await connection.execute("SET session_replication_role = replica")
        try:
            await change()
        finally:
            await connection.execute("SET session_replication_role = DEFAULT")


async def stored(connection: asyncpg.Connection) -> list[AuditRecord]:
    return await store.records_between(connection, 1, 10**9)


async def rewrite(connection: asyncpg.Connection, records: list[AuditRecord]) -> None:
    await connection.executemany(
        "UPDATE records SET event_id = $2, payload = $3, prev_hash = $4, record_hash = $5, event_time = $6"
        " WHERE seq = $1",
        [(r.seq, r.event_id, payload_json(r.payload), r.prev_hash, r.record_hash, r.event_time)
         for r in records])


# --- the database itself refuses ----------------------------------------------------------------------


async def test_the_intact_log_verifies(log_copy: tuple[str, asyncpg.Connection]) -> None:
    verdict = await verify_stored_log(log_copy[1])
    assert verdict.ok, verdict
    assert (verdict.records_checked, verdict.checkpoints_checked, verdict.unsealed_records) == (650, 3, 50)


async def test_the_writer_role_may_read_and_append_and_nothing_else(log_copy: tuple[str, asyncpg.Connection]) -> None:
    connection = log_copy[1]
    async with connection.transaction():
        await connection.execute("SET LOCAL ROLE audit_writer")
        assert await connection.fetchval("SELECT count(*) FROM records") == 650
        for table, column in EVIDENCE.items():
            for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}",
                              f"TRUNCATE {table}", f"ALTER TABLE {table} DISABLE TRIGGER USER"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with connection.transaction():
                        await connection.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with connection.transaction():
                await connection.execute("SET session_replication_role = replica")
        last = await store.last_record(connection)
        assert last is not None
        await store.append(connection, seal(
            event_id="evt-writer", event_type="centre.test.v1", source="/services/test", subject=None,
            event_time="2026-03-02T00:00:00+00:00", topic="test", partition=0, offset=0, traceparent=None,
            payload={}, prev=last))
    assert (await verify_stored_log(connection)).ok


@pytest.mark.parametrize("table", EVIDENCE)
async def test_a_superuser_who_disables_nothing_is_refused(log_copy: tuple[str, asyncpg.Connection],
                                                           table: str) -> None:
    connection, column = log_copy[1], EVIDENCE[table]
    # CASCADE, or a foreign key would refuse TRUNCATE before the trigger can.
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}",
                      f"TRUNCATE {table} CASCADE"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute(statement)
    assert (await verify_stored_log(connection)).ok


# --- insiders who switch the guard off ----------------------------------------------------------------


@pytest.mark.parametrize("method", INSIDER_METHODS)
async def test_a_changed_field_is_named(log_copy: tuple[str, asyncpg.Connection], method: str) -> None:
    connection = log_copy[1]
    await as_insider(connection, method, lambda: connection.execute(
        "UPDATE records SET payload = jsonb_set(payload::jsonb, '{host_id}', to_jsonb('host-elsewhere'::text))::text"
        " WHERE seq = 137"))
    verdict = await verify_stored_log(connection)
    assert not verdict.ok
    assert verdict.first_bad_seq == 137 and "record_hash" in (verdict.reason or "")


@pytest.mark.parametrize("method", INSIDER_METHODS)
async def test_a_deleted_record_is_named(log_copy: tuple[str, asyncpg.Connection], method: str) -> None:
    connection = log_copy[1]
    await as_insider(connection, method, lambda: connection.execute("DELETE FROM records WHERE seq = 250"))
    verdict = await verify_stored_log(connection)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 250)
    assert "missing" in (verdict.reason or "")


async def test_an_inserted_record_is_named(log_copy: tuple[str, asyncpg.Connection]) -> None:
    connection = log_copy[1]
    before = await store.record_at(connection, 300)
    assert before is not None
    forged = seal(event_id="evt-forged", event_type="centre.approval.decided.v1", source="/services/consent",
                  subject="case-0000029", event_time=before.event_time, topic="consent.decisions", partition=0,
                  offset=999, traceparent=None, payload={"decision": "approved", "decided_by": "nobody"},
                  prev=before)

    async def insert_in_the_middle() -> None:
        # Shift the later records up one seq (from the top, so that the key stays unique), then insert.
        await connection.execute("UPDATE records SET seq = -seq WHERE seq > 300")
        await connection.execute("UPDATE records SET seq = -seq + 1 WHERE seq < 0")
        await store.append(connection, forged)

    await as_insider(connection, "disable_trigger", insert_in_the_middle)
    verdict = await verify_stored_log(connection)
    # The forgery links to record 300 and hashes correctly; the chain breaks where it rejoins the log.
    assert (verdict.ok, verdict.first_bad_seq) == (False, 302)


@pytest.mark.parametrize("method", INSIDER_METHODS)
async def test_two_swapped_records_are_named(log_copy: tuple[str, asyncpg.Connection], method: str) -> None:
    connection = log_copy[1]

    async def swap() -> None:
        await connection.execute("UPDATE records SET seq = CASE seq WHEN 410 THEN -411 ELSE -410 END"
                                 " WHERE seq IN (410, 411)")
        await connection.execute("UPDATE records SET seq = -seq WHERE seq < 0")

    await as_insider(connection, method, swap)
    verdict = await verify_stored_log(connection)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 410)


@pytest.mark.parametrize("method", INSIDER_METHODS)
async def test_a_truncated_tail_is_caught_by_the_checkpoints(log_copy: tuple[str, asyncpg.Connection],
                                                             method: str) -> None:
    connection = log_copy[1]
    await as_insider(connection, method, lambda: connection.execute("DELETE FROM records WHERE seq > 550"))
    verdict = await verify_stored_log(connection)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 551)
    assert "551..600 are missing" in (verdict.reason or "")


async def test_a_truncated_table_is_caught_by_the_checkpoints(log_copy: tuple[str, asyncpg.Connection]) -> None:
    connection = log_copy[1]
    await as_insider(connection, "disable_trigger", lambda: connection.execute("TRUNCATE records"))
    verdict = await verify_stored_log(connection)
    assert (verdict.ok, verdict.first_bad_seq, verdict.records_checked) == (False, 1, 0)


@pytest.mark.parametrize("method", INSIDER_METHODS)
async def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoints(
        log_copy: tuple[str, asyncpg.Connection], method: str) -> None:
    connection = log_copy[1]
    records = await stored(connection)
    original = records[249].payload
    forged = reseal_from(records, 249, payload={**original, "decided_by": "approver-x"})
    await as_insider(connection, method, lambda: rewrite(connection, forged[249:]))
    verdict = await verify_stored_log(connection)
    assert not verdict.ok
    # The chain itself is whole again; the checkpoint of 400 no longer matches, the one of 200 still does.
    assert verdict.first_bad_seq is None and verdict.bad_range == (201, 400)
    assert "checkpoint of size 400" in (verdict.reason or "")


async def test_a_rewrite_of_unsealed_records_is_admitted_as_unprotected(
        log_copy: tuple[str, asyncpg.Connection]) -> None:
    connection = log_copy[1]
    records = await stored(connection)
    forged = reseal_from(records, 620, payload={"forged": True})
    await as_insider(connection, "disable_trigger", lambda: rewrite(connection, forged[620:]))
    verdict = await verify_stored_log(connection)
    # What no checkpoint covers yet cannot be defended; verify says how much that is.
    assert verdict.ok and verdict.unsealed_records == 50


async def test_an_unsealed_record_hashed_over_non_canonical_bytes_is_named(
        log_copy: tuple[str, asyncpg.Connection]) -> None:
    connection = log_copy[1]
    last = await store.record_at(connection, 650)
    assert last is not None
    text = '{"case_id": "case-0000064"}'  # valid JSON, but not the canonical text the writer stores
    forged_hash = stored_record_hash(*[*list(last.to_dict().values())[:10], text, last.prev_hash])
    await as_insider(connection, "disable_trigger", lambda: connection.execute(
        "UPDATE records SET payload = $1, record_hash = $2 WHERE seq = 650", text, forged_hash))
    verdict = await verify_stored_log(connection)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 650)


async def test_an_altered_checkpoint_fails_its_signature(log_copy: tuple[str, asyncpg.Connection]) -> None:
    connection = log_copy[1]
    await as_insider(connection, "disable_trigger", lambda: connection.execute(
        "UPDATE checkpoints SET size = 401 WHERE size = 400"), tables=("checkpoints",))
    verdict = await verify_stored_log(connection)
    assert not verdict.ok and "signature does not verify" in (verdict.reason or "")


async def test_checkpoints_deleted_with_a_rewrite_are_caught_by_those_an_auditor_kept(
        log_copy: tuple[str, asyncpg.Connection], template: dict[str, Any]) -> None:
    connection = log_copy[1]
    records = await stored(connection)
    forged = reseal_from(records, 99, payload={"forged": True})

    async def rewrite_and_hide() -> None:
        await rewrite(connection, forged[99:])
        await connection.execute("DELETE FROM checkpoints")
        await connection.execute("DELETE FROM merkle_subtrees")

    await as_insider(connection, "replication_role", rewrite_and_hide)
    assert (await verify_stored_log(connection)).ok, "the database alone cannot tell"
    kept = [SignedCheckpoint.from_dict(entry) for entry in template["kept"]]
    verdict = await verify_stored_log(connection, pinned_keys=[load_public_key_pem(template["key_pem"])],
                                      extra_checkpoints=kept)
    assert not verdict.ok and verdict.bad_range == (1, 200)


async def test_a_forged_key_is_refused_when_the_published_key_is_pinned(
        log_copy: tuple[str, asyncpg.Connection], template: dict[str, Any]) -> None:
    connection = log_copy[1]
    records = await stored(connection)
    forged = reseal_from(records, 9, payload={"forged": True})
    forger = generate_private_key()

    async def rewrite_and_resign() -> None:
        await rewrite(connection, forged[9:])
        await connection.execute("DELETE FROM checkpoints")
        await connection.execute("DELETE FROM merkle_subtrees")

    await as_insider(connection, "replication_role", rewrite_and_resign)
    await seal_checkpoint(connection, forger, max_records=1000)
    assert (await verify_stored_log(connection)).ok, "a log re-signed with a new key agrees with itself"
    verdict = await verify_stored_log(connection, pinned_keys=[load_public_key_pem(template["key_pem"])])
    assert not verdict.ok and "not a pinned key" in (verdict.reason or "")


async def test_the_cli_names_the_first_bad_record_and_exits_non_zero(log_copy: tuple[str, asyncpg.Connection],
                                                                      tmp_path: Path) -> None:
    url, connection = log_copy

    async def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "services.audit.cli", "--database-url", url, "verify", *arguments]
        return await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True,
                                       timeout=60)

    good = await cli()
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("OK: 650 records and 3 checkpoints verified")
    await as_insider(connection, "disable_trigger", lambda: connection.execute(
        "UPDATE records SET subject = 'case-elsewhere' WHERE seq = 321"))
    bad = await cli("--json")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert json.loads(bad.stdout)["first_bad_seq"] == 321
    text = await cli()
    assert (text.returncode, text.stdout.splitlines()[0]) == (1, "BAD: the first bad record is record 321.")
