-- A placed case is closed with status 'placed', not left 'registered': erasing it must not announce a
-- withdrawal, and neither its profile nor a withdrawal may change it any more.
ALTER TABLE cases DROP CONSTRAINT cases_status_check;
ALTER TABLE cases ADD CONSTRAINT cases_status_check CHECK (status IN ('registered', 'withdrawn', 'placed'));
UPDATE cases SET status = 'placed' WHERE status = 'registered' AND closed_at IS NOT NULL;
