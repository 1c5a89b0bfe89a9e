"""``audit replay RUN`` over a real flow: the runs of a pool are rebuilt from the audit stream alone and solved
again with the same proposals; a changed input record in the log makes the replay say the inputs differ."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.centre import Centre, eventually
from tests.unit.audit.audit_scratch import scratch_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUN_RECORDED = "centre.match.solver-run-recorded.v3"
CAPACITY_UPDATED = "centre.host.capacity-updated.v1"
RECORD_COLUMNS = ('seq, event_id, event_type, source, subject, event_time, topic, partition, "offset", traceparent,'
                  " payload, prev_hash, record_hash, recorded_at")


async def replay_cli(database_url: str, run_id: str, *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.audit.cli", "--database-url", database_url, "replay", run_id, *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def runs_of(connection: asyncpg.Connection, pool: str) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT run_id, proposals, withdrawals, mechanism, blocking_pairs, stability, held_back, phases"
        " FROM matching.solver_runs"
        " WHERE pool_id = $1 ORDER BY started_at",
        pool)


async def all_in_the_log(connection: asyncpg.Connection, runs: list[asyncpg.Record]) -> bool:
    """Every run of the pool, what it made, and every input record at or below its watermark are recorded."""
    for run in runs:
        record = await connection.fetchrow(
            "SELECT payload FROM audit.records WHERE event_type = $1 AND (payload::jsonb) ->> 'run_id' = $2",
            RUN_RECORDED, run["run_id"])
        if record is None:
            return False
        made = await connection.fetchval(
            "SELECT count(*) FROM audit.records WHERE event_type IN ('centre.match.proposed.v1',"
            " 'centre.match.proposal-withdrawn.v1') AND (payload::jsonb) ->> 'run_id' = $1", run["run_id"])
        if made != run["proposals"] + run["withdrawals"]:
            return False
        for position in json.loads(record["payload"])["inputs"]["replay"]["watermark"]:
            upto = await connection.fetchval(
                'SELECT max("offset") FROM audit.records WHERE topic = $1 AND partition = $2',
                position["topic"], position["partition"])
            if upto is None or upto < position["offset"]:
                return False
    return True


async def test_runs_of_a_real_flow_replay_identically_and_a_changed_input_is_caught(centre: Centre) -> None:
    pool = f"replay-{uuid.uuid4().hex[:8]}"
    big = await centre.register_host(pool, people=6, place="near-relatives", school_places=0)
    cases = [await centre.register_case(pool, adults=2) for _ in range(3)]

    async def all_proposed() -> list[dict[str, Any]] | None:
        mine = [p for p in await centre.proposals("proposed") if p["case_id"] in cases]
        return mine if len(mine) == 3 else None

    first = (await eventually(all_proposed, what="three pending proposals"))[0]
    await centre.post("consent", f"/proposals/{first['proposal_id']}/review", {"recommendation": "approve"},
                      token=centre.caseworker)
    await centre.post("consent", f"/proposals/{first['proposal_id']}/decision", {"decision": "approved"},
                      token=centre.approver)
    small = await centre.register_host(pool, people=2, school_places=0)
    cut = await centre.put("intake", f"/hosts/{big}/capacity", {"version": 2, "capacity": {"people": 4, "beds": 4}},
                           token=centre.partner)
    assert cut.status_code == 200, cut.text

    connection = await centre.database()
    try:
        async def re_solved_after_the_cut() -> list[asyncpg.Record] | None:
            runs = await runs_of(connection, pool)
            if not runs:
                return None
            latest = await connection.fetchval(
                "SELECT inputs_digest FROM matching.solver_runs WHERE run_id = $1", runs[-1]["run_id"])
            held = await connection.fetchrow(
                "SELECT capacity_version FROM matching.hosts WHERE host_id = $1", big)
            dirty = await connection.fetchval("SELECT count(*) FROM matching.dirty_pools WHERE pool_id = $1", pool)
            known = await connection.fetchval("SELECT count(*) FROM matching.hosts WHERE host_id = $1", small)
            return runs if latest and held and held["capacity_version"] == 2 and known and not dirty else None

        await eventually(re_solved_after_the_cut, within=60, what="matching to re-solve the pool after the cut")

        async def recorded() -> list[asyncpg.Record] | None:
            runs = await runs_of(connection, pool)
            return runs if await all_in_the_log(connection, runs) else None

        runs = await eventually(recorded, within=60, what="the pool's runs and their inputs in the audit log")
        assert len(runs) >= 2, "the approval and the cut made matching solve the pool again"
        for run in runs:
            recorded_run = json.loads(await connection.fetchval(
                "SELECT payload FROM audit.records WHERE event_type = $1 AND (payload::jsonb) ->> 'run_id' = $2",
                RUN_RECORDED, run["run_id"]))
            assert {key: recorded_run[key] for key in ("mechanism", "blocking_pairs", "stability", "held_back")} == {
                "mechanism": run["mechanism"], "blocking_pairs": run["blocking_pairs"], "stability": run["stability"],
                "held_back": run["held_back"]}
            assert recorded_run["phases"] == json.loads(run["phases"]), "the steps the run took, as it kept them"
        assert sum(run["proposals"] for run in runs) >= 3
        assert any(json.loads(run["phases"]) for run in runs)

        identical = 0
        for run in runs:
            status, output = await replay_cli(centre.database_url, run["run_id"])
            assert "matches the run" in output, output
            if status != 0 and "stopped on its wall-clock limit" in output:
                continue  # a busy machine cut that run short: a replay may legitimately differ, and says so
            assert status == 0 and "IDENTICAL" in output, output
            identical += 1
        assert identical, "at least one run replays identically"

        status, output = await replay_cli(centre.database_url, runs[-1]["run_id"], "--json")
        verdict = json.loads(output[output.index("{"):])
        assert verdict["report"]["rebuilt_digest"] == verdict["report"]["recorded_digest"]
        assert verdict["verdict"]["identical"] or verdict["verdict"]["wall_limit_hit"], verdict
        assert status == (0 if verdict["verdict"]["identical"] else 1)

        status, output = await replay_cli(centre.database_url, "run-that-never-was")
        assert status == 1 and "no solver run" in output

        # An insider changes the cut in a copy of the log (the shared centre's log must stay intact for the
        # other tests): the last run's inputs no longer rebuild to its digest, and replay says which part.
        rows = await connection.fetch(f"SELECT {RECORD_COLUMNS} FROM audit.records ORDER BY seq")
    finally:
        await connection.close()

    cut_record = next(row for row in rows if row["event_type"] == CAPACITY_UPDATED
                      and json.loads(row["payload"])["host_id"] == big)
    async with scratch_database("test_audit_replay") as (url, pool_):
        async with pool_.acquire() as scratch:
            await scratch.copy_records_to_table("records", records=[tuple(row) for row in rows],
                                                columns=[c.strip().strip('"') for c in RECORD_COLUMNS.split(",")],
                                                schema_name="audit")
            payload = json.loads(cut_record["payload"])
            payload["capacity"]["people"] = 40
            await scratch.execute("ALTER TABLE audit.records DISABLE TRIGGER USER")
            await scratch.execute("UPDATE audit.records SET payload = $2 WHERE seq = $1",
                                  cut_record["seq"], json.dumps(payload, sort_keys=True, separators=(",", ":")))
            await scratch.execute("ALTER TABLE audit.records ENABLE TRIGGER USER")
        status, output = await replay_cli(url, runs[-1]["run_id"])
    assert status == 1, output
    assert "MISMATCH" in output and "could not be rebuilt" in output, output
    assert "differing part(s): hosts" in output, output
