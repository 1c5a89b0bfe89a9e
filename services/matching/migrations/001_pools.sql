-- What matching knows of each pool: cases, consents, hosts, proposals and the pairs never to propose.
CREATE TABLE cases (
    case_id     text PRIMARY KEY,
    pool_id     text        NOT NULL,
    profile     jsonb       NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    arrived_seq bigserial   NOT NULL,
    withdrawn   boolean     NOT NULL DEFAULT false,
    -- The trace of the case's registration: its proposals continue it, so one journey is one trace.
    traceparent text
);
CREATE INDEX cases_by_pool ON cases (pool_id);

-- Consents for the purpose 'matching' only: without one in force, a case never enters its pool.
CREATE TABLE matching_consents (
    consent_id text PRIMARY KEY,
    case_id    text    NOT NULL,
    expires_on date,
    withdrawn  boolean NOT NULL DEFAULT false
);
CREATE INDEX matching_consents_by_case ON matching_consents (case_id);

CREATE TABLE hosts (
    host_id          text PRIMARY KEY,
    pool_id          text    NOT NULL,
    profile          jsonb   NOT NULL,
    capacity         jsonb   NOT NULL,
    capacity_version integer NOT NULL DEFAULT 1
);
CREATE INDEX hosts_by_pool ON hosts (pool_id);

CREATE TABLE proposals (
    proposal_id text PRIMARY KEY,
    case_id     text             NOT NULL,
    host_id     text             NOT NULL,
    pool_id     text             NOT NULL,
    run_id      text             NOT NULL,
    status      text             NOT NULL CHECK (status IN
                ('pending', 'approved', 'placed', 'withdrawn', 'rejected', 'declined')),
    score       double precision NOT NULL,
    created_at  timestamptz      NOT NULL DEFAULT now(),
    updated_at  timestamptz      NOT NULL DEFAULT now()
);
-- A case has at most one live proposal.
CREATE UNIQUE INDEX proposals_one_live_per_case ON proposals (case_id)
    WHERE status IN ('pending', 'approved', 'placed');
CREATE INDEX proposals_by_pool ON proposals (pool_id, status);

CREATE TABLE forbidden_pairs (
    case_id text NOT NULL,
    host_id text NOT NULL,
    reason  text NOT NULL,
    PRIMARY KEY (case_id, host_id)
);

-- Pools whose inputs changed since their last solve. Marking is durable, so a crash never skips a re-solve.
CREATE TABLE dirty_pools (
    pool_id   text PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE solver_runs (
    run_id         text PRIMARY KEY,
    pool_id        text             NOT NULL,
    inputs_digest  text             NOT NULL,
    parameters     jsonb            NOT NULL,
    solver_version text             NOT NULL,
    seed           integer          NOT NULL,
    status         text             NOT NULL,
    objective      double precision NOT NULL,
    bound          double precision NOT NULL,
    gap            double precision NOT NULL,
    duration_s     double precision NOT NULL,
    proposals      integer          NOT NULL,
    withdrawals    integer          NOT NULL,
    started_at     timestamptz      NOT NULL
);
