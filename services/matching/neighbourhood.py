"""Re-solves around what changed: which pending proposals a re-solve keeps as they are.

With ``SolverParams.scope = "changes"`` the solver treats every pending proposal that still holds, and
that no more protected case is waiting for, as if it were approved, and solves the rest of the pool -
the waiting cases and the proposals this module re-opens - exactly as a full solve would.

Why: one capacity update leaves most proposals of a pool untouched, yet a full re-solve rebuilt and
searched the whole pool. On a live pool of 3,000 cases and 300 hosts CP-SAT spent about 3 s loading
the protection model and returned its hint unchanged in 20 re-solves out of 20, after which the
welfare phase had no time left (``benchmarks/matching_benchmark.py``, docs/matching.md).

A pending proposal is re-opened when
- its host no longer holds everything fixed and pending there (a capacity cut): every proposal there;
- the pair is no longer allowed (declined or rejected, or no longer compatible);
- a case linked to it is waiting, re-opened or elsewhere (linked cases are placed together);
- a case of higher protection rank (emergency, then urgent, then vulnerable) is waiting or re-opened,
  has no free room at any host it may go to, and would fit at this proposal's host if the proposals
  of lower rank there left: each such case re-opens them at its ``BUMP_HOSTS`` best such host by
  score. Repeated until nothing more opens, since a re-opened case may in turn outrank others.

What a re-solve around the changes gives up: chains of moves that start far from any change (moving a
proposal to make room elsewhere for a case that already waited). The resolver therefore solves the
whole pool on its first run after a start and on every ``matching_full_solve_every``-th run of a pool.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from services.matching.model import Case, PoolSnapshot, Weights, compatible
from services.matching.scores import DEMAND_DIMENSIONS, BoolArray, IntArray, PoolScores, capacity_of, demand_of

#: Hosts at which one waiting case of higher rank re-opens lower-ranked proposals: one is enough, since
#: the case fits there once they leave (more only made re-solves slower: a 750 x 75 pool's capacity
#: cuts re-opened up to 80 % of its proposals with 3).
BUMP_HOSTS: Final = 1
#: Cases scored at once.
CHUNK: Final = 256
#: Protection ranks: emergency 4, urgent 2, vulnerable 1, summed; 0 for everyone else.
RANKS: Final = 8


def rank(case: Case) -> int:
    return 4 * (case.urgency == "emergency") + 2 * (case.urgency == "urgent") + int(case.vulnerable)


def kept_proposals(snapshot: PoolSnapshot, weights: Weights) -> frozenset[str]:
    """The pending proposals (case ids) a re-solve around the changes keeps as they are."""
    cases = tuple(sorted(snapshot.cases, key=lambda c: c.case_id))
    hosts = tuple(sorted(snapshot.hosts, key=lambda h: h.host_id))
    case_index = {c.case_id: i for i, c in enumerate(cases)}
    host_index = {h.host_id: j for j, h in enumerate(hosts)}
    pending = {case_index[c]: host_index[h] for c, h in snapshot.pending.items()
               if c not in snapshot.fixed and c in case_index and h in host_index}
    demand = np.array([demand_of(c) for c in cases], dtype=np.int64).reshape(len(cases), len(DEMAND_DIMENSIONS))
    left = np.array([capacity_of(h) for h in hosts], dtype=np.int64).reshape(len(hosts), len(DEMAND_DIMENSIONS))
    for case_id, host_id in snapshot.fixed.items():
        if case_id in case_index and host_id in host_index:
            left[host_index[host_id]] -= demand[case_index[case_id]]
    for i, j in pending.items():
        left[j] -= demand[i]
    cut: BoolArray = np.asarray((left < 0).any(axis=1))
    kept = {i for i, j in pending.items()
            if not cut[j] and (cases[i].case_id, hosts[j].host_id) not in snapshot.forbidden
            and compatible(cases[i], hosts[j]) is None}
    ranks = np.array([rank(c) for c in cases], dtype=np.int64)
    linked: dict[int, set[int]] = {i: set() for i in range(len(cases))}  # whichever side names the link
    for i, c in enumerate(cases):
        for other in c.linked_case_ids:
            if (k := case_index.get(other)) is not None:
                linked[i].add(k)
                linked[k].add(i)
    fixed = {case_index[c]: host_index.get(h, -1) for c, h in snapshot.fixed.items() if c in case_index}
    scores = PoolScores(cases, hosts, snapshot.pool_id, snapshot.forbidden, weights)
    bumped_by: set[int] = set()  # cases whose bumps are already counted
    while True:
        before = len(kept)
        open_cases = {i for i in range(len(cases)) if i not in kept and i not in fixed}
        # linked cases share one host: a proposal stays only if each linked case stays with it
        kept -= {i for i in kept if any(pending[i] != (pending[k] if k in kept else fixed.get(k)) for k in linked[i])}
        needing = sorted(i for i in open_cases if ranks[i] and i not in bumped_by)
        bumped_by.update(needing)
        room, below = _room(kept, pending, ranks, demand, left)
        for start in range(0, len(needing), CHUNK):
            kept -= _bumped(needing[start:start + CHUNK], room, below, ranks, demand, left, scores)
        if len(kept) == before:
            return frozenset(cases[i].case_id for i in kept)


def _room(kept: set[int], pending: dict[int, int], ranks: IntArray, demand: IntArray,
          left: IntArray) -> tuple[IntArray, list[list[list[int]]]]:
    """``below[r][j]``: the kept proposals at host ``j`` of rank below ``r``; ``room[r, j]``: what host
    ``j`` offers a case of rank ``r`` once they are all re-opened (which is what a bump does)."""
    room = np.repeat(left[None, :, :], RANKS, axis=0)
    below: list[list[list[int]]] = [[[] for _ in range(len(left))] for _ in range(RANKS)]
    for i in sorted(kept):
        j = pending[i]
        for r in range(int(ranks[i]) + 1, RANKS):
            room[r, j] += demand[i]
            below[r][j].append(i)
    return room, below


def _bumped(needing: list[int], room: IntArray, below: list[list[list[int]]], ranks: IntArray,
            demand: IntArray, left: IntArray, scores: PoolScores) -> set[int]:
    """Kept proposals that the ``needing`` cases (waiting or re-opened, of some rank) re-open."""
    rows = scores.rows(needing)
    need = demand[needing]
    fits_now = np.asarray((need[:, None, :] <= left[None, :, :]).all(axis=2))
    fits_after = (need[:, None, :] <= room[ranks[needing]]).all(axis=2)
    possible = rows.allowed & ~fits_now & fits_after
    # a case with free room at a host it may go to takes that room; it needs nobody to leave
    possible &= ~(rows.allowed & fits_now).any(axis=1, keepdims=True)
    best = np.where(possible, rows.score, -np.inf)
    out: set[int] = set()
    for r, i in enumerate(needing):
        count = int(possible[r].sum())
        if not count:
            continue
        # best by score, ties by host order (stable sort), so the choice is deterministic
        for j in np.argsort(-best[r], kind="stable")[:min(BUMP_HOSTS, count)].tolist():
            out.update(below[int(ranks[i])][j])
    return out
