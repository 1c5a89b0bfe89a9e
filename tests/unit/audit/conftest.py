"""Fixtures for the audit tests: a sample chain, a signing key, and a way to sign checkpoints of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.chain import AuditRecord
from services.audit.checkpoint import (
    SignedCheckpoint,
    generate_private_key,
    key_id,
    make_checkpoint,
    public_key_to_pem,
    sign_checkpoint,
)
from tests.unit.audit.audit_samples import SEALED_AT, build_chain


@pytest.fixture(scope="session")
def chain_100() -> list[AuditRecord]:
    return build_chain(100)


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture(scope="session")
def sign_at(signing_key: Ed25519PrivateKey) -> Callable[[list[AuditRecord], int], SignedCheckpoint]:
    def sign(records: list[AuditRecord], size: int) -> SignedCheckpoint:
        checkpoint = make_checkpoint(records[:size], key_id=key_id(signing_key.public_key()), sealed_at=SEALED_AT)
        return sign_checkpoint(checkpoint, signing_key)

    return sign


@pytest.fixture(scope="session")
def public_pem(signing_key: Ed25519PrivateKey) -> bytes:
    return public_key_to_pem(signing_key.public_key())


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    return tmp_path / "export"
