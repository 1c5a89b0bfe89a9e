"""Exports for an auditor: the standalone verifier accepts a good export and rejects a modified one.

The verifier runs as the auditor would run it: ``python standalone_verifier.py DIR`` in a separate process,
with nothing of the service imported.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.audit import standalone_verifier
from services.audit.checkpoint import generate_private_key, key_id
from services.audit.checkpoints import seal_checkpoint
from services.audit.export import Bound, ExportRefused, export_period
from services.audit.recorder import Recorder
from tests.unit.audit.audit_scratch import SCHEMA, centre_records, scratch_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = Path(standalone_verifier.__file__)


@pytest.fixture(scope="module")
async def log() -> AsyncIterator[tuple[str, str]]:
    """350 records, sealed at 100, 200, 300 and 350; the URL and the key id."""
    async with scratch_database("test_audit_export") as (url, pool):
        recorder = Recorder(["test"], writer_role="audit_writer")
        recorder.pool = pool
        key = generate_private_key()
        records = list(centre_records(35))
        async with pool.acquire() as connection:
            for start in range(0, 350, 100):
                await recorder.handle_batch(records[start:start + 100])
                await seal_checkpoint(connection, key, max_records=100)
        yield url, key_id(key.public_key())


@pytest.fixture
async def connection(log: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(log[0], server_settings={"search_path": SCHEMA})
    try:
        yield connection
    finally:
        await connection.close()


async def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [str(part) for part in command], cwd=ROOT, capture_output=True,
                                   text=True, timeout=60)


async def verify_offline(directory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return await run(sys.executable, VERIFIER, directory, *options)


async def test_a_whole_export_verifies_offline(connection: asyncpg.Connection, log: tuple[str, str],
                                               tmp_path: Path) -> None:
    summary = await export_period(connection, tmp_path / "all")
    assert (summary.manifest["first_seq"], summary.manifest["last_seq"], summary.checkpoints) == (1, 350, 4)
    result = await verify_offline(tmp_path / "all", "--key-id", log[1])
    assert result.returncode == 0, result.stdout
    assert "RESULT: GOOD" in result.stdout
    assert "Merkle root and last hash match at size(s) 100, 200, 300, 350" in result.stdout


async def test_a_period_from_the_middle_recomputes_the_signed_roots(connection: asyncpg.Connection,
                                                                     tmp_path: Path) -> None:
    summary = await export_period(connection, tmp_path / "part", Bound(seq=150), Bound(seq=260))
    assert summary.manifest["record_count"] == 111 and "merkle_frontier" in summary.manifest
    result = await verify_offline(tmp_path / "part")
    assert result.returncode == 0, result.stdout
    assert "Merkle root and last hash match at size(s) 200" in result.stdout


async def test_a_period_by_dates(connection: asyncpg.Connection, tmp_path: Path) -> None:
    everything = await export_period(connection, tmp_path / "dates", Bound.parse("2000-01-01"),
                                     Bound.parse("2100-01-01T00:00:00+00:00"))
    assert (everything.manifest["first_seq"], everything.manifest["last_seq"]) == (1, 350)
    nothing = await export_period(connection, tmp_path / "future", Bound.parse("2100-01-01"))
    assert nothing.manifest["record_count"] == 0
    assert (await verify_offline(tmp_path / "future")).returncode == 0
    with pytest.raises(ExportRefused):
        Bound.parse("last tuesday")
    with pytest.raises(FileExistsError):
        await export_period(connection, tmp_path / "dates")


@pytest.mark.parametrize("change", ["record", "deleted line", "swapped lines", "checkpoint", "truncated"])
async def test_a_modified_export_is_rejected(connection: asyncpg.Connection, tmp_path: Path, change: str) -> None:
    directory = tmp_path / "export"
    await export_period(connection, directory)
    records_file, checkpoints_file = directory / "records.jsonl", directory / "checkpoints.json"
    lines = records_file.read_text().splitlines(keepends=True)
    if change == "record":
        record = json.loads(lines[41])
        record["payload"]["case_id"] = "case-elsewhere"
        lines[41] = json.dumps(record) + "\n"
    elif change == "deleted line":
        del lines[41]
    elif change == "swapped lines":
        lines[41], lines[42] = lines[42], lines[41]
    elif change == "truncated":
        lines = lines[:250]
    if change == "checkpoint":
        checkpoints = json.loads(checkpoints_file.read_text())
        checkpoints[1]["size"] = 201
        checkpoints_file.write_text(json.dumps(checkpoints))
    else:
        records_file.write_text("".join(lines))
    result = await verify_offline(directory)
    assert result.returncode == 1, result.stdout
    assert "RESULT: BAD" in result.stdout
    expected = {"record": "record seq 42", "deleted line": "record seq 42", "swapped lines": "record seq 42",
                "checkpoint": "signature does not verify", "truncated": "holds 250 records"}[change]
    assert expected in result.stdout, result.stdout


async def test_the_cli_writes_an_export_the_verifier_accepts(log: tuple[str, str], tmp_path: Path) -> None:
    url, kid = log
    directory = tmp_path / "cli"
    written = await run(sys.executable, "-m", "services.audit.cli", "--database-url", url,
                        "export", "--from", "101", "--to", "300", directory)
    assert written.returncode == 0, written.stdout + written.stderr
    assert f"signed by key {kid}" in written.stdout
    assert (await verify_offline(directory, "--key-id", kid)).returncode == 0
    again = await run(sys.executable, "-m", "services.audit.cli", "--database-url", url, "export", directory)
    assert again.returncode == 2 and "already holds an export" in again.stderr
