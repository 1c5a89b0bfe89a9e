"""Signed deliveries: the signature the centre sends is the one the documented partner code verifies."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import pytest

from services.notifications.signing import (
    DELIVERY_ID_HEADER,
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    delivery_body,
    signature,
    signed_headers,
)
from tests.partner_docs import PARTNER_DOCS_VERIFY

SECRET = b"a shared secret of org-a"
FACTS = {"event": {"id": "event-1", "type": "centre.match.proposed.v1", "data": {"case_id": "case-1"}}}


def delivery(now: int | None = None) -> tuple[dict[str, str], bytes]:
    body = delivery_body("delivery-1", FACTS)
    headers = signed_headers(delivery_id="delivery-1", key_id="key-1", secret=SECRET,
                             timestamp=now if now is not None else int(time.time()), body=body)
    return headers, body


def flip_last(text: str) -> str:
    return text[:-1] + ("1" if text[-1] == "0" else "0")


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1767225600.{}", hashlib.sha256).hexdigest()
    assert signature(SECRET, 1767225600, b"{}") == f"sha256={expected}"


def test_a_delivery_carries_its_id_timestamp_key_and_signature_and_the_id_is_signed_too() -> None:
    headers, body = delivery(now=1767225600)
    assert headers[DELIVERY_ID_HEADER] == "delivery-1"
    assert headers[TIMESTAMP_HEADER] == "1767225600"
    assert headers[KEY_ID_HEADER] == "key-1"
    assert headers[SIGNATURE_HEADER] == signature(SECRET, 1767225600, body)
    assert b'"delivery_id":"delivery-1"' in body


def test_the_body_of_a_delivery_is_the_same_every_time() -> None:
    reordered = {"event": dict(reversed(list(FACTS["event"].items())))}
    assert delivery_body("delivery-1", FACTS) == delivery_body("delivery-1", reordered)


def test_the_documented_verification_accepts_a_genuine_delivery() -> None:
    headers, body = delivery()
    assert PARTNER_DOCS_VERIFY(SECRET, headers, body)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b.replace(b"case-1", b"case-2")), id="body"),
        pytest.param(lambda h, b: (h | {TIMESTAMP_HEADER: str(int(h[TIMESTAMP_HEADER]) + 1)}, b), id="timestamp"),
        pytest.param(lambda h, b: (h | {SIGNATURE_HEADER: flip_last(h[SIGNATURE_HEADER])}, b), id="signature"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != SIGNATURE_HEADER}, b), id="no signature"),
        pytest.param(lambda h, b: (h | {TIMESTAMP_HEADER: "soon"}, b), id="not a timestamp"),
    ],
)
def test_the_documented_verification_rejects_a_tampered_delivery(tamper: Callable[..., Any]) -> None:
    headers, body = delivery()
    headers, body = tamper(headers, body)
    assert not PARTNER_DOCS_VERIFY(SECRET, headers, body)


def test_the_documented_verification_rejects_another_key_and_an_old_delivery() -> None:
    verify = PARTNER_DOCS_VERIFY
    headers, body = delivery()
    assert not verify(b"another partner's secret", headers, body)
    old_headers, old_body = delivery(now=int(time.time()) - 3600)
    assert not verify(SECRET, old_headers, old_body)
