"""Rebuilding a solver run's pool from audit records alone (services/matching/replay.py): the fold."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas import topics
from schemas.catalog import topic_of
from schemas.events import (
    ApprovalDecided,
    BeneficiaryResponded,
    Capacity,
    CapacityUpdated,
    CaseProfile,
    CaseRegistered,
    CaseWithdrawn,
    ConsentObtained,
    DataUseConsentRecorded,
    DeadLettered,
    Event,
    HostAttributes,
    HostProfile,
    HostRegistered,
    HostUpdated,
    HouseholdMember,
    MatchProposed,
    ProposalWithdrawn,
    SolverRunRecorded,
    SolverRunRecordedV2,
)
from services.matching import app
from services.matching.model import SolverParams, Weights, inputs_digest, inputs_part_digests
from services.matching.pool import arrival_seq
from services.matching.replay import INPUT_FOLDS, Record, main, params_of, rebuild, replay

POOL = "pool-fold"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AS_OF = date(2026, 3, 2)
PARAMS = SolverParams(time_limit_s=5.0)


class Log:
    """Audit records as the auditor's tool hands them over: log order, with origins like a broker's."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def add(self, event: Event, *, partition: int = 0, at: timedelta = timedelta(0), event_id: str | None = None,
            payload: dict[str, Any] | None = None) -> Record:
        topic = topic_of(event)
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        record = Record(seq=len(self.records) + 1, event_id=event_id or f"evt-{len(self.records) + 1}",
                        type=event.type, time=T0 + at, topic=topic, partition=partition, offset=offset,
                        payload=payload if payload is not None else json.loads(event.model_dump_json()))
        self.records.append(record)
        return record

    def watermark(self) -> list[dict[str, Any]]:
        """Every input partition, up to what has been added so far."""
        inputs = {topics.CASES, topics.HOSTS, topics.CONSENTS, topics.DECISIONS}
        return [{"topic": topic, "partition": partition, "offset": offset - 1}
                for (topic, partition), offset in sorted(self.offsets.items()) if topic in inputs]

    def run(self, run_id: str, *, digest: str = "unknown", watermark: list[dict[str, Any]] | None = None,
            digests: dict[str, str] | None = None, params: SolverParams = PARAMS, version: int = 2) -> Record:
        replay: dict[str, Any] = {"watermark": self.watermark() if watermark is None else watermark,
                                  "as_of": AS_OF.isoformat(), "wall_limit_hit": False, "not_applied": []}
        if digests is not None:
            replay["digests"] = digests
        recorded = SolverRunRecorded(
            run_id=run_id, pool_id=POOL, inputs_digest=digest, inputs={"cases": 0, "replay": replay},
            parameters=params.to_record(),
            solver_version="test", seed=params.seed, status="OPTIMAL", objective=0.0, bound=0.0, gap=0.0,
            duration_s=0.0, proposals=0, withdrawals=0)
        if version == 2:
            recorded = SolverRunRecordedV2(**recorded.model_dump(), mechanism=params.mechanism, blocking_pairs=0,
                                           stability="stable: no case and host would both rather be matched")
        return self.add(recorded)


def case(case_id: str, people: int = 1) -> CaseRegistered:
    members = [HouseholdMember(age_band="30-49", sex="female", relationship="applicant")]
    members += [HouseholdMember(age_band="30-49", sex="male", relationship="adult")] * (people - 1)
    return CaseRegistered(case_id=case_id, pool_id=POOL, organisation_id="org-desk",
                          profile=CaseProfile(members=members))


def consent(case_id: str, expires_on: date | None = None) -> DataUseConsentRecorded:
    return DataUseConsentRecorded(consent_id=f"consent-{case_id}", case_id=case_id, purpose="matching",
                                  obtained=ConsentObtained(information_language="en", obtained_on=date(2026, 3, 1),
                                                           recorded_by="caseworker-a"),
                                  expires_on=expires_on)


def host(host_id: str, people: int) -> HostRegistered:
    return HostRegistered(host_id=host_id, pool_id=POOL, organisation_id="org-sponsors",
                          profile=HostProfile(host_type="sponsor_group", place="town",
                                              capacity=Capacity(people=people, beds=people)))


def capacity(host_id: str, version: int, people: int) -> CapacityUpdated:
    return CapacityUpdated(host_id=host_id, pool_id=POOL, version=version,
                           capacity=Capacity(people=people, beds=people))


def proposed(proposal_id: str, case_id: str, host_id: str, run_id: str) -> MatchProposed:
    return MatchProposed(proposal_id=proposal_id, case_id=case_id, host_id=host_id, pool_id=POOL, run_id=run_id,
                         score=0.5)


def test_the_fold_knows_every_event_type_matching_handles() -> None:
    assert set(app.pool_inputs.handlers) <= set(INPUT_FOLDS), "fold these in services/matching/replay.py too"


def test_the_fold_rebuilds_capacities_consents_withdrawals_and_earlier_runs() -> None:
    log = Log()
    log.add(host("h-big", 6), partition=1)
    log.add(host("h-small", 2), partition=2)
    for number, case_id in enumerate(("c-a", "c-b", "c-c", "c-d", "c-e")):
        log.add(case(case_id), partition=number % 3, at=timedelta(seconds=number))
    log.add(consent("c-a"))
    log.add(consent("c-b"), partition=1)
    log.add(consent("c-c", expires_on=date(2026, 3, 1)), partition=2)  # expired by the run's date
    log.add(consent("c-d"))
    log.add(consent("c-e"), partition=1)
    log.run("run-1", version=1)  # recorded before runs were v2 events: both are read
    log.add(proposed("p-a", "c-a", "h-big", "run-1"))
    log.add(proposed("p-b", "c-b", "h-big", "run-1"), partition=1)
    log.add(proposed("p-d", "c-d", "h-big", "run-1"))
    log.add(proposed("p-e", "c-e", "h-small", "run-1"), partition=1)
    # the inputs that came after run 1 read the pool
    log.add(capacity("h-big", 3, 4), partition=1)
    log.add(capacity("h-big", 2, 9), partition=1)  # older version, arriving late: changes nothing
    log.add(ApprovalDecided(proposal_id="p-a", case_id="c-a", host_id="h-big", decision="approved",
                            decided_by="approver-b", reviewed_by="caseworker-a"))
    log.add(BeneficiaryResponded(proposal_id="p-e", case_id="c-e", host_id="h-small", accepted=False,
                                 recorded_by="caseworker-a"), partition=1)
    log.add(CaseWithdrawn(case_id="c-d", reason="left the country"))
    bad = log.add(capacity("h-small", 5, 50), partition=2)  # dead-lettered by matching: never applied
    log.add(DeadLettered(consumer="pool-inputs", reason_kind="handler_error", reason="boom",
                         origin_topic=bad.topic, origin_partition=bad.partition, origin_offset=bad.offset,
                         original_headers={}, original_value_b64=""))
    log.run("run-2")
    log.add(ProposalWithdrawn(proposal_id="p-b", case_id="c-b", host_id="h-big", reason="superseded",
                              run_id="run-2"), partition=1)
    log.run("run-3")
    log.add(capacity("h-big", 4, 1), partition=1)  # above run 3's watermark: not one of its inputs

    snapshot, params, target = rebuild(log.records, "run-3")

    assert target.run.run_id == "run-3"
    assert [c.case_id for c in snapshot.cases] == ["c-a", "c-b", "c-e"], "no consent in force: c-c; withdrawn: c-d"
    assert [c.arrived_seq for c in snapshot.cases] == [arrival_seq(T0 + timedelta(seconds=s)) for s in (0, 1, 4)]
    capacities = {h.host_id: h.capacity.people for h in snapshot.hosts}
    assert capacities == {"h-big": 4, "h-small": 2}, "version 3 wins over the late version 2, and nothing later"
    assert dict(snapshot.fixed) == {"c-a": "h-big"}
    assert dict(snapshot.pending) == {}, "p-b withdrawn by run 2, p-d with its case, p-e declined"
    assert snapshot.forbidden == frozenset({("c-e", "h-small")})
    assert params.time_limit_s == 5.0 and params.seed == 0

    # run 2 read the same records but for run 2's own withdrawal
    snapshot_2, _, _ = rebuild(log.records, "run-2")
    assert dict(snapshot_2.pending) == {"c-b": "h-big"}


def host_updated(host_id: str, version: int, **attributes: Any) -> HostUpdated:
    return HostUpdated(host_id=host_id, pool_id=POOL, version=version,
                       profile=HostAttributes(host_type="sponsor_group", place="town", **attributes))


def test_the_fold_applies_host_profile_updates_by_version_and_keeps_capacity() -> None:
    log = Log()
    log.add(host("h-1", 5), partition=1)
    log.add(capacity("h-1", 2, 4), partition=1)
    log.add(host_updated("h-1", 3, medical_services=["dialysis"], excluded_case_ids=["c-x"]), partition=1)
    log.add(host_updated("h-1", 2, max_household_size=1), partition=1)  # older version, late: changes nothing
    log.add(host_updated("h-unknown", 2, max_household_size=1), partition=2)  # a host never registered: nothing
    log.run("run-1")
    log.add(host_updated("h-1", 4, max_household_size=2), partition=1)  # above the run's watermark

    snapshot, _, _ = rebuild(log.records, "run-1")

    (held,) = snapshot.hosts
    assert held.medical_services == frozenset({"dialysis"}) and held.excluded_case_ids == frozenset({"c-x"})
    assert held.max_household_size is None, "version 2 came after version 3 and was not applied"
    assert held.capacity.people == 4, "a profile update leaves the capacity its own updates set"


def test_a_run_is_replayed_and_a_changed_input_is_named() -> None:
    log = Log()
    log.add(host("h-1", 3))
    for number, case_id in enumerate(("c-1", "c-2", "c-3")):
        log.add(case(case_id, people=2), partition=number % 3, at=timedelta(seconds=number))
        log.add(consent(case_id), partition=number % 3)
    params = PARAMS
    probe = log.run("probe")
    snapshot, _, _ = rebuild(log.records, "probe")
    log.records.remove(probe)
    log.run("run-1", digest=inputs_digest(snapshot, params), digests=inputs_part_digests(snapshot, params))

    status, report = replay(log.records, "run-1")
    assert status == 0 and report["outcome"] == "solved", report
    assert len(report["proposals"]) == 1, "one household of two fits three places"
    assert report["proposals"][0]["case_id"] == "c-1", "the earliest arrival first"

    tampered = [r if r.type != HostRegistered.type else
                Record(r.seq, r.event_id, r.type, r.time, r.topic, r.partition, r.offset,
                       {**r.payload, "profile": {**r.payload["profile"],
                                                 "capacity": {"people": 30, "beds": 30}}})
                for r in log.records]
    status, report = replay(tampered, "run-1")
    assert status == 1 and report["outcome"] == "inputs_differ"
    assert report["differing_parts"] == ["hosts"]


def test_a_run_without_a_watermark_cannot_be_replayed(capsys, monkeypatch) -> None:
    log = Log()
    log.add(host("h-1", 3))
    log.run("run-old", watermark=None)
    old = log.records[-1]
    payload = {**old.payload, "inputs": {"cases": 0}}
    log.records[-1] = Record(old.seq, old.event_id, old.type, old.time, old.topic, old.partition, old.offset, payload)
    lines = "".join(json.dumps({"seq": r.seq, "event_id": r.event_id, "type": r.type, "time": r.time.isoformat(),
                                "topic": r.topic, "partition": r.partition, "offset": r.offset,
                                "payload": r.payload}) + "\n" for r in log.records)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(lines))
    assert main(["--run", "run-old"]) == 3
    assert json.loads(capsys.readouterr().out)["outcome"] == "cannot_replay"


def test_a_runs_recorded_parameters_read_back_as_the_same_parameters() -> None:
    params = SolverParams(weights=Weights(ties=0.3, disruption_cost=0.1), time_limit_s=2.5, seed=7, workers=2,
                          relative_gap=0.01, top_k=12, wall_time_limit_s=4.0, mechanism="dynamic",
                          expected_arrivals=9, scenarios=3, arrival_history=50, scope="changes")
    run = SolverRunRecorded(run_id="run-p", pool_id=POOL, inputs_digest="d", inputs={}, parameters=params.to_record(),
                            solver_version="test", seed=params.seed, status="OPTIMAL", objective=0.0, bound=0.0,
                            gap=0.0, duration_s=0.0, proposals=0, withdrawals=0)
    assert params_of(run) == params
