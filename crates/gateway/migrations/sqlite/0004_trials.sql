-- "Try sign-in" runs of the admin console: a ticket started by an admin, and what the
-- sign-in found (claims, policy decision, the customer it would use) as JSON. No token is
-- minted and nothing is created for a trial.
CREATE TABLE trials (
    store_hash  TEXT   NOT NULL,
    ticket      TEXT   NOT NULL,
    connection  TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    started     BIGINT NOT NULL,
    result      TEXT,
    PRIMARY KEY (store_hash, ticket)
);
