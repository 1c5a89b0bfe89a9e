-- Deadlines of the approval workflow, set by consent itself (see services/consent/settings.py):
-- decide_by when a proposal is reviewed (by urgency), respond_by when it is approved. escalated_at records
-- that an overdue decision was escalated, so the sweep escalates each one once, whatever runs it.
-- Proposals reviewed or approved before this migration have no deadline and are never swept.
ALTER TABLE proposals ADD COLUMN decide_by timestamptz;
ALTER TABLE proposals ADD COLUMN respond_by timestamptz;
ALTER TABLE proposals ADD COLUMN escalated_at timestamptz;
CREATE INDEX proposals_decision_due ON proposals (decide_by) WHERE state = 'reviewed' AND escalated_at IS NULL;
CREATE INDEX proposals_response_due ON proposals (respond_by) WHERE state = 'approved';
