-- Cases as consent knows them: enough to refuse consent for a case that does not exist.
CREATE TABLE cases (
    case_id         text PRIMARY KEY,
    pool_id         text    NOT NULL,
    organisation_id text    NOT NULL,
    language        text    NOT NULL,
    withdrawn       boolean NOT NULL DEFAULT false
);

CREATE TABLE consents (
    consent_id   text PRIMARY KEY,
    case_id      text        NOT NULL REFERENCES cases,
    purpose      text        NOT NULL,
    partner_id   text,
    obtained     jsonb       NOT NULL,
    expires_on   date,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    withdrawn_at timestamptz,
    withdrawn_by text
);
CREATE INDEX consents_by_case ON consents (case_id);

CREATE TABLE proposals (
    proposal_id          text PRIMARY KEY,
    case_id              text        NOT NULL,
    host_id              text        NOT NULL,
    pool_id              text        NOT NULL,
    urgency              text        NOT NULL,
    state                text        NOT NULL,
    reviewed_by          text,
    recommendation       text,
    decided_by           text,
    beneficiary_accepted boolean,
    host_accepted        boolean,
    proposed_at          timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX proposals_queue ON proposals (state, proposed_at);
CREATE INDEX proposals_by_case ON proposals (case_id);
