-- Identity links: (issuer, subject) of a connection -> BigCommerce customer (SECURITY.md rule 1).
CREATE TABLE identity_links (
    store_hash      TEXT    NOT NULL,
    issuer          TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    connection      TEXT    NOT NULL,
    customer_id     BIGINT  NOT NULL,
    -- JSON array of channel ids, or NULL for a global account.
    channel_ids     TEXT,
    email_at_link   TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_sign_in_at BIGINT  NOT NULL,
    PRIMARY KEY (store_hash, issuer, subject)
);
CREATE INDEX identity_links_customer ON identity_links (store_hash, customer_id);
CREATE INDEX identity_links_email ON identity_links (store_hash, email_at_link);

-- Audit trail of sign-ins and account changes. Times are Unix seconds.
CREATE TABLE audit_events (
    id             BIGSERIAL PRIMARY KEY,
    store_hash     TEXT    NOT NULL,
    at             BIGINT  NOT NULL,
    kind           TEXT    NOT NULL,
    connection     TEXT,
    subject        TEXT,
    email          TEXT,
    customer_id    BIGINT,
    reason         TEXT,
    correlation_id TEXT
);
CREATE INDEX audit_events_at ON audit_events (store_hash, at);
