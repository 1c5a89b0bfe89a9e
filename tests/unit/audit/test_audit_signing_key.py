"""The checkpoint key: a configured secret wins; otherwise one development key, created once, kept private."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import SecretStr

from services.audit.checkpoint import generate_private_key, key_id, private_key_to_pem
from services.audit.settings import AuditSettings
from services.audit.signing_key import development_key, load_signing_key


def test_a_development_key_is_created_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit" / "key.pem"
    first = development_key(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert key_id(development_key(path).public_key()) == key_id(first.public_key())
    assert list(path.parent.iterdir()) == [path], "no draft left behind"


def test_processes_starting_together_end_up_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: key_id(development_key(path).public_key()), range(16)))
    assert len(set(keys)) == 1


def test_a_configured_key_wins_and_may_be_encrypted(tmp_path: Path) -> None:
    configured = generate_private_key()
    settings = AuditSettings(audit_signing_key=SecretStr(private_key_to_pem(configured, b"pass").decode()),
                             audit_signing_key_password=SecretStr("pass"),
                             audit_signing_key_file=tmp_path / "unused.pem")
    assert key_id(load_signing_key(settings).public_key()) == key_id(configured.public_key())
    assert not (tmp_path / "unused.pem").exists()


def test_settings_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AUDIT_CHECKPOINT_RECORDS", "250")
    monkeypatch.setenv("AUDIT_WRITER_ROLE", "")
    settings = AuditSettings()
    assert settings.audit_checkpoint_records == 250 and settings.writer_role is None
