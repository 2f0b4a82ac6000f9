-- BigCommerce webhook callbacks already handled, by their `hash`: BigCommerce may deliver
-- one event more than once (CONTRACT.md §7), and retries carry the same hash. Kept a few
-- days, longer than BigCommerce retries (about 48 h).
CREATE TABLE webhook_events (
    store_hash   TEXT   NOT NULL,
    hash         TEXT   NOT NULL,
    scope        TEXT   NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (store_hash, hash)
);
CREATE INDEX webhook_events_received ON webhook_events (store_hash, received_at);
