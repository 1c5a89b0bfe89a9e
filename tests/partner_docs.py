"""The signature check exactly as the docs show it to partners, executed by the tests that verify
deliveries: if the documented code stops matching what the centre signs, those tests fail."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]


def documented_verify(document: Path, after: str) -> Callable[..., bool]:
    """The ``verify`` function exactly as ``document`` shows it to partners (the first python block after ``after``)."""
    text = document.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text[text.index(after):], re.DOTALL)
    assert code is not None and "def verify(" in code.group(1), f"no verify() in {document.name} after {after!r}"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(document), "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


PARTNER_DOCS_VERIFY = documented_verify(ROOT / "docs" / "partners.md", "## Verifying a delivery")
README_VERIFY = documented_verify(ROOT / "README.md", "## Partners: subscribe to events and verify them")
