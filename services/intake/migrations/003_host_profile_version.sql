-- A host's profile (all but its capacity) has a version of its own, apart from the capacity's: the partner
-- that owns the host replaces the profile as a whole, naming the next version (PUT /hosts/{id}/profile).
ALTER TABLE hosts ADD COLUMN version integer NOT NULL DEFAULT 1;
