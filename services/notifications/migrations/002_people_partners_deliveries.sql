-- Deliveries: what each notification quotes, who receives it, who is trying it now, and its end states.

-- 'dead' replaces 'failed': a delivery that ran out of attempts is a dead letter an operator can re-send.
-- 'withheld' is a delivery that must not happen any more (its consent or its subscription was withdrawn).
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
UPDATE notifications SET status = 'dead' WHERE status = 'failed';
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('requested', 'delivered', 'dead', 'withheld'));

-- The ids, dates and deadlines the message quotes, or the event a partner receives: never a person's data.
ALTER TABLE notifications ADD COLUMN facts jsonb NOT NULL DEFAULT '{}';
-- Who receives it: deliveries to one receiver are limited in number so that a slow receiver cannot take
-- every slot of the dispatcher.
ALTER TABLE notifications ADD COLUMN receiver text
    GENERATED ALWAYS AS (channel || ':' || recipient_kind || ':' || recipient_ref) STORED;
-- The dispatcher's claim on an attempt in flight; next_attempt_at is pushed past the attempt's lease, so a
-- dispatcher that dies mid-attempt leaves the delivery to be tried again, and a late outcome of a lost
-- claim changes nothing.
ALTER TABLE notifications ADD COLUMN claim uuid;
-- How often an operator re-sent it after it was dead.
ALTER TABLE notifications ADD COLUMN resends integer NOT NULL DEFAULT 0;
CREATE INDEX notifications_by_status ON notifications (status, created_at);

-- What this service knows of cases, hosts, consents and proposals, from the events it consumes. Ids,
-- pools, organisations and languages only: a case's identity is sealed and never reaches this service.
CREATE TABLE cases (
    case_id         text PRIMARY KEY,
    pool_id         text        NOT NULL,
    organisation_id text        NOT NULL,
    language        text        NOT NULL,
    withdrawn_at    timestamptz
);

CREATE TABLE hosts (
    host_id         text PRIMARY KEY,
    pool_id         text NOT NULL,
    organisation_id text NOT NULL
);

-- Consents to share a case's data with a named partner organisation; only these concern this service.
CREATE TABLE partner_consents (
    consent_id   text PRIMARY KEY,
    case_id      text        NOT NULL,
    partner_id   text        NOT NULL,
    expires_on   date,
    withdrawn_at timestamptz
);
CREATE INDEX partner_consents_of_case ON partner_consents (case_id, partner_id);

-- Proposals as far as reminders need them: a reviewed proposal's decision is due by decide_by, and the
-- approvers' desk is reminded once when it passes.
CREATE TABLE proposals (
    proposal_id       text PRIMARY KEY,
    case_id           text        NOT NULL,
    host_id           text        NOT NULL,
    pool_id           text,
    urgency           text        NOT NULL DEFAULT 'normal',
    state             text        NOT NULL DEFAULT 'proposed'
        CHECK (state IN ('proposed', 'reviewed', 'decided', 'withdrawn')),
    reviewed_event_id text,
    decide_by         timestamptz,
    overdue_requested boolean     NOT NULL DEFAULT false
);
CREATE INDEX proposals_overdue ON proposals (decide_by) WHERE state = 'reviewed' AND NOT overdue_requested;

-- Where desks and hosts are reached by email, and in which language. A beneficiary's contact is never
-- kept here: it is sealed with the case's own key.
CREATE TABLE contacts (
    recipient_kind text        NOT NULL CHECK (recipient_kind IN ('caseworker', 'approver', 'host')),
    recipient_ref  text        NOT NULL,
    address        text        NOT NULL,
    language       text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recipient_kind, recipient_ref)
);

-- Partner systems' subscriptions. The signing secret is not here: only the id of a key held in settings.
CREATE TABLE subscriptions (
    subscription_id text PRIMARY KEY,
    organisation_id text        NOT NULL,
    event_types     text[]      NOT NULL,
    callback_url    text        NOT NULL,
    key_id          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX subscriptions_of_organisation ON subscriptions (organisation_id) WHERE deleted_at IS NULL;
