-- Who was at the other end of an audited request: the client's IP (resolved through the
-- trusted proxies) and its User-Agent. Absent for events written outside a request.
ALTER TABLE audit_events ADD COLUMN client_ip TEXT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;
