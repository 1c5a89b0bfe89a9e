"""Replaying a solver run from the audit log: what is recorded, and the seam where the solver plugs in.

``replay RUN`` must rebuild a run's inputs from the audit stream alone, run the matching solver again with
the recorded parameters and seed, and show that the proposals are identical or exactly how they differ.
This module holds the parts that need no solver: finding the run and the proposals it made in the log,
and comparing two sets of proposals. Still to come, with the solver (services/matching, being finished):

* ``rebuild_inputs``: the pool's cases, hosts, capacities, consents and fixed, pending and declined pairs
  as of the run's position in the log, from the records before it; its digest must equal the run's
  recorded ``inputs_digest`` before anything is solved;
* a ``ReplaySolver`` that runs the solver on them. A service never imports another service, so the solver
  has to be reachable without importing services.matching (a shared package, or a solver entry point the
  auditor runs); that choice belongs with the solver's owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.audit.chain import AuditRecord

RUN_RECORDED = "centre.match.solver-run-recorded.v1"
PROPOSED = "centre.match.proposed.v1"
WITHDRAWN = "centre.match.proposal-withdrawn.v1"


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


class ReplaySolver(Protocol):
    """The seam: solve the rebuilt inputs again with the recorded parameters and seed."""

    def __call__(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any], seed: int) -> Sequence[Proposal]:
        ...


def recorded_run(run_id: str, records: Iterable[AuditRecord]) -> RecordedRun | None:
    """The run ``run_id`` from the records naming it; None when the log holds no record of the run."""
    run: AuditRecord | None = None
    proposals: list[Proposal] = []
    withdrawn: list[tuple[str, str]] = []
    for record in sorted(records, key=lambda record: record.seq):
        payload = record.payload if isinstance(record.payload, Mapping) else {}
        if payload.get("run_id") != run_id:
            continue
        if record.event_type == RUN_RECORDED:
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
