-- Admin changes name who made them and what changed (JSON, secrets masked).
ALTER TABLE audit_events ADD COLUMN actor TEXT;
ALTER TABLE audit_events ADD COLUMN detail TEXT;
