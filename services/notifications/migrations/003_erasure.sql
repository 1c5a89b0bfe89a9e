-- A case whose identifying data was erased (centre.case.erased.v1): its deliveries not yet made are
-- withheld and its partner consents forgotten; nothing here held its identity in the first place.
ALTER TABLE cases ADD COLUMN erased_at timestamptz;
