"""The auditor's standalone verifier: independent of the repo, in agreement with it, and hard to fool."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.audit import standalone_verifier as standalone
from services.audit.chain import AuditRecord, canonical_bytes, seal
from services.audit.checkpoint import (
    SignedCheckpoint,
    generate_private_key,
    key_id,
    make_checkpoint,
    public_key_to_pem,
    sign_checkpoint,
    write_export,
)
from services.audit.merkle import MerkleBuilder, root
from tests.unit.audit.audit_samples import SEALED_AT, build_chain, record_fields, reseal_from

SCRIPT = Path(standalone.__file__)
CHECKPOINT_SIZES = (10, 64, 100)
Signer = Callable[[list[AuditRecord], int], SignedCheckpoint]


@pytest.fixture
def good_export(chain_100: list[AuditRecord], sign_at: Signer, public_pem: bytes, export_dir: Path) -> Path:
    write_export(export_dir, chain_100, [sign_at(chain_100, size) for size in CHECKPOINT_SIZES], public_pem)
    return export_dir


def read_lines(export: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (export / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def write_lines(export: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    (export / "records.jsonl").write_text(text, encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def failure_of(export: Path, **kwargs: Any) -> str | None:
    report = standalone.verify_export(export, **kwargs)
    assert report.ok == (report.failure is None)
    return report.failure


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(script), *args], capture_output=True, text=True, timeout=120)


# --- independence and agreement ------------------------------------------------------------------------


def test_the_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(record_fields())
def test_the_verifier_hashes_records_exactly_like_the_service(fields: dict[str, Any]) -> None:
    record = seal(**fields, prev=None)
    exported = json.loads(json.dumps(record.to_dict(), ensure_ascii=False))
    assert standalone.canonical_text(exported).encode("utf-8") == canonical_bytes(record)
    assert standalone.record_hash(exported) == record.record_hash


@given(st.integers(0, 200))
def test_the_verifier_builds_the_same_merkle_root(size: int) -> None:
    leaves = [i.to_bytes(32, "big") for i in range(size)]
    builder = standalone.MerkleBuilder()
    for leaf in leaves:
        builder.append(leaf)
    assert builder.root() == root(leaves)


def test_the_verifier_reads_checkpoints_like_the_service(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    signed = sign_at(chain_100, 64)
    assert standalone.checkpoint_signed_bytes(signed.to_dict()) == signed.checkpoint.signed_bytes()
    assert standalone.key_id(signing_key.public_key()) == key_id(signing_key.public_key())


# --- the command line ------------------------------------------------------------------------------------


def test_the_script_accepts_a_good_export(good_export: Path, signing_key: Ed25519PrivateKey) -> None:
    result = run_script(SCRIPT, str(good_export))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: GOOD" in result.stdout
    assert key_id(signing_key.public_key()) in result.stdout
    assert "100 checked" in result.stdout
    assert "10, 64, 100" in result.stdout


def test_the_script_rejects_a_modified_export_and_names_the_record(good_export: Path) -> None:
    records = read_lines(good_export)
    records[36]["payload"]["household_size"] = 1
    write_lines(good_export, records)
    result = run_script(SCRIPT, str(good_export))
    assert result.returncode == 1
    assert "RESULT: BAD" in result.stdout
    assert "record seq 37" in result.stdout


def test_a_copy_of_the_script_alone_does_the_job(good_export: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "auditor" / "verify.py"
    lonely.parent.mkdir()
    shutil.copy(SCRIPT, lonely)
    assert run_script(lonely, str(good_export)).returncode == 0
    (good_export / "checkpoints.json").write_text("[]")
    # Dropping every checkpoint still leaves a consistent chain: accepted, with a warning.
    result = run_script(lonely, str(good_export))
    assert result.returncode == 0 and "no checkpoints" in result.stdout


def test_the_script_pins_the_published_key(
    chain_100: list[AuditRecord], good_export: Path, public_pem: bytes, tmp_path: Path
) -> None:
    # Someone rewrites the log and re-signs it all with a key of their own.
    impostor = generate_private_key()
    forged = reseal_from(chain_100, 5, payload={"decision": "forged"})
    forged_checkpoint = sign_checkpoint(
        make_checkpoint(forged, key_id=key_id(impostor.public_key()), sealed_at=SEALED_AT), impostor
    )
    forged_export = tmp_path / "forged"
    write_export(forged_export, forged, [forged_checkpoint], public_key_to_pem(impostor.public_key()))
    unpinned = run_script(SCRIPT, str(forged_export))
    assert unpinned.returncode == 0 and key_id(impostor.public_key()) in unpinned.stdout

    published = tmp_path / "published.pem"
    published.write_bytes(public_pem)
    pinned = run_script(SCRIPT, str(forged_export), "--public-key", str(published))
    assert pinned.returncode == 1 and "not the pinned key" in pinned.stdout
    by_id = run_script(SCRIPT, str(forged_export), "--key-id", key_id(standalone.load_public_key(public_pem)))
    assert by_id.returncode == 1 and "not the expected" in by_id.stdout
    assert run_script(SCRIPT, str(good_export), "--public-key", str(published)).returncode == 0


def test_the_script_reports_a_missing_directory(tmp_path: Path) -> None:
    result = run_script(SCRIPT, str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "missing" in result.stdout


# --- every kind of tampering, in process ---------------------------------------------------------------


def test_a_good_export_passes(good_export: Path) -> None:
    report = standalone.verify_export(good_export)
    assert report.ok, report.lines
    assert any("Merkle root and last hash match at size(s) 10, 64, 100" in line for line in report.lines)


def test_a_changed_field(good_export: Path) -> None:
    records = read_lines(good_export)
    records[36]["event_type"] = "org.matchingcentre.match.accepted.v1"
    write_lines(good_export, records)
    failure = failure_of(good_export) or ""
    assert "record seq 37" in failure and "record_hash does not match" in failure


def test_a_deleted_record(good_export: Path) -> None:
    records = read_lines(good_export)
    del records[49]
    write_lines(good_export, records)
    failure = failure_of(good_export) or ""
    assert "record seq 50" in failure and "missing" in failure


def test_an_inserted_record(good_export: Path) -> None:
    records = read_lines(good_export)
    records.insert(20, records[19])
    write_lines(good_export, records)
    assert "record seq 21" in (failure_of(good_export) or "")


def test_two_swapped_records(good_export: Path) -> None:
    records = read_lines(good_export)
    records[29], records[30] = records[30], records[29]
    write_lines(good_export, records)
    assert "record seq 30" in (failure_of(good_export) or "")


def test_a_record_resealed_after_a_change_breaks_the_next_link(
    chain_100: list[AuditRecord], good_export: Path
) -> None:
    records = read_lines(good_export)
    fields = {k: v for k, v in records[60].items() if k not in ("seq", "prev_hash", "record_hash")}
    records[60] = seal(**{**fields, "payload": {"decision": "forged"}}, prev=chain_100[59]).to_dict()
    write_lines(good_export, records)
    failure = failure_of(good_export) or ""
    assert "record seq 62" in failure and "prev_hash" in failure


def test_a_log_resealed_to_the_end_is_caught_by_the_checkpoint(
    chain_100: list[AuditRecord], good_export: Path
) -> None:
    forged = reseal_from(chain_100, 70, payload={"decision": "forged"})
    write_lines(good_export, [record.to_dict() for record in forged])
    edit_json(good_export / "manifest.json", lambda m: m.update(last_record_hash=forged[-1].record_hash))
    failure = failure_of(good_export) or ""
    assert "checkpoint #3 (size 100)" in failure


def test_a_cut_off_tail_is_caught_by_the_checkpoint(chain_100: list[AuditRecord], good_export: Path) -> None:
    write_lines(good_export, read_lines(good_export)[:95])
    assert "holds 95 records" in (failure_of(good_export) or "")
    edit_json(good_export / "manifest.json", lambda m: m.update(
        last_seq=95, record_count=95, last_record_hash=chain_100[94].record_hash))
    failure = failure_of(good_export) or ""
    assert "checkpoint #3 (size 100) reaches past the last record" in failure


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("root_hash", "ab" * 32),
        ("size", 63),
        ("last_record_hash", "cd" * 32),
        ("sealed_at", "2020-01-01T00:00:00+00:00"),
    ],
)
def test_a_forged_checkpoint(good_export: Path, field: str, value: Any) -> None:
    edit_json(good_export / "checkpoints.json", lambda cps: cps[1].update({field: value}))
    failure = failure_of(good_export) or ""
    assert "checkpoint #2" in failure and "signature does not verify" in failure


def test_a_checkpoint_signed_by_another_key(good_export: Path, chain_100: list[AuditRecord]) -> None:
    impostor = generate_private_key()
    signature = impostor.sign(
        standalone.checkpoint_signed_bytes(json.loads((good_export / "checkpoints.json").read_text())[0])
    ).hex()
    edit_json(good_export / "checkpoints.json", lambda cps: cps[0].update(signature=signature))
    assert "checkpoint #1 (size 10): signature does not verify" in (failure_of(good_export) or "")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.update(prev_hash="1" * 64), "genesis"),
        (lambda m: m.update(first_seq=2, last_seq=101), "record seq 2"),
        (lambda m: m.update(record_count=7), "do not hold"),
        (lambda m: m.update(format="something-else/9"), "unknown export format"),
        (lambda m: m.update(last_record_hash="2" * 64), "last_record_hash"),
    ],
)
def test_a_tampered_manifest(good_export: Path, change: Callable[[dict[str, Any]], None], expected: str) -> None:
    edit_json(good_export / "manifest.json", change)
    assert expected in (failure_of(good_export) or "")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("not json at all", "line 5: not a JSON record"),
        ('{"seq": 5}', "line 5: not an audit record"),
        ("[1, 2]", "line 5: not an audit record"),
    ],
)
def test_a_broken_line(good_export: Path, line: str, expected: str) -> None:
    lines = (good_export / "records.jsonl").read_text(encoding="utf-8").splitlines()
    lines[4] = line
    (good_export / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert expected in (failure_of(good_export) or "")


def test_a_value_without_canonical_json(good_export: Path) -> None:
    lines = (good_export / "records.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[2])
    record["payload"] = {"score": float("nan")}
    lines[2] = json.dumps(record)  # writes NaN, which json.loads accepts but JSON does not have
    (good_export / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "record seq 3" in (failure_of(good_export) or "")


@pytest.mark.parametrize("name", ["records.jsonl", "checkpoints.json", "public_key.pem", "manifest.json"])
def test_a_missing_file(good_export: Path, name: str) -> None:
    (good_export / name).unlink()
    assert f"{name} is missing" in (failure_of(good_export) or "")


# --- exports that start later in the stream ----------------------------------------------------------


@pytest.fixture
def segment_export(chain_100: list[AuditRecord], sign_at: Signer, public_pem: bytes, tmp_path: Path) -> Path:
    builder = MerkleBuilder()
    builder.extend(bytes.fromhex(r.record_hash) for r in chain_100[:40])
    target = tmp_path / "segment"
    checkpoints = [sign_at(chain_100, size) for size in (10, 40, 64, 100)]
    write_export(target, chain_100[40:], checkpoints, public_pem, merkle_frontier=builder.frontier())
    return target


def test_a_segment_with_a_frontier_checks_every_root(segment_export: Path) -> None:
    report = standalone.verify_export(segment_export)
    assert report.ok, report.lines
    text = "\n".join(report.lines)
    assert "match at size(s) 40, 64, 100" in text and "size(s) 10 lie before this export" in text


def test_a_segment_without_a_frontier_checks_the_last_hashes(segment_export: Path) -> None:
    edit_json(segment_export / "manifest.json", lambda m: m.pop("merkle_frontier"))
    report = standalone.verify_export(segment_export)
    assert report.ok, report.lines
    assert any("last record hash matches at size(s) 40, 64, 100" in line for line in report.lines)


def test_a_segment_with_a_wrong_start(segment_export: Path) -> None:
    edit_json(segment_export / "manifest.json", lambda m: m.update(prev_hash="3" * 64))
    assert "checkpoint #2 (size 40)" in (failure_of(segment_export) or "")


def test_a_segment_with_a_wrong_frontier(segment_export: Path) -> None:
    edit_json(segment_export / "manifest.json", lambda m: m["merkle_frontier"].reverse())
    assert "Merkle root differs" in (failure_of(segment_export) or "")


def test_a_resealed_segment_is_caught(chain_100: list[AuditRecord], segment_export: Path) -> None:
    forged = reseal_from(chain_100, 45, payload={"decision": "forged"})[40:]
    write_lines(segment_export, [record.to_dict() for record in forged])
    edit_json(segment_export / "manifest.json", lambda m: m.update(last_record_hash=forged[-1].record_hash))
    assert "checkpoint #3 (size 64)" in (failure_of(segment_export) or "")


def test_an_empty_export(public_pem: bytes, export_dir: Path) -> None:
    write_export(export_dir, [], [], public_pem)
    assert standalone.verify_export(export_dir).ok


def test_a_longer_stream(sign_at: Signer, public_pem: bytes, export_dir: Path) -> None:
    records = build_chain(1500)
    write_export(export_dir, records, [sign_at(records, size) for size in (1, 1024, 1500)], public_pem)
    assert standalone.verify_export(export_dir).ok
