"""What a run's record carries: every field within the event's bounds, however much the run had to say."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.events import MOST_RUN_WARNINGS, SolverRunRecordedV3
from services.matching.resolver import recorded_warnings

RUN = dict(run_id="run-1", pool_id="pool-1", inputs_digest="0" * 64, inputs={}, parameters={},
           solver_version="ortools 9.15; engine test", seed=0, status="OPTIMAL", objective=0.0, bound=0.0, gap=0.0,
           duration_s=0.1, proposals=0, withdrawals=0, mechanism="welfare", blocking_pairs=0,
           stability="stable: no case and host would both rather be matched to each other", held_back=[],
           phases=[])


def test_a_run_with_more_warnings_than_its_record_holds_keeps_the_first_and_counts_the_rest() -> None:
    # a capacity cut below the approved matches of 150 hosts: one warning per host
    warnings = [f"host h{k}: fixed matches exceed its capacity" for k in range(150)]
    with pytest.raises(ValidationError):
        SolverRunRecordedV3(**RUN, warnings=warnings)
    kept = recorded_warnings(warnings)
    assert len(kept) == MOST_RUN_WARNINGS and kept[:-1] == warnings[:MOST_RUN_WARNINGS - 1]
    assert kept[-1] == "and 51 more warnings like these"
    assert SolverRunRecordedV3(**RUN, warnings=kept).warnings == kept
    assert recorded_warnings(warnings[:MOST_RUN_WARNINGS]) == warnings[:MOST_RUN_WARNINGS]
