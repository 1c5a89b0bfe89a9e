"""Blocking pairs kept up to date as households move, for the stable mode's last step (``solver``'s
``fewer_blocking_by_moves``): moves that keep every protection level, each kept only if it lowers the exact
count.

A pair (case i, host j) blocks by what i holds (it must prefer j to its host) and by what j holds (i must
fit beside the cases j wants at least as much as i): see ``solver.blocking_pairs``, whose definition this
follows. So moving households changes only the rows of the cases moved and the columns of the hosts they
leave and join, and a move is judged by recounting those: O(cases + hosts) per move, where a recount of
the whole pool is O(cases x hosts).

Why moves at all: the stable mode's exact model proves its answer on pools of tens of cases, but on
hundreds its search stays near its hint and on thousands it improves nothing within its budget, so most
of what the stable mode achieves there came from exchanges within classes of households of one size
(docs/matching.md). A household moving into the room another host has, taking the place of one of the
same protection class, or trading hosts with one of another size is a move those exchanges cannot make.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from services.matching.scores import BoolArray, FloatArray, IntArray


class BlockingPairs:
    """The blocking pairs of an assignment of cases to hosts (``host_of``: a host index per case, or -1),
    given each pair's compatibility (``allowed``), the case's preference for the host (``prefers``), the
    host's wish for the case (``wishes``), the cases' demand and the hosts' capacity in each dimension."""

    def __init__(self, allowed: BoolArray, prefers: FloatArray, wishes: FloatArray, demand: IntArray,
                 capacity: IntArray, host_of: IntArray) -> None:
        self.allowed, self.prefers, self.wishes = allowed, prefers, wishes
        self.demand, self.capacity = demand, capacity
        self.n_cases, self.n_hosts = allowed.shape
        # the distinct wishes, and for each pair the index of its own: host_preference takes few values
        self.levels = np.unique(wishes)
        self.level_of = np.searchsorted(self.levels, wishes)
        # kept[j, k]: what the cases at j that j wants at least levels[k] take, per dimension
        self.kept = np.zeros((self.n_hosts, len(self.levels), demand.shape[1]), dtype=np.int64)
        self.host_of = np.full(self.n_cases, -1, dtype=np.int64)
        self.current = np.full(self.n_cases, -np.inf)
        for i in np.flatnonzero(host_of >= 0).tolist():
            self._place(i, int(host_of[i]))
        self.count = int(sum(self.row(i).sum() for i in range(self.n_cases)))

    def _place(self, i: int, j: int) -> None:
        """Case ``i`` leaves its host, if any, for host ``j`` (-1: unplaced)."""
        held = int(self.host_of[i])
        if held >= 0:
            self.kept[held, self.levels <= self.wishes[i, held]] -= self.demand[i]
        self.host_of[i] = j
        self.current[i] = self.prefers[i, j] if j >= 0 else -np.inf
        if j >= 0:
            self.kept[j, self.levels <= self.wishes[i, j]] += self.demand[i]

    def row(self, i: int) -> BoolArray:
        """The hosts case ``i`` blocks with."""
        left = self.capacity - self.kept[np.arange(self.n_hosts), self.level_of[i]]
        blocks = self.allowed[i] & (self.prefers[i] > self.current[i]) & (self.demand[i] <= left).all(axis=1)
        if self.host_of[i] >= 0:
            blocks[self.host_of[i]] = False
        return blocks

    def column(self, j: int) -> BoolArray:
        """The cases host ``j`` blocks with."""
        left = self.capacity[j] - self.kept[j, self.level_of[:, j]]
        return (self.allowed[:, j] & (self.prefers[:, j] > self.current) & (self.demand <= left).all(axis=1)
                & (self.host_of != j))

    def _touched(self, cases: list[int], hosts: list[int]) -> int:
        """The blocking pairs in the rows of ``cases`` and the columns of ``hosts``, each counted once."""
        rows = [self.row(i) for i in cases]
        return (sum(int(row.sum()) for row in rows) + sum(int(self.column(j).sum()) for j in hosts)
                - sum(int(row[hosts].sum()) for row in rows))

    def change(self, moves: Mapping[int, int]) -> int:
        """How the count would change if each case of ``moves`` went to its host (-1: unplaced)."""
        before = {i: int(self.host_of[i]) for i in moves}
        cases = list(moves)
        hosts = sorted({j for j in (*before.values(), *moves.values()) if j >= 0})
        was = self._touched(cases, hosts)
        for i, j in moves.items():
            self._place(i, j)
        now = self._touched(cases, hosts)
        for i, j in before.items():
            self._place(i, j)
        return now - was

    def move(self, moves: Mapping[int, int]) -> None:
        """Make ``moves``: each case to its host (-1: unplaced)."""
        self.count += self.change(moves)
        for i, j in moves.items():
            self._place(i, j)
