-- The consent service owns the workflow's deadlines: it sets them on its events and announces an overdue
-- decision itself (centre.approval.overdue.v1). The reminder sweep that kept these columns is gone; the
-- proposals table only remembers each proposal's pool, for the desk its later messages go to.
DROP INDEX IF EXISTS proposals_overdue;
ALTER TABLE proposals DROP COLUMN IF EXISTS state;
ALTER TABLE proposals DROP COLUMN IF EXISTS reviewed_event_id;
ALTER TABLE proposals DROP COLUMN IF EXISTS decide_by;
ALTER TABLE proposals DROP COLUMN IF EXISTS overdue_requested;
