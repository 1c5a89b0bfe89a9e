"""Replaying a solver run from the audit log: ``python -m services.audit.cli replay RUN``.

A replay rebuilds a run's inputs from the audit stream alone, runs the matching solver again with the
recorded parameters and seed, and shows that the proposals (and, for runs recorded as v3, the cases held
back) are identical or exactly how they differ.

The seam is a process. A service never imports another service, so this module knows nothing of how
matching folds its events or solves: it selects the records the run depends on, by what the run itself
recorded (``inputs["replay"]["watermark"]``: the last input record matching had applied per topic partition
when it read the pool), pipes them as JSON lines into matching's replay entry point
(``python -m services.matching.replay --run RUN``), which rebuilds the pool, checks the recorded inputs
digest and solves, and compares the proposals it prints with those the log holds for the run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.audit.chain import AuditRecord

#: A solver run's record: v2 adds the mechanism and blocking pairs, and both stay readable.
RUN_RECORDED: tuple[str, ...] = tuple(f"centre.match.solver-run-recorded.v{n}" for n in (1, 2, 3))
PROPOSED = "centre.match.proposed.v1"
WITHDRAWN = "centre.match.proposal-withdrawn.v1"
#: The matching service's own records a replay needs besides its inputs: runs, proposals, withdrawals.
OWN_TYPES: tuple[str, ...] = (*RUN_RECORDED, PROPOSED, WITHDRAWN)


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a run proposed for one case, in the terms a replay must reproduce."""

    case_id: str
    host_id: str
    score: float
    explanation: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """A solver run as the log holds it: its record and the proposals and withdrawals that name it."""

    run_id: str
    run: Mapping[str, Any]
    seq: int
    proposals: tuple[Proposal, ...]
    withdrawn: tuple[tuple[str, str], ...]


def recorded_run(run_id: str, records: Iterable[AuditRecord]) -> RecordedRun | None:
    """The run ``run_id`` from the records naming it; None when the log holds no record of the run."""
    run: AuditRecord | None = None
    proposals: list[Proposal] = []
    withdrawn: list[tuple[str, str]] = []
    for record in sorted(records, key=lambda record: record.seq):
        payload = record.payload if isinstance(record.payload, Mapping) else {}
        if payload.get("run_id") != run_id:
            continue
        if record.event_type in RUN_RECORDED:
            run = record
        elif record.event_type == PROPOSED:
            proposals.append(Proposal(payload["case_id"], payload["host_id"], float(payload.get("score", 0.0)),
                                      payload.get("explanation") or {}))
        elif record.event_type == WITHDRAWN:
            withdrawn.append((payload["case_id"], payload["host_id"]))
    if run is None:
        return None
    return RecordedRun(run_id, run.payload, run.seq, tuple(proposals), tuple(withdrawn))


@dataclass(frozen=True, slots=True)
class ProposalDifference:
    """How a replay's proposals differ from the recorded ones (all empty: identical)."""

    only_recorded: tuple[Proposal, ...]
    only_replayed: tuple[Proposal, ...]
    changed: tuple[tuple[Proposal, Proposal], ...]

    @property
    def identical(self) -> bool:
        return not (self.only_recorded or self.only_replayed or self.changed)


def compare_proposals(recorded: Iterable[Proposal], replayed: Iterable[Proposal]) -> ProposalDifference:
    """Pair proposals by case; the same host with another score or explanation counts as changed."""
    before = {proposal.case_id: proposal for proposal in recorded}
    after = {proposal.case_id: proposal for proposal in replayed}
    only_recorded, only_replayed, changed = [], [], []
    for case_id in sorted(before.keys() | after.keys()):
        old, new = before.get(case_id), after.get(case_id)
        if new is None and old is not None:
            only_recorded.append(old)
        elif old is None and new is not None:
            only_replayed.append(new)
        elif old is not None and new is not None and old != new:
            if old.host_id != new.host_id:
                only_recorded.append(old)
                only_replayed.append(new)
            else:
                changed.append((old, new))
    return ProposalDifference(tuple(only_recorded), tuple(only_replayed), tuple(changed))


# --------------------------------------------------------------------------------------------------
# The process seam
# --------------------------------------------------------------------------------------------------

#: Matching's replay entry point; the auditor may point ``--solver`` at another build of it.
SOLVER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "services.matching.replay")


def replay_info(run: RecordedRun) -> Mapping[str, Any] | None:
    """What the run recorded for a replay (its watermark and more), or None for a run recorded before that."""
    inputs = run.run.get("inputs")
    info = inputs.get("replay") if isinstance(inputs, Mapping) else None
    return info if isinstance(info, Mapping) and isinstance(info.get("watermark"), list) else None


def watermark(info: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    return [(str(p["topic"]), int(p["partition"]), int(p["offset"])) for p in info["watermark"]]


def source_line(record: AuditRecord) -> str:
    """One record as the solver's entry point reads it (a JSON line)."""
    return json.dumps({"seq": record.seq, "event_id": record.event_id, "type": record.event_type,
                       "time": record.event_time, "topic": record.topic, "partition": record.partition,
                       "offset": record.offset, "payload": record.payload}, separators=(",", ":"))


async def run_solver(command: Sequence[str], run_id: str, records: Iterable[AuditRecord]) -> tuple[int, dict[str, Any]]:
    """Pipe the records into the solver's entry point; its exit status and its JSON report."""
    payload = "".join(source_line(record) + "\n" for record in records).encode("utf-8")
    process = await asyncio.create_subprocess_exec(*command, "--run", run_id, stdin=asyncio.subprocess.PIPE,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate(payload)
    code = process.returncode if process.returncode is not None else 2
    try:
        report = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
        report = {"outcome": "solver_failed", "reason": " | ".join(tail) or f"exit status {code}"}
    return code, report


# --------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a replay showed: identical, or how it differs (and whether the run itself explains it)."""

    identical: bool
    proposals: ProposalDifference
    withdrawals_only_recorded: tuple[tuple[str, str], ...]
    withdrawals_only_replayed: tuple[tuple[str, str], ...]
    explained: tuple[str, ...]
    wall_limit_hit: bool
    #: the run's solver version and the replay's, when they differ (another OR-Tools or engine code)
    solver_changed: tuple[str, str] | None = None
    #: cases held back for the arrivals expected by the run only, or by the replay only (runs before v3
    #: recorded none, so there is nothing to compare)
    held_back_only_recorded: tuple[str, ...] = ()
    held_back_only_replayed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def proposal(p: Proposal) -> dict[str, Any]:
            return {"case_id": p.case_id, "host_id": p.host_id, "score": p.score}

        return {
            "identical": self.identical,
            "only_recorded": [proposal(p) for p in self.proposals.only_recorded],
            "only_replayed": [proposal(p) for p in self.proposals.only_replayed],
            "changed": [{"recorded": proposal(old), "replayed": proposal(new),
                         "explanation_keys": explanation_keys(old, new)} for old, new in self.proposals.changed],
            "withdrawals_only_recorded": [list(pair) for pair in self.withdrawals_only_recorded],
            "withdrawals_only_replayed": [list(pair) for pair in self.withdrawals_only_replayed],
            "explained_by_not_applied": list(self.explained),
            "wall_limit_hit": self.wall_limit_hit,
            "solver_changed": list(self.solver_changed) if self.solver_changed else None,
            "held_back_only_recorded": list(self.held_back_only_recorded),
            "held_back_only_replayed": list(self.held_back_only_replayed),
        }


def explanation_keys(old: Proposal, new: Proposal) -> list[str]:
    """The explanation entries (and the score) in which two proposals for the same pair differ."""
    keys = sorted(key for key in set(old.explanation) | set(new.explanation)
                  if old.explanation.get(key) != new.explanation.get(key))
    return (["score"] if old.score != new.score and "score" not in keys else []) + keys


def judge(run: RecordedRun, report: Mapping[str, Any]) -> Verdict:
    """Compare what the solver proposed again with what the run proposed and withdrew.

    Cases the run lists as ``not_applied`` (the solver decided, but the pool had changed during the solve,
    so the decision was not applied) are expected to differ: such a difference is reported as explained.
    """
    replayed = [Proposal(p["case_id"], p["host_id"], float(p["score"]), p.get("explanation") or {})
                for p in report.get("proposals", ())]
    not_applied = set(report.get("not_applied") or ())
    full = compare_proposals(run.proposals, replayed)
    kept = ProposalDifference(
        tuple(p for p in full.only_recorded if p.case_id not in not_applied),
        tuple(p for p in full.only_replayed if p.case_id not in not_applied),
        tuple(pair for pair in full.changed if pair[0].case_id not in not_applied),
    )
    recorded_withdrawals = set(run.withdrawn)
    replayed_withdrawals = {(w["case_id"], w["host_id"]) for w in report.get("withdrawn", ())}
    only_recorded = tuple(sorted(w for w in recorded_withdrawals - replayed_withdrawals if w[0] not in not_applied))
    only_replayed = tuple(sorted(w for w in replayed_withdrawals - recorded_withdrawals if w[0] not in not_applied))
    explained = sorted({p.case_id for p in (*full.only_recorded, *full.only_replayed) if p.case_id in not_applied}
                       | {w[0] for w in recorded_withdrawals ^ replayed_withdrawals if w[0] in not_applied})
    recorded_solver, replayed_solver = str(run.run.get("solver_version")), str(report.get("solver_version"))
    recorded_held = run.run.get("held_back")
    replayed_held = set(report.get("held_back") or ())
    held_only_recorded = tuple(sorted(set(recorded_held) - replayed_held)) if recorded_held is not None else ()
    held_only_replayed = tuple(sorted(replayed_held - set(recorded_held))) if recorded_held is not None else ()
    identical = (kept.identical and not only_recorded and not only_replayed
                 and not held_only_recorded and not held_only_replayed)
    return Verdict(identical, kept, only_recorded, only_replayed, tuple(explained), bool(report.get("wall_limit_hit")),
                   (recorded_solver, replayed_solver) if recorded_solver != replayed_solver else None,
                   held_only_recorded, held_only_replayed)


def render_verdict(run: RecordedRun, report: Mapping[str, Any], verdict: Verdict | None) -> str:
    """The replay's outcome, readable by a person (no personal data: ids, hosts and scores only)."""
    lines: list[str] = []
    outcome = report.get("outcome")
    if outcome == "inputs_differ":
        parts = report.get("differing_parts")
        lines.append("MISMATCH: the run's inputs could not be rebuilt from the audit stream.")
        lines.append(f"  recorded inputs digest {report.get('recorded_digest')}")
        lines.append(f"  rebuilt  inputs digest {report.get('rebuilt_digest')}")
        if parts:
            lines.append(f"  differing part(s): {', '.join(parts)}")
        inputs = report.get("inputs") or {}
        lines.append(f"  recorded counts {inputs.get('recorded')}, rebuilt {inputs.get('rebuilt')}")
        lines.append("  a record the run read has changed since it was recorded, or is missing: run verify")
        return "\n".join(lines)
    if outcome != "solved" or verdict is None:
        lines.append(f"replay failed ({outcome}): {report.get('reason')}")
        return "\n".join(lines)
    counts = (report.get("inputs") or {}).get("rebuilt")
    lines.append(f"inputs rebuilt from the audit stream: digest {report.get('rebuilt_digest')} matches the run "
                 f"({counts})")
    replayed = len(report.get("proposals", ()))
    if verdict.identical:
        held = run.run.get("held_back")
        proposed, withdrawn = f"{len(run.proposals)} proposal(s)", f"{len(run.withdrawn)} withdrawal(s)"
        decisions = f"{proposed}, {withdrawn} and {len(held)} held back" if held else f"{proposed} and {withdrawn}"
        lines.append(f"IDENTICAL: {decisions} recorded, the same again on replay (status {report.get('status')}).")
        if verdict.explained:
            lines.append(f"  {len(verdict.explained)} decision(s) of the solver were not applied at the time, as "
                         f"the run recorded (the pool changed during the solve): {', '.join(verdict.explained)}")
        return "\n".join(lines)
    lines.append(f"DIFFERENT: {len(run.proposals)} proposal(s) recorded, {replayed} on replay.")
    for p in verdict.proposals.only_recorded:
        lines.append(f"  case {p.case_id}: recorded host {p.host_id} (score {p.score:.4f}); not proposed on replay")
    for p in verdict.proposals.only_replayed:
        lines.append(f"  case {p.case_id}: replayed host {p.host_id} (score {p.score:.4f}); not proposed in the run")
    for old, new in verdict.proposals.changed:
        lines.append(f"  case {old.case_id}, host {old.host_id}: recorded score {old.score:.4f}, replayed "
                     f"{new.score:.4f}; explanation differs in {', '.join(explanation_keys(old, new)) or 'nothing'}")
    for case_id, host_id in verdict.withdrawals_only_recorded:
        lines.append(f"  case {case_id}: the run withdrew its proposal on host {host_id}; the replay does not")
    for case_id, host_id in verdict.withdrawals_only_replayed:
        lines.append(f"  case {case_id}: the replay withdraws its proposal on host {host_id}; the run did not")
    for case_id in verdict.held_back_only_recorded:
        lines.append(f"  case {case_id}: the run held it back for the arrivals it expected; the replay does not")
    for case_id in verdict.held_back_only_replayed:
        lines.append(f"  case {case_id}: the replay holds it back for the arrivals it expects; the run did not")
    if verdict.explained:
        lines.append(f"  (and {len(verdict.explained)} decision(s) of the solver not applied at the time, as the run "
                     "recorded: not counted as differences)")
    if verdict.wall_limit_hit:
        lines.append("  note: the run stopped on its wall-clock limit, so a re-run may legitimately differ; this "
                     "difference is not by itself evidence that the log was changed")
    if verdict.solver_changed:
        run_solver, replay_solver = verdict.solver_changed
        lines.append(f"  note: the run was solved by {run_solver} and the replay by {replay_solver}; another solver or "
                     "engine may legitimately decide differently, so replay with the run's version to judge the log")
    return "\n".join(lines)
