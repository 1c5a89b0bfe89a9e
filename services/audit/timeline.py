"""The history of one case as a person reads it, told from the audit log alone.

Registered, consent, every proposal with its explanation, the solver runs that held the case back for the
arrivals they expected, the reviews and decisions and who made them, the responses, the placement and the
notifications, in log order. Personal data stays sealed: the identity is only said to be there (and under
which key), and the household is described by what matching may use, counted rather than listed where it
touches health (medical needs, vulnerabilities).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.audit.chain import AuditRecord

ADULT_BANDS = frozenset({"18-29", "30-49", "50-64", "65+"})


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One step of a case's history; ``actor`` is the person or organisation who acted, when the event says."""

    seq: int
    event_time: str
    step: str
    summary: str
    actor: str | None
    details: tuple[str, ...]
    event_type: str
    event_id: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_time": self.event_time,
            "step": self.step,
            "summary": self.summary,
            "actor": self.actor,
            "details": list(self.details),
            "event_type": self.event_type,
            "event_id": self.event_id,
            "source": self.source,
        }


Described = tuple[str, str, str | None, tuple[str, ...]]  # step, summary, actor, details


def _household(profile: Mapping[str, Any]) -> str:
    members = profile.get("members") or []
    adults = sum(1 for member in members if member.get("age_band") in ADULT_BANDS)
    children = len(members) - adults
    needs = profile.get("needs") or {}
    parts = [f"household of {len(members)} ({adults} adult{'s' * (adults != 1)}, "
             f"{children} child{'ren' * (children != 1)})", f"urgency {profile.get('urgency', 'normal')}"]
    if needs.get("medical"):
        parts.append(f"{len(needs['medical'])} medical need(s) recorded")
    if needs.get("accessible"):
        parts.append("needs an accessible place")
    if profile.get("vulnerabilities"):
        parts.append(f"{len(profile['vulnerabilities'])} vulnerability(ies) recorded")
    return ", ".join(parts)


def _registered(p: Mapping[str, Any]) -> Described:
    identity = p.get("identity")
    sealed = f"identity sealed under key {identity.get('key_id')}" if isinstance(identity, dict) else "no identity"
    via = f" (partner reference {p['external_ref']})" if p.get("external_ref") else ""
    return ("registered", f"registered in pool {p.get('pool_id')} by {p.get('organisation_id')}{via}: "
            f"{_household(p.get('profile') or {})}; {sealed}", p.get("organisation_id"), ())


def _submitted(p: Mapping[str, Any]) -> Described:
    return ("submitted", f"submitted by partner {p.get('organisation_id')} as {p.get('external_ref')} for pool "
            f"{p.get('pool_id')}", p.get("organisation_id"), ())


def _updated(p: Mapping[str, Any]) -> Described:
    return ("updated", f"profile updated to version {p.get('version')}: {_household(p.get('profile') or {})}",
            None, ())


def _withdrawn(p: Mapping[str, Any]) -> Described:
    return ("withdrawn", f"case withdrawn: {p.get('reason')}", None, ())


def _consent(p: Mapping[str, Any]) -> Described:
    obtained = p.get("obtained") or {}
    partner = f" with partner {p['partner_id']}" if p.get("partner_id") else ""
    details = [f"informed in {obtained.get('information_language')}"
               + (" with an interpreter" if obtained.get("interpreter") else "")
               + f", obtained on {obtained.get('obtained_on')}"]
    if p.get("expires_on"):
        details.append(f"expires on {p['expires_on']}")
    return ("consent", f"consent to {p.get('purpose')}{partner} recorded by {obtained.get('recorded_by')} "
            f"({p.get('consent_id')})", obtained.get("recorded_by"), tuple(details))


def _consent_withdrawn(p: Mapping[str, Any]) -> Described:
    return ("consent", f"consent to {p.get('purpose')} withdrawn by {p.get('withdrawn_by')} ({p.get('consent_id')})",
            p.get("withdrawn_by"), ())


def _number(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def explanation_lines(explanation: Mapping[str, Any]) -> tuple[str, ...]:
    """The explanation of a proposal in a few lines: what each criterion contributed, what bound, what lost."""
    lines: list[str] = []
    contributions = explanation.get("contributions")
    if isinstance(contributions, Mapping) and contributions:
        ranked = sorted(contributions.items(), key=lambda item: -abs(item[1]) if isinstance(item[1], (int, float))
                        else 0)
        lines.append("contributions: " + ", ".join(f"{name} {_number(value)}" for name, value in ranked))
    priority = explanation.get("priority")
    if isinstance(priority, Mapping) and priority:
        lines.append("priority: " + ", ".join(f"{name} {value}" for name, value in priority.items()))
    if explanation.get("binding"):
        lines.append("capacity now full: " + ", ".join(str(name) for name in explanation["binding"]))
    flags = [name for name in ("fixed", "kept_pending", "study_place") if explanation.get(name)]
    if explanation.get("job"):
        flags.append(f"job {explanation['job']}")
    if flags:
        lines.append("also: " + ", ".join(flags))
    for alternative in (explanation.get("alternatives") or [])[:3]:
        if isinstance(alternative, Mapping):
            lines.append(f"not host {alternative.get('host_id')} (score {_number(alternative.get('score'))}): "
                         f"{alternative.get('reason')} - {alternative.get('detail')}")
    known = {"case_id", "host_id", "score", "contributions", "priority", "binding", "fixed", "kept_pending",
             "study_place", "job", "alternatives"}
    rest = {name: value for name, value in explanation.items() if name not in known}
    if rest:
        lines.append("more: " + ", ".join(f"{name}={value}" for name, value in sorted(rest.items())))
    return tuple(lines)


def _proposed(p: Mapping[str, Any]) -> Described:
    explanation = p.get("explanation") if isinstance(p.get("explanation"), Mapping) else {}
    return ("proposed", f"proposed to host {p.get('host_id')} in pool {p.get('pool_id')} with score "
            f"{_number(p.get('score'))} by solver run {p.get('run_id')} ({p.get('proposal_id')})", None,
            explanation_lines(explanation or {}) or ("no explanation recorded",))


def _proposal_withdrawn(p: Mapping[str, Any]) -> Described:
    run = f" by solver run {p['run_id']}" if p.get("run_id") else ""
    return ("withdrawn", f"proposal {p.get('proposal_id')} (host {p.get('host_id')}) withdrawn{run}: "
            f"{p.get('reason')}", None, ())


def _reviewed(p: Mapping[str, Any]) -> Described:
    note = (f"note: {p['note']}",) if p.get("note") else ()
    return ("reviewed", f"reviewed by {p.get('reviewed_by')}, who recommends to {p.get('recommendation')} "
            f"proposal {p.get('proposal_id')}", p.get("reviewed_by"), note)


def _decided(p: Mapping[str, Any]) -> Described:
    reason = (f"reason: {p['reason']}",) if p.get("reason") else ()
    return ("decided", f"{p.get('decision')} by {p.get('decided_by')} (reviewed by {p.get('reviewed_by')}), "
            f"proposal {p.get('proposal_id')}", p.get("decided_by"), reason)


def _with_deadline(describe: Callable[[Mapping[str, Any]], Described],
                   name: str, field: str) -> Callable[[Mapping[str, Any]], Described]:
    """A v2 review or decision reads like v1, with the deadline it set."""
    def described(p: Mapping[str, Any]) -> Described:
        step, summary, actor, details = describe(p)
        return step, summary, actor, (*details, f"{name} {p[field]}") if p.get(field) else details

    return described


def _overdue(p: Mapping[str, Any]) -> Described:
    return ("escalated", f"decision on proposal {p.get('proposal_id')} overdue since {p.get('decide_by')}: "
            f"escalated to {p.get('escalated_to')}", None, ())


def _expired(p: Mapping[str, Any]) -> Described:
    unanswered = " and ".join(str(party) for party in p.get("unanswered") or [])
    return ("response", f"offer of host {p.get('host_id')} expired: no answer from {unanswered} by "
            f"{p.get('respond_by')} (proposal {p.get('proposal_id')}), counted as declined", None, ())


def _responded(party: str) -> Callable[[Mapping[str, Any]], Described]:
    def describe(p: Mapping[str, Any]) -> Described:
        reason = (f"reason: {p['reason']}",) if p.get("reason") else ()
        answer = "accepted" if p.get("accepted") else "declined"
        return ("response", f"{party} {answer} host {p.get('host_id')}, recorded by {p.get('recorded_by')}",
                p.get("recorded_by"), reason)

    return describe


def _placed(p: Mapping[str, Any]) -> Described:
    return ("placed", f"placed with host {p.get('host_id')} in pool {p.get('pool_id')} ({p.get('placement_id')}, "
            f"proposal {p.get('proposal_id')})", None, ())


def _held_back(p: Mapping[str, Any]) -> Described:
    expected = (p.get("parameters") or {}).get("expected_arrivals")
    return ("held back", f"not proposed by solver run {p.get('run_id')} of pool {p.get('pool_id')}, though a place "
            f"fits: the {expected} arrivals it expected gain more from it; the case waits in the pool and the next "
            "run plans again", None, ())


def _notification_requested(p: Mapping[str, Any]) -> Described:
    recipient = p.get("recipient") or {}
    return ("notification", f"{p.get('rule')}: {recipient.get('kind')} {recipient.get('ref')} to be told via "
            f"{p.get('channel')} in {p.get('language')} ({p.get('notification_id')})", None, ())


def _notification_delivered(p: Mapping[str, Any]) -> Described:
    return ("notification", f"{p.get('notification_id')} delivered via {p.get('channel')}", None, ())


def _notification_failed(p: Mapping[str, Any]) -> Described:
    final = ", given up" if p.get("final") else ", to be retried"
    return ("notification", f"{p.get('notification_id')} failed on attempt {p.get('attempt')} via "
            f"{p.get('channel')}{final}: {p.get('reason')}", None, ())


def _erased(p: Mapping[str, Any]) -> Described:
    why = "at the person's request" if p.get("reason") == "person_request" else "at the end of its retention period"
    return ("erased", f"identifying data erased {why} by {p.get('erased_by')}: the case key is deleted and the "
            "sealed identity can no longer be opened", p.get("erased_by"), ())


def _identity_read(p: Mapping[str, Any]) -> Described:
    fields = ", ".join(str(field) for field in p.get("fields") or ())
    return ("identity read", f"identity read by {p.get('read_by')} ({p.get('role')}): {fields}; purpose: "
            f"{p.get('purpose')}", p.get("read_by"), ())


DESCRIBE: dict[str, Callable[[Mapping[str, Any]], Described]] = {
    "centre.partner.case-submitted.v1": _submitted,
    "centre.case.registered.v1": _registered,
    "centre.case.updated.v1": _updated,
    "centre.case.withdrawn.v1": _withdrawn,
    "centre.case.erased.v1": _erased,
    "centre.case.identity-read.v1": _identity_read,
    "centre.consent.recorded.v1": _consent,
    "centre.consent.withdrawn.v1": _consent_withdrawn,
    "centre.match.proposed.v1": _proposed,
    "centre.match.proposal-withdrawn.v1": _proposal_withdrawn,
    "centre.approval.reviewed.v1": _reviewed,
    "centre.approval.decided.v1": _decided,
    "centre.approval.reviewed.v2": _with_deadline(_reviewed, "decision due by", "decide_by"),
    "centre.approval.decided.v2": _with_deadline(_decided, "answers due by", "respond_by"),
    "centre.approval.overdue.v1": _overdue,
    "centre.response.expired.v1": _expired,
    "centre.response.beneficiary.v1": _responded("beneficiary"),
    "centre.response.host.v1": _responded("host"),
    "centre.placement.confirmed.v1": _placed,
    "centre.match.solver-run-recorded.v3": _held_back,
    "centre.notification.requested.v1": _notification_requested,
    "centre.notification.delivered.v1": _notification_delivered,
    "centre.notification.failed.v1": _notification_failed,
}


def _describe(record: AuditRecord) -> Described:
    payload = record.payload if isinstance(record.payload, Mapping) else {}
    if "unparseable_value_b64" in payload:
        return ("unreadable", f"{record.event_type}: a value that is not JSON, kept as bytes", None, ())
    describe = DESCRIBE.get(record.event_type)
    if describe is None:
        return ("other", f"{record.event_type}", None, ())
    try:
        return describe(payload)
    except (AttributeError, TypeError, ValueError):
        # An event that does not follow its schema is still shown, and still in the log.
        return ("other", f"{record.event_type} (does not follow its schema)", None, ())


def case_timeline(case_id: str, records: Iterable[AuditRecord]) -> list[TimelineEntry]:
    """The entries of one case's history, in log order, from the records about it.

    A partner submission is only counted as the case's when the registration names the same partner and
    reference: references are the partners' own and need not be unique across partners.
    """
    ordered = sorted(records, key=lambda record: record.seq)
    registrations = [record.payload for record in ordered
                     if record.event_type == "centre.case.registered.v1" and isinstance(record.payload, Mapping)]
    submissions = {(payload.get("organisation_id"), payload.get("external_ref")) for payload in registrations}
    entries: list[TimelineEntry] = []
    for record in ordered:
        payload = record.payload if isinstance(record.payload, Mapping) else {}
        if record.event_type == "centre.partner.case-submitted.v1":
            if (payload.get("organisation_id"), payload.get("external_ref")) not in submissions:
                continue
        if record.event_type == "centre.match.solver-run-recorded.v3":
            if case_id not in (payload.get("held_back") or ()):
                continue  # a run is about its pool: it is this case's only when it held this case back
        step, summary, actor, details = _describe(record)
        entries.append(TimelineEntry(record.seq, record.event_time, step, summary, actor, details,
                                     record.event_type, record.event_id, record.source))
    return entries


def _moment(event_time: str) -> str:
    try:
        return datetime.fromisoformat(event_time).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return event_time


def render_timeline(case_id: str, entries: list[TimelineEntry]) -> str:
    """The timeline as text for a person: one line per step, its details indented under it."""
    if not entries:
        return f"No records about case {case_id} in the audit log."
    lines = [f"Case {case_id}: {len(entries)} records in the audit log, seq {entries[0].seq}..{entries[-1].seq} "
             "(times are event times, UTC)", ""]
    width = max(len(str(entry.seq)) for entry in entries) + 1
    for entry in entries:
        lines.append(f"{_moment(entry.event_time)}  #{entry.seq:<{width}} {entry.step:<12}  {entry.summary}")
        indent = " " * (19 + 2 + width + 1 + 1 + 12 + 2)
        lines.extend(f"{indent}{detail}" for detail in entry.details)
        lines.append(f"{indent}event {entry.event_id} from {entry.source}")
    return "\n".join(lines)
