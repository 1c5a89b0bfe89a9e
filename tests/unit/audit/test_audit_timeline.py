"""A case's history told from its records: in order, readable, explained, and with personal data sealed."""

from __future__ import annotations

from typing import Any

from services.audit.chain import AuditRecord, seal
from services.audit.timeline import case_timeline, explanation_lines, render_timeline
from tests.unit.audit.audit_scratch import EXPLANATION, held_back_run, journey, registered


def records_of(events: list[Any], *, first_seq: int = 1) -> list[AuditRecord]:
    records, prev = [], None
    for number, event in enumerate(events):
        fields = dict(event_id=f"evt-{number}", event_type=event.type, source="/services/test",
                      subject=event.key(), event_time=f"2026-03-01T09:00:{number:02d}+00:00", topic="t",
                      partition=0, offset=number, traceparent=None, payload=event.model_dump(mode="json"))
        prev = seal(**fields, prev=prev)
        records.append(prev)
    return records


def test_the_whole_journey_reads_in_order_with_who_did_what() -> None:
    entries = case_timeline("case-1", reversed(records_of(journey("case-1"))))
    assert [entry.step for entry in entries] == ["registered", "consent", "proposed", "reviewed", "decided",
                                                 "response", "response", "placed", "notification", "notification"]
    assert [entry.actor for entry in entries][:5] == ["org-desk", "caseworker-a", None, "caseworker-a", "approver-b"]
    text = render_timeline("case-1", entries)
    assert "approved by approver-b (reviewed by caseworker-a)" in text
    assert "consent to matching recorded by caseworker-a" in text and "with an interpreter" in text


def test_personal_data_stays_sealed() -> None:
    event = registered("case-1")
    text = render_timeline("case-1", case_timeline("case-1", records_of([event])))
    assert event.identity is not None
    for secret in (event.identity.ciphertext, event.identity.nonce, "dialysis", "single-income", "nurse"):
        assert secret not in text
    assert "identity sealed under key case-1" in text and "1 medical need(s) recorded" in text


def test_an_explanation_says_what_counted_what_bound_and_what_lost() -> None:
    lines = explanation_lines({**EXPLANATION, "solver_note": "warm start"})
    assert lines[0] == ("contributions: beneficiary_preference +0.400, prospects +0.250, host_preference +0.180, "
                        "ties +0.000")
    assert "capacity now full: people, school_places" in lines
    assert "not host host-2 (score +0.610): lower_score - fewer languages" in lines
    assert lines[-1] == "more: solver_note=warm start"


def test_odd_records_are_still_shown() -> None:
    plain = records_of(journey("case-1")[:1])[0]
    unreadable = AuditRecord(**{**plain.to_dict(), "seq": 2, "payload": {"unparseable_value_b64": "AA=="}})
    unknown = AuditRecord(**{**plain.to_dict(), "seq": 3, "event_type": "centre.future.v9"})
    broken = AuditRecord(**{**plain.to_dict(), "seq": 4, "payload": {"profile": "not an object"}})
    steps = [entry.step for entry in case_timeline("case-1", [plain, unreadable, unknown, broken])]
    assert steps == ["registered", "unreadable", "other", "other"]
    assert render_timeline("case-nobody", []) == "No records about case case-nobody in the audit log."


def test_a_run_that_held_the_case_back_is_in_its_history_and_a_run_that_did_not_is_not() -> None:
    events = [registered("case-1"), held_back_run("run-7", ["case-2", "case-1"]), held_back_run("run-8", ["case-2"])]
    entries = case_timeline("case-1", records_of(events))
    assert [entry.step for entry in entries] == ["registered", "held back"]
    assert entries[1].summary == (
        "not proposed by solver run run-7 of pool pool-north, though a place fits: the 40 arrivals it expected gain "
        "more from it; the case waits in the pool and the next run plans again")
    assert [entry.step for entry in case_timeline("case-2", records_of(events[1:]))] == ["held back", "held back"]
