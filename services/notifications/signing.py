"""How a webhook delivery proves it comes from the centre: HMAC-SHA256 over "timestamp.body".

The timestamp is inside what is signed, so a captured delivery cannot be replayed later with a fresh
timestamp; the body holds the delivery id, so the id a partner deduplicates on is signed too. The key id
names which shared secret signed it, so a partner can hold two secrets while a key is being rotated.
docs/partners.md shows the few lines a partner needs to verify a delivery; the tests run those lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

DELIVERY_ID_HEADER: Final = "Centre-Delivery-Id"
TIMESTAMP_HEADER: Final = "Centre-Timestamp"
KEY_ID_HEADER: Final = "Centre-Key-Id"
SIGNATURE_HEADER: Final = "Centre-Signature"
SIGNATURE_SCHEME: Final = "sha256="


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (seconds since the epoch)."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_SCHEME + digest


def signed_headers(*, delivery_id: str, key_id: str, secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a webhook delivery carries."""
    return {
        "Content-Type": "application/json",
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        KEY_ID_HEADER: key_id,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def delivery_body(delivery_id: str, facts: Mapping[str, Any]) -> bytes:
    """The bytes of a delivery: the same for every attempt and every re-send of one delivery."""
    document = {"delivery_id": delivery_id, "event": facts["event"]}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
