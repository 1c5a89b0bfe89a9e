-- What a run decided besides its proposals (the cases it held back in dynamic mode) and the steps it took,
-- kept with the run for operators and auditors (centre.match.solver-run-recorded.v3). Runs from before
-- have no record of either: NULL, not an empty list.
ALTER TABLE solver_runs
    ADD COLUMN held_back text[],
    ADD COLUMN phases    jsonb,
    ADD COLUMN warnings  text[];
