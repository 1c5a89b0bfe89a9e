-- Every solution's blocking pairs are reported, in every mode (issue 3): kept with the run for operators.
ALTER TABLE solver_runs
    ADD COLUMN mechanism      text NOT NULL DEFAULT 'welfare',
    ADD COLUMN blocking_pairs integer,
    ADD COLUMN stability      text;
