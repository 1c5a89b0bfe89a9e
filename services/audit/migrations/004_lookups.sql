-- recorded_at is read when an auditor exports a period: clock_timestamp() is taken under the append lock,
-- so it grows with seq, where now() (the transaction's start) would not.
ALTER TABLE records ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();

-- A case's timeline includes its notifications, which are keyed by notification id and name the case only
-- in their payload.
CREATE INDEX records_notification_case ON records (((payload::jsonb) ->> 'case_id'))
    WHERE event_type = 'centre.notification.requested.v1';
