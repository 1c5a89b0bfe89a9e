"""Checkpoints and proofs against the real PostgreSQL: sealing, the stored tree, and the auditor's HTTP doors.

A log of 70,000 records (enough for subtrees of 2^16) is sealed in uneven steps; everything the service
stores or serves is checked against the pure core (merkle.py) computed from all the leaves at once.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from services.audit import store
from services.audit.api import router
from services.audit.chain import AuditRecord
from services.audit.checkpoint import (
    SignedCheckpoint,
    generate_private_key,
    key_id,
    load_public_key_pem,
    verify_checkpoint,
)
from services.audit.checkpoints import BrokenLog, seal_checkpoint, seal_periodically
from services.audit.merkle import (
    MerkleBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from services.audit.recorder import Recorder
from services.audit.tree import subtree_root
from services.runtime.service import ServiceContext
from services.runtime.settings import ServiceSettings
from tests.unit.audit.audit_samples import build_chain
from tests.unit.audit.audit_scratch import auditor_authorization, centre_records, scratch_database, token_authority

pytestmark = pytest.mark.integration

RECORDS = 70_000
STEP = 10_007  # seals that end nowhere near a subtree boundary


@pytest.fixture(scope="module")
def chain() -> list[AuditRecord]:
    return build_chain(RECORDS)


@pytest.fixture(scope="module")
def leaves(chain: list[AuditRecord]) -> list[bytes]:
    return [bytes.fromhex(record.record_hash) for record in chain]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
async def sealed(chain: list[AuditRecord], key: Ed25519PrivateKey) -> AsyncIterator[asyncpg.Pool]:
    """The log, sealed every STEP records while it grows."""
    async with scratch_database("test_audit_checkpoints") as (_, pool):
        async with pool.acquire() as connection:
            for start in range(0, RECORDS, STEP):
                async with connection.transaction():
                    await store.append_many(connection, chain[start:start + STEP])
                assert await seal_checkpoint(connection, key, max_records=STEP, writer_role="audit_writer")
            assert await seal_checkpoint(connection, key, max_records=STEP) is None, "nothing new to seal"
        yield pool


def api(pool: asyncpg.Pool) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(router)
    app.state.context = ServiceContext(settings=ServiceSettings(service_name="audit"), pool=pool,
                                       broker=None, relay=None, consumers=())  # type: ignore[arg-type]
    app.state.token_authority = token_authority()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit",
                             headers=auditor_authorization())


async def test_each_checkpoint_signs_the_root_of_every_record_before_it(
        sealed: asyncpg.Pool, leaves: list[bytes], key: Ed25519PrivateKey) -> None:
    async with sealed.acquire() as connection:
        checkpoints = await store.checkpoints(connection)
        latest = await store.latest_checkpoint(connection)
    sizes = [signed.checkpoint.size for signed in checkpoints]
    assert sizes == [*range(STEP, RECORDS, STEP), RECORDS]
    for signed in checkpoints:
        size = signed.checkpoint.size
        assert verify_checkpoint(signed, key.public_key())
        assert signed.checkpoint.root_hash == root(leaves[:size]).hex()
        assert signed.checkpoint.last_record_hash == leaves[size - 1].hex()
    builder = MerkleBuilder()
    builder.extend(leaves)
    assert latest is not None and latest[1] == builder.frontier(), "the stored frontier resumes the next seal"


async def test_stored_subtrees_are_the_roots_of_their_records(sealed: asyncpg.Pool, leaves: list[bytes]) -> None:
    async with sealed.acquire() as connection:
        rows = await connection.fetch("SELECT height, index, hash FROM merkle_subtrees ORDER BY height, index")
    by_height: dict[int, int] = {}
    for row in rows:
        span = 1 << row["height"]
        first = row["index"] * span
        assert bytes(row["hash"]) == subtree_root([leaf_hash(leaf) for leaf in leaves[first:first + span]])
        by_height[row["height"]] = by_height.get(row["height"], 0) + 1
    assert by_height == {8: RECORDS // 256, 16: RECORDS // 65536}


async def test_inclusion_proofs_over_http_verify_against_the_signed_root(
        sealed: asyncpg.Pool, leaves: list[bytes]) -> None:
    async with api(sealed) as client:
        published = (await client.get("/audit/public-key")).json()
        public_key = load_public_key_pem(published["public_key_pem"].encode())
        assert published["key_id"] == key_id(public_key)
        checkpoints = (await client.get("/audit/checkpoints")).json()
        sizes = [entry["size"] for entry in checkpoints]
        chosen = random.Random(5)
        cases = [(1, sizes[0]), (sizes[0], sizes[0]), (65_536, RECORDS), (65_537, RECORDS), (RECORDS, RECORDS)]
        cases += [(chosen.randint(1, size), size) for size in sizes for _ in range(3)]
        for number, (seq, size) in enumerate(cases):
            response = await client.get("/audit/proofs/inclusion", params={"seq": seq, "size": size})
            assert response.status_code == 200, response.text
            proof = response.json()
            path = [bytes.fromhex(node) for node in proof["proof"]]
            signed = SignedCheckpoint.from_dict(proof["checkpoint"])
            assert verify_checkpoint(signed, public_key)
            assert verify_inclusion(leaves[seq - 1], seq - 1, size, path, bytes.fromhex(signed.checkpoint.root_hash))
            if number % 4 == 0:  # the pure core rehashes every leaf for each proof: a sample is enough
                assert path == inclusion_proof(seq - 1, size, leaves)
        latest = (await client.get("/audit/proofs/inclusion", params={"seq": 12})).json()
        assert latest["size"] == RECORDS and len(latest["proof"]) == 17


async def test_consistency_proofs_over_http_verify_between_signed_roots(
        sealed: asyncpg.Pool, leaves: list[bytes]) -> None:
    async with api(sealed) as client:
        sizes = [entry["size"] for entry in (await client.get("/audit/checkpoints")).json()]
        for old in sizes:
            for new in sizes:
                if old > new:
                    continue
                response = await client.get("/audit/proofs/consistency", params={"old": old, "new": new})
                assert response.status_code == 200, response.text
                proof = response.json()
                path = [bytes.fromhex(node) for node in proof["proof"]]
                assert verify_consistency(old, new, bytes.fromhex(proof["old_checkpoint"]["root_hash"]),
                                          bytes.fromhex(proof["new_checkpoint"]["root_hash"]), path)
                if old == sizes[0] or new == sizes[-1]:
                    assert path == consistency_proof(old, new, leaves)


async def test_what_cannot_be_proved_is_refused(sealed: asyncpg.Pool) -> None:
    async with api(sealed) as client:
        for path, params in [("inclusion", {"seq": 5, "size": 12_345}), ("inclusion", {"seq": STEP + 1, "size": STEP}),
                             ("consistency", {"old": STEP * 2, "new": STEP}),
                             ("consistency", {"old": 1, "new": STEP})]:
            response = await client.get(f"/audit/proofs/{path}", params=params)
            assert response.status_code == 404, (path, params, response.text)
        assert (await client.get("/audit/proofs/inclusion", params={"seq": 0})).status_code == 422
        assert (await client.get("/audit/checkpoints", params={"after": STEP * 6})).json()[0]["size"] == RECORDS
        assert (await client.get("/audit/public-key", params={"key_id": "0" * 16})).status_code == 404


async def test_a_proof_from_a_tampered_subtree_is_refused_not_served(sealed: asyncpg.Pool) -> None:
    async with sealed.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        await connection.execute("UPDATE merkle_subtrees SET hash = sha256(hash) WHERE height = 8 AND index = 3")
    try:
        async with api(sealed) as client:
            response = await client.get("/audit/proofs/inclusion", params={"seq": 1, "size": RECORDS})
            assert response.status_code == 409 and "run verify" in response.json()["detail"]
            elsewhere = await client.get("/audit/proofs/inclusion", params={"seq": 1, "size": STEP})
            assert elsewhere.status_code == 409, "the tampered subtree lies on this path too"
    finally:
        async with sealed.acquire() as connection, connection.transaction():
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("UPDATE merkle_subtrees SET hash = $1 WHERE height = 8 AND index = 3",
                                     subtree_root([leaf_hash(bytes.fromhex(r)) for r in await connection.fetchval(
                                         "SELECT array_agg(record_hash ORDER BY seq) FROM records"
                                         " WHERE seq > 768 AND seq <= 1024")]))


async def test_sealing_refuses_to_vouch_for_a_changed_record(key: Ed25519PrivateKey) -> None:
    async with scratch_database("test_audit_seal_refuses") as (_, pool), pool.acquire() as connection:
        chain = build_chain(300)
        await store.append_many(connection, chain[:100])
        assert await seal_checkpoint(connection, key, max_records=1000)
        await store.append_many(connection, chain[100:])
        await connection.execute("SET session_replication_role = replica")
        await connection.execute("UPDATE records SET source = '/forged' WHERE seq = 150")
        with pytest.raises(BrokenLog, match="record 150"):
            await seal_checkpoint(connection, key, max_records=1000)
        await connection.execute("UPDATE records SET source = $1 WHERE seq = 150", chain[149].source)
        # The unsigned frontier the next seal resumes from is checked against the signed root too.
        await connection.execute("UPDATE checkpoints SET merkle_frontier = ARRAY[$1]::text[]", "00" * 32)
        with pytest.raises(BrokenLog, match="frontier"):
            await seal_checkpoint(connection, key, max_records=1000)


async def test_the_background_task_seals_by_count_and_by_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "keys" / "checkpoint.pem"
    monkeypatch.setenv("AUDIT_CHECKPOINT_RECORDS", "100")
    monkeypatch.setenv("AUDIT_CHECKPOINT_INTERVAL_S", "0.5")
    monkeypatch.setenv("AUDIT_SIGNING_KEY_FILE", str(key_file))
    monkeypatch.delenv("AUDIT_SIGNING_KEY", raising=False)
    async with scratch_database("test_audit_seal_task") as (_, pool):
        context = ServiceContext(settings=ServiceSettings(service_name="audit"), pool=pool,
                                 broker=None, relay=None, consumers=())  # type: ignore[arg-type]
        task = asyncio.create_task(seal_periodically(context))
        try:
            recorder = Recorder(["test"], writer_role="audit_writer")
            recorder.pool = pool
            await recorder.handle_batch(list(centre_records(25)))  # 250 records at once

            async def sizes() -> list[int]:
                async with pool.acquire() as connection:
                    return [signed.checkpoint.size for signed in await store.checkpoints(connection)]

            for _ in range(100):
                if (await sizes())[-1:] == [250]:
                    break
                await asyncio.sleep(0.1)
            assert await sizes() == [100, 200, 250], "two by count, the rest by time"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert key_file.exists() and os.stat(key_file).st_mode & 0o777 == 0o600
        async with pool.acquire() as connection:
            registered: dict[str, Any] = await store.public_keys(connection)
        assert len(registered) == 1
