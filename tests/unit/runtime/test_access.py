"""The token rules on their own, without a service: what a token must carry to be believed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException

from services.runtime import tokens
from services.runtime.access import Caller, TokenAuthority
from services.runtime.settings import ServiceSettings

AUTHORITY = TokenAuthority("a-test-secret-of-at-least-thirty-two-bytes", "centre-test", "centre-test-api")


def test_a_token_names_its_subject_role_and_organisation() -> None:
    caller = AUTHORITY.verify(AUTHORITY.issue("partner-1", "partner", organisation_id="org-a"))
    assert caller == Caller("partner-1", "partner", "org-a")
    assert AUTHORITY.verify(AUTHORITY.issue("approver-1", "approver")).organisation_id is None


@pytest.mark.parametrize("role, organisation_id", [("partner", None), ("caseworker", "org-a"), ("root", None)])
def test_tokens_that_would_break_the_rules_are_not_issued(role: str, organisation_id: str | None) -> None:
    with pytest.raises(ValueError):
        AUTHORITY.issue("someone", role, organisation_id=organisation_id)  # type: ignore[arg-type]


def test_expired_and_foreign_tokens_are_401() -> None:
    expired = AUTHORITY.issue("someone", "admin", lifetime=timedelta(minutes=1),
                              now=datetime.now(UTC) - timedelta(hours=1))
    foreign = TokenAuthority("another-secret-of-at-least-thirty-two-bytes", "centre-test", "centre-test-api")
    for token, reason in ((expired, "expired"), (foreign.issue("someone", "admin"), "signature")):
        with pytest.raises(HTTPException) as refusal:
            AUTHORITY.verify(token)
        assert refusal.value.status_code == 401 and reason in refusal.value.detail


def test_a_partner_speaks_only_for_its_own_organisation() -> None:
    partner = Caller("p", "partner", "org-a")
    assert partner.speaks_for("org-a") and not partner.speaks_for("org-b") and not partner.speaks_for(None)
    assert Caller("c", "caseworker").speaks_for("org-b")
    with pytest.raises(HTTPException) as refusal:
        partner.refuse_unless_speaks_for("org-b", "host 'h-1'")
    assert refusal.value.status_code == 403


def test_the_command_line_issues_a_token_the_services_accept(capsys: pytest.CaptureFixture[str]) -> None:
    issued = tokens.main(["--role", "partner", "--subject", "partner-x", "--organisation", "org-x", "--minutes", "5"])
    assert issued == 0
    token = capsys.readouterr().out.strip()
    caller = TokenAuthority.from_settings(ServiceSettings()).verify(token)
    assert caller == Caller("partner-x", "partner", "org-x")
    with pytest.raises(SystemExit):
        tokens.main(["--role", "partner", "--subject", "partner-x"])
