"""Identifying data sealed per case: AES-GCM under the case's own key, that key wrapped by a master key.

Erasing a case deletes its wrapped key (crypto-shredding): every copy of its sealed identity, in events
and in the audit stream, becomes unreadable, while the records that hold the ciphertext stay intact and
the audit chain still verifies.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from schemas.events import SealedIdentity

NONCE_BYTES = 12


def wrapping_key(master_secret: str) -> bytes:
    """A 256-bit key-wrapping key derived from the configured master secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"matching-centre case keys").derive(
        master_secret.encode()
    )


def new_case_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_case_key(case_key: bytes, case_id: str, master_secret: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(wrapping_key(master_secret)).encrypt(nonce, case_key, case_id.encode())


def unwrap_case_key(wrapped: bytes, case_id: str, master_secret: str) -> bytes:
    return AESGCM(wrapping_key(master_secret)).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], case_id.encode())


def seal_identity(identity: dict[str, Any], case_id: str, case_key: bytes) -> SealedIdentity:
    """Encrypt identifying fields; the case id is bound as associated data so a blob cannot be moved."""
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(case_key).encrypt(nonce, json.dumps(identity, sort_keys=True).encode(), case_id.encode())
    return SealedIdentity(
        key_id=case_id,
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(ciphertext).decode(),
    )


def open_identity(sealed: SealedIdentity, case_key: bytes) -> dict[str, Any]:
    plaintext = AESGCM(case_key).decrypt(
        base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), sealed.key_id.encode()
    )
    return json.loads(plaintext)  # type: ignore[no-any-return]
