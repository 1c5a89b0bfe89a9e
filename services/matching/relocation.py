"""Making room for an unplaced household by moving placed ones to another of their hosts.

A protection level is solved by CP-SAT from the greedy start. On the largest pools its budget ends
before the search finds the placements that need other households moved first: on 20,000 cases x
2,000 hosts the vulnerable level stopped at 3,856 vulnerable households placed of 3,955 after its
5 units, and a search without the hint found nothing in its own; given 23 units CP-SAT places all
3,955. What blocks them is plain: every candidate host of an unplaced vulnerable household is full
of protected households that would fit elsewhere.

So after a search that leaves a level unproven (and instead of the search on the biggest levels,
see the solver's PROTECTION_SEARCH_MAX_POSITIONS), each unplaced unit that counts in it tries its
candidate hosts, best first: it takes one with room, or one where
moving some of the units placed there, each to another of its own candidate hosts with room, frees
enough. A move never unplaces anyone, so no level reached so far is lowered; hosts are decided
later by the welfare phase anyway. On that pool the vulnerable level reaches all 3,955 this way in
0.1 s.
"""

from __future__ import annotations

import numpy as np

from services.matching.exchange import Candidates
from services.matching.scores import IntArray


def make_room(choice: IntArray, candidates: Candidates, weights: IntArray, units: IntArray) -> IntArray:
    """``choice`` (per unit: its flat candidate position, or -1) with more of ``units`` placed where
    one round of moves makes room: the unplaced ones with a weight, heaviest first (then the
    smallest households), each at its first candidate host that has room or can be given it. Only
    ``units`` count in the capacity and only they move; the other units' entries are returned as
    given (the caller places them again)."""
    packing = _Packing(choice, candidates, units)
    waiting = [u for u in units.tolist() if choice[u] < 0 and weights[u] > 0]
    waiting.sort(key=lambda u: (-int(weights[u]), packing.demand[u][0], u))
    for u in waiting:
        for p in range(packing.start[u], packing.start[u + 1]):
            if packing.fits(u, packing.host[p]) or packing.free_for(u, packing.host[p]):
                packing.put(u, p)
                break
    return packing.choice


class _Packing:
    """Where the relevant units are, and the room each host has left, as plain lists (the moves are
    tried one unit at a time)."""

    def __init__(self, choice: IntArray, candidates: Candidates, units: IntArray) -> None:
        self.choice = choice.copy()
        self.start: list[int] = candidates.start.tolist()
        self.host: list[int] = candidates.host.tolist()
        self.demand: list[list[int]] = candidates.unit_demand.tolist()
        placed = units[choice[units] >= 0]
        used = np.zeros_like(candidates.remaining)
        np.add.at(used, candidates.host[choice[placed]], candidates.unit_demand[placed])
        self.room: list[list[int]] = (candidates.remaining - used).tolist()
        self.at_host: list[list[int]] = [[] for _ in self.room]
        for u in placed.tolist():
            self.at_host[self.host[choice[u]]].append(u)

    def fits(self, u: int, j: int) -> bool:
        d, r = self.demand[u], self.room[j]
        return d[0] <= r[0] and d[1] <= r[1] and d[2] <= r[2] and d[3] <= r[3]

    def put(self, u: int, p: int) -> None:
        """Unit ``u`` at position ``p``, taken from where it was."""
        if self.choice[u] >= 0:
            was = self.host[self.choice[u]]
            self.at_host[was].remove(u)
            self.room[was] = [r + d for r, d in zip(self.room[was], self.demand[u], strict=True)]
        j = self.host[p]
        self.choice[u] = p
        self.at_host[j].append(u)
        self.room[j] = [r - d for r, d in zip(self.room[j], self.demand[u], strict=True)]

    def free_for(self, u: int, j: int) -> bool:
        """Move units placed at host ``j`` to another of their candidate hosts with room until unit
        ``u`` fits there; True if it does (the moves are kept), else False (each move undone)."""
        moved: list[tuple[int, int]] = []  # (unit, its position before the move)
        need = self.demand[u]
        for v in list(self.at_host[j]):
            room, frees = self.room[j], self.demand[v]
            short = [k for k in range(4) if need[k] > room[k]]
            if not short:
                break
            if not any(frees[k] for k in short):
                continue  # moving it frees nothing that is short
            for q in range(self.start[v], self.start[v + 1]):
                if self.host[q] != j and self.fits(v, self.host[q]):
                    moved.append((v, int(self.choice[v])))
                    self.put(v, q)
                    break
        if self.fits(u, j):
            return True
        for v, p in reversed(moved):
            self.put(v, p)
        return False
