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

#[cfg(test)]
mod tests {
    use crate::db::IdentityLink;
    use crate::db::tests::databases;
    use crate::domain::{ChannelId, ConnectionId};

    use super::WEBHOOK_MEMORY_SECS;

    #[tokio::test]
    async fn a_hash_is_claimed_once_until_released_or_forgotten() {
        for db in databases().await {
            assert!(
                db.claim_webhook("h1", "store/customer/updated", 1000)
                    .await
                    .unwrap()
            );
            assert!(
                !db.claim_webhook("h1", "store/customer/updated", 1001)
                    .await
                    .unwrap()
            );
            // Another store's gateway on the same database has its own hashes.
            let other = db.for_store(&format!("{}-other", db.store_hash()));
            assert!(
                other
                    .claim_webhook("h1", "store/customer/updated", 1001)
                    .await
                    .unwrap()
            );
            // Released after a failure: the retry is handled.
            db.release_webhook("h1").await.unwrap();
            assert!(
                db.claim_webhook("h1", "store/customer/updated", 1002)
                    .await
                    .unwrap()
            );
            // Past BigCommerce's retries the hash is forgotten.
            let later = 1002 + WEBHOOK_MEMORY_SECS + 1;
            assert!(
                db.claim_webhook("h1", "store/customer/updated", later)
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn a_links_channels_follow_its_customer() {
        for db in databases().await {
            let link = IdentityLink {
                issuer: "https://idp.test".into(),
                subject: "ada".into(),
                connection: ConnectionId::parse("acme").unwrap(),
                customer_id: 7,
                channel_ids: Some(vec![ChannelId(1)]),
                email_at_link: "ada@acme.test".into(),
                created_at: 100,
                last_sign_in_at: 100,
            };
            db.insert_link(&link).await.unwrap();
            assert!(
                db.set_link_channels(&link, &Some(vec![ChannelId(2)]))
                    .await
                    .unwrap()
            );
            let found = db
                .find_link("https://idp.test", "ada")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.channel_ids, Some(vec![ChannelId(2)]));
            // Global now (`null`): read back as such, not as "no restriction lost".
            assert!(db.set_link_channels(&link, &None).await.unwrap());
            let found = db
                .find_link("https://idp.test", "ada")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.channel_ids, None);
            // A link that meanwhile points elsewhere is not touched.
            let stale = IdentityLink {
                customer_id: 8,
                ..link
            };
            assert!(
                !db.set_link_channels(&stale, &Some(vec![ChannelId(1)]))
                    .await
                    .unwrap()
            );
        }
    }
}
