-- Erasure (crypto-shredding) and retention.
-- closed_at: when the case ended (withdrawn at intake, or placed, learnt from PlacementConfirmed); the
-- retention sweep erases a case once it has been closed for the retention period.
-- erased_at: set once, when the case's key was deleted; the identity column is emptied with it.
ALTER TABLE cases ADD COLUMN closed_at timestamptz;
ALTER TABLE cases ADD COLUMN erased_at timestamptz;
ALTER TABLE cases ADD COLUMN erasure_reason text
    CHECK (erasure_reason IN ('person_request', 'retention_expired'));
UPDATE cases SET closed_at = now() WHERE status = 'withdrawn';
CREATE INDEX cases_due_for_erasure ON cases (closed_at) WHERE erased_at IS NULL AND closed_at IS NOT NULL;
