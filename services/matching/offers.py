"""Jobs and study places for a given placement: which of the offers its households enable to take.

With the placements fixed, taking offers is a transportation problem: each person takes at most one
job and at most one study place (a *group* of offers), each host's jobs in one occupation, and its
study places, are a *slot* with so many left. A min-cost flow (OR-Tools) solves it exactly in
milliseconds: group -> slot (cost: minus the offer's gain) -> sink, or group -> sink (no offer).

Why: the welfare phase's hint (and its fallback when CP-SAT finds nothing) took offers greedily in
position order, so a person with two occupations could use up the last job of the occupation another
person needed; and the exchanges of households (exchange.py) are kept only when the hint comes out
better, which is judged on these offers.
"""

from __future__ import annotations

import numpy as np
from ortools.graph.python import min_cost_flow

from services.matching.scores import IntArray


def best_offers(group: IntArray, slot: IntArray, gain: IntArray, slot_left: IntArray) -> IntArray:
    """For each offer (its group, its slot and its gain), 1 if taken: at most one per group, at most
    ``slot_left[s]`` in slot ``s``, the sum of the gains of those taken as high as it goes."""
    taken = np.zeros(len(group), dtype=np.int64)
    if not len(group):
        return taken
    groups, group_node = np.unique(group, return_inverse=True)
    slots, slot_node = np.unique(slot, return_inverse=True)
    n_groups, n_slots = len(groups), len(slots)
    sink = n_groups + n_slots
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        np.concatenate([group_node, n_groups + np.arange(n_slots), np.arange(n_groups)]),
        np.concatenate([n_groups + slot_node, np.full(n_slots + n_groups, sink)]),
        np.concatenate([np.ones(len(group), dtype=np.int64), slot_left[slots], np.ones(n_groups, dtype=np.int64)]),
        np.concatenate([-gain, np.zeros(n_slots + n_groups, dtype=np.int64)]))
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n_groups] = 1
    supplies[sink] = -n_groups
    flow.set_nodes_supplies(np.arange(sink + 1), supplies)
    if flow.solve() != flow.OPTIMAL:  # pragma: no cover - every group can always take no offer
        raise RuntimeError("the offers' flow has no optimum")
    taken[:] = flow.flows(arcs[: len(group)])
    return taken
