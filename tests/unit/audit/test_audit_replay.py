"""What replay can do before the solver is plugged in: find a run in the log and compare proposals."""

from __future__ import annotations

import pytest

from services.audit.chain import AuditRecord, seal
from services.audit.replay import RUN_RECORDED, Proposal, compare_proposals, recorded_run


def record(seq: int, event_type: str, payload: dict[str, object], prev: AuditRecord | None) -> AuditRecord:
    return seal(event_id=f"evt-{seq}", event_type=event_type, source="/services/matching", subject="pool-north",
                event_time="2026-03-01T09:00:00+00:00", topic="t", partition=0, offset=seq, traceparent=None,
                payload=payload, prev=prev)


@pytest.mark.parametrize("run_type", RUN_RECORDED)
def test_a_run_is_found_with_the_proposals_and_withdrawals_that_name_it(run_type: str) -> None:
    first = record(1, "centre.match.proposed.v1", {"run_id": "run-1", "case_id": "c1", "host_id": "h1",
                                                   "score": 0.5, "explanation": {"score": 0.5}}, None)
    other = record(2, "centre.match.proposed.v1", {"run_id": "run-2", "case_id": "c2", "host_id": "h2",
                                                   "score": 0.1}, first)
    gone = record(3, "centre.match.proposal-withdrawn.v1", {"run_id": "run-1", "case_id": "c3", "host_id": "h3",
                                                            "proposal_id": "p3", "reason": "capacity"}, other)
    run = record(4, run_type, {"run_id": "run-1", "pool_id": "pool-north", "seed": 7}, gone)
    found = recorded_run("run-1", [run, gone, other, first])
    assert found is not None and found.seq == 4 and found.run["seed"] == 7
    assert found.proposals == (Proposal("c1", "h1", 0.5, {"score": 0.5}),)
    assert found.withdrawn == (("c3", "h3"),)
    assert recorded_run("run-9", [run]) is None


def test_proposals_are_compared_case_by_case() -> None:
    recorded = [Proposal("c1", "h1", 0.5), Proposal("c2", "h2", 0.4), Proposal("c3", "h3", 0.3)]
    assert compare_proposals(recorded, list(reversed(recorded))).identical
    replayed = [Proposal("c1", "h1", 0.5), Proposal("c2", "h2", 0.41), Proposal("c3", "h9", 0.3),
                Proposal("c4", "h4", 0.2)]
    difference = compare_proposals(recorded, replayed)
    assert not difference.identical
    assert difference.changed == ((Proposal("c2", "h2", 0.4), Proposal("c2", "h2", 0.41)),)
    assert difference.only_recorded == (Proposal("c3", "h3", 0.3),)
    assert difference.only_replayed == (Proposal("c3", "h9", 0.3), Proposal("c4", "h4", 0.2))


def test_the_verdict_names_each_difference_and_what_the_run_explains() -> None:
    from services.audit.replay import RecordedRun, judge, render_verdict

    run = RecordedRun("run-1", {"pool_id": "pool-north", "solver_version": "ortools 9.15; engine aaaa"}, 4,
                      (Proposal("c1", "h1", 0.5, {"score": 0.5}), Proposal("c2", "h2", 0.4, {"score": 0.4})),
                      (("c5", "h5"),))
    same = {"outcome": "solved", "proposals": [
        {"case_id": "c1", "host_id": "h1", "score": 0.5, "explanation": {"score": 0.5}},
        {"case_id": "c2", "host_id": "h2", "score": 0.4, "explanation": {"score": 0.4}},
        # the solver proposed c3 in the run too, but the pool had changed: the run says it was not applied
        {"case_id": "c3", "host_id": "h3", "score": 0.3}], "withdrawn": [{"case_id": "c5", "host_id": "h5"}],
        "not_applied": ["c3"], "solver_version": "ortools 9.15; engine aaaa"}
    verdict = judge(run, same)
    assert verdict.identical and verdict.explained == ("c3",)
    assert "IDENTICAL" in render_verdict(run, same, verdict)

    other = {"outcome": "solved", "wall_limit_hit": True, "solver_version": "ortools 9.15; engine aaaa",
             "withdrawn": [], "proposals": [
        {"case_id": "c1", "host_id": "h9", "score": 0.6, "explanation": {}},
        {"case_id": "c2", "host_id": "h2", "score": 0.4, "explanation": {"score": 0.4, "binding": ["people"]}}]}
    verdict = judge(run, other)
    assert not verdict.identical
    text = render_verdict(run, other, verdict)
    assert "case c1: recorded host h1" in text and "case c1: replayed host h9" in text
    assert "case c2, host h2" in text and "binding" in text
    assert "case c5: the run withdrew its proposal on host h5" in text
    assert "wall-clock limit" in text and "not by itself evidence" in text
    assert verdict.solver_changed is None and "another solver" not in text

    # the same difference, but the engine changed since the run: the verdict says so
    newer = RecordedRun("run-1", {"pool_id": "pool-north", "solver_version": "ortools 9.15; engine aaaa"}, 4,
                        run.proposals, run.withdrawn)
    verdict = judge(newer, {**other, "solver_version": "ortools 9.15; engine bbbb"})
    assert verdict.solver_changed == ("ortools 9.15; engine aaaa", "ortools 9.15; engine bbbb")
    text = render_verdict(newer, other, verdict)
    assert "solved by ortools 9.15; engine aaaa and the replay by ortools 9.15; engine bbbb" in text
    assert judge(newer, {**same, "solver_version": "ortools 9.15; engine aaaa"}).solver_changed is None

    mismatch = {"outcome": "inputs_differ", "recorded_digest": "aa", "rebuilt_digest": "bb",
                "differing_parts": ["hosts"], "inputs": {"recorded": {"hosts": 2}, "rebuilt": {"hosts": 2}}}
    text = render_verdict(run, mismatch, None)
    assert "MISMATCH" in text and "differing part(s): hosts" in text


def test_the_cases_a_run_held_back_are_compared_when_the_run_recorded_them() -> None:
    from services.audit.replay import RecordedRun, judge, render_verdict

    proposals = (Proposal("c1", "h1", 0.5, {"score": 0.5}),)
    solved = {"outcome": "solved", "solver_version": "ortools 9.15; engine aaaa", "withdrawn": [],
              "proposals": [{"case_id": "c1", "host_id": "h1", "score": 0.5, "explanation": {"score": 0.5}}]}
    v3 = RecordedRun("run-1", {"solver_version": "ortools 9.15; engine aaaa", "held_back": ["c2", "c3"]}, 4,
                     proposals, ())
    same = judge(v3, {**solved, "held_back": ["c3", "c2"]})
    assert same.identical
    assert "1 proposal(s), 0 withdrawal(s) and 2 held back recorded" in render_verdict(v3, solved, same)

    other = judge(v3, {**solved, "held_back": ["c3", "c4"]})
    assert not other.identical
    assert (other.held_back_only_recorded, other.held_back_only_replayed) == (("c2",), ("c4",))
    text = render_verdict(v3, solved, other)
    assert "case c2: the run held it back for the arrivals it expected; the replay does not" in text
    assert "case c4: the replay holds it back for the arrivals it expects; the run did not" in text

    # a run recorded before v3 says nothing of what it held back: there is nothing to compare
    v2 = RecordedRun("run-1", {"solver_version": "ortools 9.15; engine aaaa"}, 4, proposals, ())
    assert judge(v2, {**solved, "held_back": ["c4"]}).identical
