"""Identifying data is sealed per case, and log lines cannot carry it."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from services.runtime.logs import REDACTED, redact_personal_fields
from services.runtime.sealing import new_case_key, open_identity, seal_identity, unwrap_case_key, wrap_case_key

IDENTITY = {"full_name": "Synthetic Person", "email": "person@example.org"}


def test_a_sealed_identity_opens_only_with_its_own_case_key_and_case_id() -> None:
    key = new_case_key()
    sealed = seal_identity(IDENTITY, "case-1", key)
    assert "Synthetic" not in sealed.ciphertext
    assert open_identity(sealed, key) == IDENTITY
    with pytest.raises(InvalidTag):
        open_identity(sealed, new_case_key())
    with pytest.raises(InvalidTag):
        open_identity(sealed.model_copy(update={"key_id": "case-2"}), key)


def test_case_keys_are_wrapped_by_the_master_key() -> None:
    key = new_case_key()
    wrapped = wrap_case_key(key, "case-1", "master")
    assert unwrap_case_key(wrapped, "case-1", "master") == key
    with pytest.raises(InvalidTag):
        unwrap_case_key(wrapped, "case-1", "another master")


def test_fields_that_may_hold_personal_data_are_redacted_from_log_lines() -> None:
    line = redact_personal_fields(None, "info", {"event": "registered", "case_id": "case-1", "full_name": "X",
                                                 "email": "x@example.org"})
    assert line == {"event": "registered", "case_id": "case-1", "full_name": REDACTED, "email": REDACTED}
