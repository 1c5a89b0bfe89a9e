"""Re-run a recorded solver run from the audit stream alone: matching's side of ``audit replay RUN``.

    python -m services.matching.replay --run RUN_ID < records.jsonl

The auditor's tool (``python -m services.audit.cli replay RUN``) selects the audit records a run depends on
and pipes them in, one JSON object a line: ``{"seq", "event_id", "type", "time", "topic", "partition",
"offset", "payload"}``. This process is the seam between the two services: the audit service imports nothing
of matching, and matching reads nothing of audit's tables.

What it does:

1. finds the run and every earlier run (``centre.match.solver-run-recorded.v1`` to ``.v3``, one partition, so
   the log's order is the order they were recorded) and their ``inputs["replay"]``: the watermark (the last input
   record matching had applied, per topic partition, when it read the pool), the date consents were judged
   against, the digests of each part of the inputs;
2. folds the input records at or below the run's watermark into matching's state with :func:`fold`, the
   same meaning ``handlers.py`` gives them, interleaved with the proposals and withdrawals of the earlier
   runs: each earlier run's output comes after the inputs at or below *its* watermark and before the rest;
3. reads the pool from that state as ``store.pool_inputs`` reads it and builds the snapshot with the very
   function the service uses (``pool.snapshot_from_rows``);
4. checks ``inputs_digest(snapshot, params)`` against the recorded digest: if they differ, the inputs could
   not be rebuilt; it says which parts differ and stops (exit 1);
5. solves with the recorded parameters and seed and prints the proposals, withdrawals and held-back cases as
   JSON (exit 0).
   It solves without the run's wall-clock stop: a run that did not hit that stop was bounded by its
   deterministic budget alone, which the replay reproduces on any machine however busy; a run that did hit
   it (``wall_limit_hit``) may legitimately come out differently, and the caller says so.

Exit status: 0 solved (the caller compares), 1 the inputs could not be rebuilt, 2 bad input or usage, 3 the
run cannot be replayed (recorded before runs carried their watermark). The output is always one JSON object.
No personal data is involved: matching's inputs are pseudonymous, and identities stay sealed in the payloads.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from schemas.catalog import EVENT_TYPES
from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    BeneficiaryResponded,
    CapacityUpdated,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    DeadLettered,
    Event,
    HostRegistered,
    HostResponded,
    HostUpdated,
    MatchProposed,
    PlacementConfirmed,
    ProposalWithdrawn,
    ResponseExpired,
    SolverRunRecorded,
    SolverRunRecordedV2,
    SolverRunRecordedV3,
)
from services.matching.model import PoolSnapshot, SolverParams, Weights, inputs_digest, inputs_part_digests
from services.matching.pool import arrival_seq, snapshot_from_rows
from services.matching.store import LIVE

#: The consumer whose dead letters mean "matching did not apply this record" (app.py's ``pool_inputs``).
CONSUMER = "pool-inputs"


class CannotReplay(Exception):
    """The records do not allow a replay (no such run, or a run recorded without its watermark)."""


# --------------------------------------------------------------------------------------------------
# The records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One audit record, as the auditor's tool hands it over."""

    seq: int
    event_id: str
    type: str
    time: datetime
    topic: str
    partition: int
    offset: int
    payload: Any

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Record:
        time = datetime.fromisoformat(document["time"])
        return cls(int(document["seq"]), str(document["event_id"]), str(document["type"]),
                   time if time.tzinfo else time.replace(tzinfo=UTC), str(document["topic"]),
                   int(document["partition"]), int(document["offset"]), document["payload"])

    def event(self) -> Event | None:
        """The validated event, or None for a record matching would not have handled (unknown type, invalid)."""
        model = EVENT_TYPES.get(self.type)
        if model is None or not isinstance(self.payload, Mapping):
            return None
        try:
            return model.model_validate(self.payload)
        except ValidationError:
            return None


Watermark = dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class Run:
    run: SolverRunRecorded
    seq: int
    watermark: Watermark | None
    replay: Mapping[str, Any]


def watermark_of(replay: Mapping[str, Any]) -> Watermark | None:
    positions = replay.get("watermark")
    if positions is None:
        return None
    return {(str(p["topic"]), int(p["partition"])): int(p["offset"]) for p in positions}


def runs_in_order(records: Iterable[Record]) -> list[Run]:
    runs = []
    for record in sorted(records, key=lambda r: r.seq):
        if record.type not in (SolverRunRecorded.type, SolverRunRecordedV2.type, SolverRunRecordedV3.type):
            continue
        event = record.event()
        if not isinstance(event, SolverRunRecorded):
            continue
        replay = event.inputs.get("replay")
        replay = replay if isinstance(replay, Mapping) else {}
        runs.append(Run(event, record.seq, watermark_of(replay), replay))
    return runs


# --------------------------------------------------------------------------------------------------
# Matching's state, and what each event does to it (handlers.py, without a database)
# --------------------------------------------------------------------------------------------------


@dataclass
class State:
    """Matching's tables, in memory: what the handlers and the resolver's apply step write."""

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)
    forbidden: set[tuple[str, str]] = field(default_factory=set)

    # -- the store's operations --------------------------------------------------------------------

    def upsert_case(self, case_id: str, pool_id: str, profile: dict[str, Any], version: int,
                    arrived: int) -> None:
        held = self.cases.get(case_id)
        if held is None:
            self.cases[case_id] = {"pool_id": pool_id, "profile": profile, "version": version,
                                   "arrived_seq": arrived, "withdrawn": False}
        elif held["version"] < version:
            held.update(pool_id=pool_id, profile=profile, version=version)

    def consent_in_force(self, case_id: str, on: date) -> bool:
        return any(c["case_id"] == case_id and not c["withdrawn"]
                   and (c["expires_on"] is None or c["expires_on"] >= on) for c in self.consents.values())

    def has_approved_match(self, case_id: str) -> bool:
        return any(p["case_id"] == case_id and p["status"] in ("approved", "placed") for p in self.proposals.values())

    def set_status(self, proposal_id: str, status: str, only_from: tuple[str, ...] | None = None) -> None:
        proposal = self.proposals.get(proposal_id)
        if proposal is not None and (only_from is None or proposal["status"] in only_from):
            proposal["status"] = status

    def withdraw_pending(self, case_id: str) -> None:
        for proposal in self.proposals.values():
            if proposal["case_id"] == case_id and proposal["status"] == "pending":
                proposal["status"] = "withdrawn"


def _case_registered(state: State, event: CaseRegistered, record: Record) -> None:
    state.upsert_case(event.case_id, event.pool_id, event.profile.model_dump(mode="json"), 1,
                      arrival_seq(record.time))


def _case_updated(state: State, event: CaseUpdated, record: Record) -> None:
    state.upsert_case(event.case_id, event.pool_id, event.profile.model_dump(mode="json"), event.version,
                      arrival_seq(record.time))


def _case_withdrawn(state: State, event: CaseWithdrawn, record: Record) -> None:
    if event.case_id in state.cases:
        state.cases[event.case_id]["withdrawn"] = True
    state.withdraw_pending(event.case_id)


def _consent_recorded(state: State, event: DataUseConsentRecorded, record: Record) -> None:
    if event.purpose == "matching" and event.consent_id not in state.consents:
        state.consents[event.consent_id] = {"case_id": event.case_id, "expires_on": event.expires_on,
                                            "withdrawn": False}


def _consent_withdrawn(state: State, event: DataUseConsentWithdrawn, record: Record) -> None:
    if event.purpose != "matching":
        return
    if event.consent_id in state.consents:
        state.consents[event.consent_id]["withdrawn"] = True
    # The handler judges "in force" by the database's date when it ran; the event's own (UTC) date stands
    # for it (they differ only for a withdrawal read across midnight next to another consent expiring then).
    if not state.consent_in_force(event.case_id, record.time.astimezone(UTC).date()):
        state.withdraw_pending(event.case_id)


def _host_registered(state: State, event: HostRegistered, record: Record) -> None:
    if event.host_id not in state.hosts:
        profile = event.profile.model_dump(mode="json")
        state.hosts[event.host_id] = {"pool_id": event.pool_id, "profile": profile,
                                      "capacity": profile["capacity"], "capacity_version": 1, "version": 1}


def _capacity_updated(state: State, event: CapacityUpdated, record: Record) -> None:
    host = state.hosts.get(event.host_id)
    if host is not None and host["capacity_version"] < event.version:
        host.update(capacity=event.capacity.model_dump(mode="json"), capacity_version=event.version)


def _host_updated(state: State, event: HostUpdated, record: Record) -> None:
    host = state.hosts.get(event.host_id)
    if host is not None and host["version"] < event.version:
        # the profile's capacity key stays as it was (the solver reads the capacity apart, as the store does)
        host.update(profile={**event.profile.model_dump(mode="json"), "capacity": host["profile"]["capacity"]},
                    version=event.version)


def _approval_decided(state: State, event: ApprovalDecided | ApprovalDecidedV2, record: Record) -> None:
    proposal = state.proposals.get(event.proposal_id)
    if proposal is None:
        return
    if event.decision == "approved":
        if proposal["status"] == "withdrawn":
            if state.has_approved_match(event.case_id):
                return
            state.withdraw_pending(event.case_id)
        state.set_status(event.proposal_id, "approved", ("pending", "withdrawn"))
    else:
        state.set_status(event.proposal_id, "rejected")
        state.forbidden.add((event.case_id, event.host_id))


def _declined(state: State, event: BeneficiaryResponded | HostResponded | ResponseExpired, record: Record) -> None:
    if isinstance(event, BeneficiaryResponded | HostResponded) and event.accepted:
        return
    if event.proposal_id not in state.proposals:
        return
    state.set_status(event.proposal_id, "declined")
    state.forbidden.add((event.case_id, event.host_id))


def _placement_confirmed(state: State, event: PlacementConfirmed, record: Record) -> None:
    state.set_status(event.proposal_id, "placed")


def _proposed(state: State, event: MatchProposed, record: Record) -> None:
    """A proposal an earlier run made (the resolver's apply step)."""
    state.proposals.setdefault(event.proposal_id, {"case_id": event.case_id, "host_id": event.host_id,
                                                   "pool_id": event.pool_id, "status": "pending"})


def _withdrawn_by_run(state: State, event: ProposalWithdrawn, record: Record) -> None:
    """A withdrawal an earlier run made; a handler's withdrawals are derived from its input instead."""
    state.set_status(event.proposal_id, "withdrawn", ("pending",))


Fold = Callable[[State, Any, Record], None]

#: What each input event does: the meaning handlers.py gives it (keep the two in step; a unit test checks
#: that every event type matching's consumer handles is here).
INPUT_FOLDS: dict[type[Event], Fold] = {
    CaseRegistered: _case_registered,
    CaseUpdated: _case_updated,
    CaseWithdrawn: _case_withdrawn,
    DataUseConsentRecorded: _consent_recorded,
    DataUseConsentWithdrawn: _consent_withdrawn,
    HostRegistered: _host_registered,
    CapacityUpdated: _capacity_updated,
    HostUpdated: _host_updated,
    ApprovalDecided: _approval_decided,
    ApprovalDecidedV2: _approval_decided,
    BeneficiaryResponded: _declined,
    HostResponded: _declined,
    ResponseExpired: _declined,
    PlacementConfirmed: _placement_confirmed,
}


def apply_input(state: State, record: Record) -> None:
    """Fold one input record into the state, as matching's consumer would have handled it."""
    event = record.event()
    handler = INPUT_FOLDS.get(type(event)) if event is not None else None
    if handler is not None:
        handler(state, event, record)


def apply_run_output(state: State, record: Record) -> None:
    """Fold one proposal or withdrawal that an earlier run made."""
    event = record.event()
    if isinstance(event, MatchProposed):
        _proposed(state, event, record)
    elif isinstance(event, ProposalWithdrawn) and event.run_id is not None:
        _withdrawn_by_run(state, event, record)


# --------------------------------------------------------------------------------------------------
# The fold
# --------------------------------------------------------------------------------------------------


def _below(watermark: Watermark, record: Record) -> bool:
    upto = watermark.get((record.topic, record.partition))
    return upto is not None and record.offset <= upto


def fold(records: Sequence[Record], run_id: str) -> tuple[State, Run]:
    """Matching's state as the run ``run_id`` read it, from the audit records alone.

    The inputs are the records at or below the run's watermark, each event once (the first copy, as the
    inbox keeps it), without those matching dead-lettered. Earlier runs' proposals and withdrawals are
    placed after the inputs at or below their own watermark: the inputs a run had read were applied before
    it; those it had not read come after (any that arrived during its solve were applied before its result,
    but the result's apply step skipped whatever they made impossible, and the handlers below undo the rest
    the same way, so the state comes out the same).
    """
    runs = runs_in_order(records)
    position = next((i for i, run in enumerate(runs) if run.run.run_id == run_id), None)
    if position is None:
        raise CannotReplay(f"no solver run {run_id} among the records")
    target = runs[position]
    # Only this pool's earlier runs: what other pools' runs made is outside this pool's snapshot.
    earlier = [run for run in runs[:position] if run.run.pool_id == target.run.pool_id]
    if target.watermark is None:
        raise CannotReplay(f"run {run_id} was recorded without a watermark (before runs carried one): its inputs "
                           "cannot be told apart in the audit stream")
    unplaceable = [run.run.run_id for run in earlier if run.watermark is None]
    if unplaceable:
        raise CannotReplay(f"{len(unplaceable)} earlier run(s) were recorded without a watermark "
                           f"(first: {unplaceable[0]}): their proposals cannot be placed among the inputs")

    dead = {(r.payload.get("origin_topic"), r.payload.get("origin_partition"), r.payload.get("origin_offset"))
            for r in records if r.type == DeadLettered.type and isinstance(r.payload, Mapping)
            and r.payload.get("consumer") == CONSUMER}
    seen: set[str] = set()
    inputs: list[Record] = []
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        if not _below(target.watermark, record) or record.event_id in seen:
            continue
        seen.add(record.event_id)
        if (record.topic, record.partition, record.offset) not in dead:
            inputs.append(record)

    watermarks = [run.watermark for run in earlier if run.watermark is not None]
    # A partition's watermark only grows from run to run: the first run whose watermark covers a record is
    # found by bisection over that partition's offsets (-1 where a run had applied nothing of it yet).
    columns = {key: [watermark.get(key, -1) for watermark in watermarks] for key in target.watermark}

    def epoch(record: Record) -> int:
        return bisect.bisect_left(columns[(record.topic, record.partition)], record.offset)

    by_epoch: dict[int, list[Record]] = {}
    for record in inputs:
        by_epoch.setdefault(epoch(record), []).append(record)
    outputs: dict[str, list[Record]] = {run.run.run_id: [] for run in earlier}
    for record in records:
        if record.type in (MatchProposed.type, ProposalWithdrawn.type) and isinstance(record.payload, Mapping):
            run_of = record.payload.get("run_id")
            if isinstance(run_of, str) and run_of in outputs:
                outputs[run_of].append(record)

    state = State()
    for index in range(len(earlier) + 1):
        for record in sorted(by_epoch.get(index, ()), key=lambda r: r.seq):
            apply_input(state, record)
        if index < len(earlier):
            # proposals first: a run withdraws only what was proposed before it
            for record in sorted(outputs[earlier[index].run.run_id], key=lambda r: (r.type != MatchProposed.type,
                                                                                     r.seq)):
                apply_run_output(state, record)
    return state, target


def pool_rows(state: State, pool_id: str, as_of: date) -> dict[str, list[dict[str, Any]]]:
    """What ``store.pool_inputs`` reads for the pool, from the folded state, in the same order."""
    cases = [
        {"case_id": case_id, "profile": case["profile"], "arrived_seq": case["arrived_seq"]}
        for case_id, case in state.cases.items()
        if case["pool_id"] == pool_id and not case["withdrawn"]
        and (state.has_approved_match(case_id) or state.consent_in_force(case_id, as_of))
    ]
    cases.sort(key=lambda row: (row["arrived_seq"], row["case_id"]))
    hosts = sorted(({"host_id": host_id, "profile": host["profile"], "capacity": host["capacity"]}
                    for host_id, host in state.hosts.items() if host["pool_id"] == pool_id),
                   key=lambda row: row["host_id"])
    proposals = [{"proposal_id": proposal_id, "case_id": p["case_id"], "host_id": p["host_id"], "status": p["status"]}
                 for proposal_id, p in state.proposals.items() if p["pool_id"] == pool_id and p["status"] in LIVE]
    forbidden = [{"case_id": case_id, "host_id": host_id} for case_id, host_id in sorted(state.forbidden)
                 if case_id in state.cases and state.cases[case_id]["pool_id"] == pool_id]
    return {"cases": cases, "hosts": hosts, "proposals": proposals, "forbidden": forbidden}


def _number(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CannotReplay(f"a recorded parameter is not a number: {value!r}")
    return float(value)


def params_of(run: SolverRunRecorded) -> SolverParams:
    """The solver parameters a run recorded (as ``resolver.apply`` writes them)."""
    recorded = run.parameters
    weights = recorded.get("weights")
    wall = recorded.get("wall_time_limit_s")
    # Parameters a run may not have recorded (older runs) keep SolverParams' defaults, as they had then.
    optional: dict[str, Any] = {name: int(_number(recorded[name], 0)) for name in
                                ("expected_arrivals", "scenarios", "arrival_history") if name in recorded}
    for name in ("mechanism", "scope"):
        if name in recorded:
            optional[name] = str(recorded[name])
    try:
        return SolverParams(
            weights=Weights(**{k: _number(v, 0.0) for k, v in weights.items()}) if isinstance(weights, Mapping)
            else Weights(),
            time_limit_s=_number(recorded.get("time_limit_s"), 30.0),
            seed=run.seed,
            workers=int(_number(recorded.get("workers"), 1)),
            relative_gap=_number(recorded.get("relative_gap"), 0.0),
            top_k=int(_number(recorded.get("top_k"), 30)),
            wall_time_limit_s=None if wall is None else _number(wall, 0.0),
            **optional,
        )
    except (TypeError, ValueError) as error:
        raise CannotReplay(f"the run's recorded parameters are not ones this solver takes: {error}") from error


def rebuild(records: Sequence[Record], run_id: str) -> tuple[PoolSnapshot, SolverParams, Run]:
    """The snapshot and parameters of run ``run_id``, from the records alone."""
    state, target = fold(records, run_id)
    as_of_text = target.replay.get("as_of")
    if not isinstance(as_of_text, str):
        raise CannotReplay(f"run {run_id} was recorded without the date its consents were judged against")
    rows = pool_rows(state, target.run.pool_id, date.fromisoformat(as_of_text))
    snapshot, _ = snapshot_from_rows(target.run.pool_id, rows)
    return snapshot, params_of(target.run), target


def replay(records: Sequence[Record], run_id: str) -> tuple[int, dict[str, Any]]:
    """Rebuild, check the digest, solve: the exit status and the JSON report."""
    from services.matching.solver import solve  # the solver (OR-Tools) only when there is something to solve

    try:
        snapshot, params, target = rebuild(records, run_id)
    except CannotReplay as reason:
        return 3, {"outcome": "cannot_replay", "run_id": run_id, "reason": str(reason)}
    run = target.run
    rebuilt = inputs_digest(snapshot, params)
    counts = {"cases": len(snapshot.cases), "hosts": len(snapshot.hosts), "fixed": len(snapshot.fixed),
              "pending": len(snapshot.pending), "forbidden": len(snapshot.forbidden)}
    report: dict[str, Any] = {
        "run_id": run_id, "pool_id": run.pool_id, "recorded_digest": run.inputs_digest, "rebuilt_digest": rebuilt,
        "inputs": {"recorded": {k: run.inputs.get(k) for k in counts}, "rebuilt": counts},
        "wall_limit_hit": target.replay.get("wall_limit_hit"),
        "not_applied": list(target.replay.get("not_applied") or ()),
    }
    if rebuilt != run.inputs_digest:
        recorded_parts = target.replay.get("digests")
        rebuilt_parts = inputs_part_digests(snapshot, params)
        report["outcome"] = "inputs_differ"
        report["differing_parts"] = (
            sorted(part for part, digest in rebuilt_parts.items() if recorded_parts.get(part) != digest)
            if isinstance(recorded_parts, Mapping) else None)
        return 1, report
    # Without the wall-clock stop: a run that did not hit it was bounded by its deterministic budget alone, and
    # the auditor's machine, busy or slow, must not cut the replay short where the run was not cut.
    result = solve(snapshot, dataclasses.replace(params, wall_time_limit_s=None))
    report["outcome"] = "solved"
    report["status"] = result.status
    report["solver_version"] = result.solver_version
    report["objective"] = result.objective
    report["proposals"] = [
        {"case_id": case_id, "host_id": host_id,
         "score": float(result.explanations[case_id].to_dict().get("score", 0.0))
         if case_id in result.explanations else 0.0,
         "explanation": result.explanations[case_id].to_dict() if case_id in result.explanations else {}}
        for case_id, host_id in sorted(result.new_proposals.items())
    ]
    report["withdrawn"] = [{"case_id": case_id, "host_id": host_id}
                           for case_id, host_id in sorted(result.withdrawn.items())]
    report["held_back"] = sorted(result.held_back)
    return 0, report


def main(argv: Sequence[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(
        prog="python -m services.matching.replay",
        description="Re-run a recorded solver run from audit records (JSON lines on stdin); print JSON.",
    )
    arguments.add_argument("--run", required=True, dest="run_id", metavar="RUN")
    options = arguments.parse_args(argv)
    try:
        records = [Record.from_dict(json.loads(line)) for line in sys.stdin if line.strip()]
    except (ValueError, KeyError, TypeError) as error:
        print(json.dumps({"outcome": "bad_input", "reason": f"{type(error).__name__}: {error}"}))
        return 2
    status, report = replay(records, options.run_id)
    # Through JSON, as the recorded proposals went through it: floats and keys compare like for like.
    print(json.dumps(report, sort_keys=True, allow_nan=False, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
