-- IdP connections created in the admin console. `settings` is the connection's
-- configuration as JSON (the same fields as a [[connections]] entry of the config file,
-- without the secret); the client secret is stored only encrypted (AES-256-GCM).
CREATE TABLE connections (
    store_hash           TEXT    NOT NULL,
    id                   TEXT    NOT NULL,
    settings             TEXT    NOT NULL,
    client_secret_sealed TEXT    NOT NULL,
    enabled              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    PRIMARY KEY (store_hash, id)
);

-- Small named values, e.g. the check value that proves the secret key is the one the
-- stored secrets were encrypted with.
CREATE TABLE gateway_settings (
    store_hash TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (store_hash, name)
);
