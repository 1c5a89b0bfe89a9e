"""Where the checkpoint signing key comes from: a secret in production, a generated file in development.

The private key never enters the database that holds the log: someone who can rewrite the log must not
also be able to sign checkpoints for the rewrite. Only the public key is stored there (``signing_keys``),
so that every checkpoint stays verifiable after a key rotation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.checkpoint import generate_private_key, key_id, load_private_key_pem, private_key_to_pem
from services.audit.settings import AuditSettings

log = structlog.get_logger(__name__)


def load_signing_key(settings: AuditSettings) -> Ed25519PrivateKey:
    """The configured key (``AUDIT_SIGNING_KEY``), else the development key file, generated if missing."""
    password = settings.audit_signing_key_password.get_secret_value().encode() \
        if settings.audit_signing_key_password else None
    if settings.audit_signing_key is not None:
        return load_private_key_pem(settings.audit_signing_key.get_secret_value().encode(), password)
    return development_key(settings.audit_signing_key_file, password)


def development_key(path: Path, password: bytes | None = None) -> Ed25519PrivateKey:
    """Read the key file, or create it (mode 0600) when there is none yet.

    The new key is written to a file of its own and then hard-linked into place, which fails if the file
    exists: two processes starting together end up with one complete key, never a half-written one.
    """
    with contextlib.suppress(FileNotFoundError):
        return load_private_key_pem(path.read_bytes(), password)
    key = generate_private_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, draft_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    draft = Path(draft_name)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(private_key_to_pem(key, password))
        try:
            os.link(draft, path)
        except FileExistsError:
            return load_private_key_pem(path.read_bytes(), password)
    finally:
        draft.unlink(missing_ok=True)
    log.warning("generated a development checkpoint signing key; set AUDIT_SIGNING_KEY in production",
                key_id=key_id(key.public_key()), path=str(path))
    return key
