"""Why a case was proposed to a host: the explanation attached to every proposal.

Staff and beneficiaries must be able to contest a proposal, so an explanation says what each
criterion contributed, which of the host's capacities ran out, and why the best other hosts lost
(with the reason they could correct, e.g. a wrong medical need or a missing accessible unit).
Plain frozen dataclasses; ``to_dict()`` gives JSON-ready data for events and the audit stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Why an alternative host lost, from the hardest reason to the softest.
AlternativeReason = Literal[
    "declined",      # the pair was declined or rejected earlier and is never proposed again
    "incompatible",  # a hard fact rules the pair out (see model.compatible)
    "fixed",         # the case's approved/accepted match is kept exactly
    "capacity",      # the host had no room left in some dimension
    "lower_score",   # the host fits, but the chosen host scores higher for this case
    "linked",        # linked cases must share one host, and the group fits better elsewhere
    "not_candidate",  # pruned: not among the case's top-K hosts
    "disruption",    # the pending proposal was kept, since moving it gains less than it costs
    "tie",           # equal score; the deterministic tie-break chose the other host
    "search_limit",  # the solver stopped (time budget / gap) before trying it
]


@dataclass(frozen=True, slots=True)
class Alternative:
    """A host the case could have gone to, and why it did not."""

    host_id: str
    score: float
    reason: AlternativeReason
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"host_id": self.host_id, "score": round(self.score, 6), "reason": self.reason,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why ``case_id`` is placed with ``host_id``.

    ``contributions`` are the weighted welfare criteria of the chosen pair (beneficiary_preference,
    host_preference, prospects, ties); they sum to ``score``. ``priority`` says how urgency and
    vulnerability were used: they are not summed with the welfare criteria but decide, before any
    of them, which cases get a place at all. ``binding`` lists the host's capacity dimensions that
    are now fully used (``jobs:<occupation>`` for jobs).
    """

    case_id: str
    host_id: str
    fixed: bool
    kept_pending: bool
    score: float
    contributions: Mapping[str, float]
    priority: Mapping[str, Any]
    binding: tuple[str, ...]
    job: str | None = None
    study_place: bool = False
    alternatives: tuple[Alternative, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (floats rounded to 6 places so that replays compare equal as text)."""
        return {
            "case_id": self.case_id,
            "host_id": self.host_id,
            "fixed": self.fixed,
            "kept_pending": self.kept_pending,
            "score": round(self.score, 6),
            "contributions": {k: round(v, 6) for k, v in self.contributions.items()},
            "priority": dict(self.priority),
            "binding": list(self.binding),
            "job": self.job,
            "study_place": self.study_place,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }
