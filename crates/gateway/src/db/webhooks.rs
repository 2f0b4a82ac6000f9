//! Webhook callbacks already handled, by `hash` (BigCommerce delivers some twice).

use super::{Db, DbError};

/// How long a handled hash is remembered: past BigCommerce's ~48 h of retries.
pub const WEBHOOK_MEMORY_SECS: i64 = 4 * 24 * 3600;

impl Db {
    /// Claims the event `hash` for handling: `true` the first time, `false` when it was
    /// claimed before (a duplicate). The INSERT is the single point of decision, so two
    /// deliveries at once are handled once. Old hashes are forgotten on the way.
    pub async fn claim_webhook(&self, hash: &str, scope: &str, now: i64) -> Result<bool, DbError> {
        self.query("DELETE FROM webhook_events WHERE store_hash = $1 AND received_at < $2")
            .bind(now - WEBHOOK_MEMORY_SECS)
            .execute(&self.pool)
            .await?;
        let done = self
            .query(
                "INSERT INTO webhook_events (store_hash, hash, scope, received_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (store_hash, hash) DO NOTHING",
            )
            .bind(hash)
            .bind(scope)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claim back after handling failed, so BigCommerce's retry is handled.
    pub async fn release_webhook(&self, hash: &str) -> Result<(), DbError> {
        self.query("DELETE FROM webhook_events WHERE store_hash = $1 AND hash = $2")
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
