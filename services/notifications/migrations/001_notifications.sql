-- One row per recipient to be told one thing because of one event. The id is derived from the cause
-- (uuid5 over cause event id, rule and recipient), so a redelivered or replayed cause inserts nothing.
-- No message body is stored: the channel writes it from the rule and the language when it delivers.
CREATE TABLE notifications (
    id              text PRIMARY KEY,
    rule            text        NOT NULL,
    recipient_kind  text        NOT NULL
        CHECK (recipient_kind IN ('caseworker', 'approver', 'beneficiary', 'host', 'partner')),
    recipient_ref   text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('log', 'email', 'webhook')),
    language        text        NOT NULL,
    case_id         text,
    cause_event_id  text        NOT NULL,
    status          text        NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- When the dispatcher may try (again): now for a new notification, later after a failed attempt.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Why the last attempt failed, as the channel put it: never an address or a message.
    last_failure    text,
    -- The cause's trace, so the delivery continues the case's journey.
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'requested';
CREATE INDEX notifications_of_case ON notifications (case_id, created_at);
