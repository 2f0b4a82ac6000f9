//! Identity links: which BigCommerce customer an IdP login `(iss, sub)` signs in as.

use sqlx::Row;

use super::{Db, DbError, like_pattern};
use crate::domain::{ChannelId, ConnectionId};

/// A stored link from an IdP login to a BigCommerce customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    pub issuer: String,
    pub subject: String,
    pub connection: ConnectionId,
    pub customer_id: i64,
    /// The customer's `channel_ids` when linked (`None` = global account).
    pub channel_ids: Option<Vec<ChannelId>>,
    pub email_at_link: String,
    pub created_at: i64,
    pub last_sign_in_at: i64,
}

/// The columns of [`IdentityLink`], as a literal for `concat!` (the SQL stays static).
macro_rules! columns {
    () => {
        "issuer, subject, connection, customer_id, channel_ids, email_at_link, created_at, last_sign_in_at"
    };
}

/// This store's links (`$1`) that match `$rest`.
macro_rules! select_links {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM identity_links WHERE store_hash = $1 AND ",
            $rest
        )
    };
}

impl Db {
    pub async fn find_link(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<IdentityLink>, DbError> {
        let query = || {
            self.query(select_links!("issuer = $2 AND subject = $3"))
                .bind(issuer)
                .bind(subject)
        };
        let row = match &self.hot {
            Some(hot) => hot.fetch_optional(&self.pool, query).await?,
            None => query().fetch_optional(&self.pool).await?,
        };
        row.map(|r| link_from_row(&r)).transpose()
    }

    /// Links of one customer, oldest first (the earliest link of an issuer wins a race).
    pub async fn links_of_customer(&self, customer_id: i64) -> Result<Vec<IdentityLink>, DbError> {
        let rows = self
            .query(select_links!(
                "customer_id = $2 ORDER BY created_at, subject"
            ))
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(link_from_row).collect()
    }

    /// Inserts a link unless one exists for the same login; returns the link that is
    /// stored afterwards. Two first sign-ins of one person at once both end with the
    /// winner's link.
    pub async fn insert_link(&self, link: &IdentityLink) -> Result<IdentityLink, DbError> {
        self.query(concat!(
            "INSERT INTO identity_links (store_hash, ",
            columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (store_hash, issuer, subject) DO NOTHING"
        ))
        .bind(&link.issuer)
        .bind(&link.subject)
        .bind(link.connection.as_str())
        .bind(link.customer_id)
        .bind(channel_ids_text(&link.channel_ids))
        .bind(&link.email_at_link)
        .bind(link.created_at)
        .bind(link.last_sign_in_at)
        .execute(&self.writer)
        .await
        .map_err(|e| match &e {
            // The same subject at once is `DO NOTHING` above; a unique violation left is
            // another subject of this issuer holding the customer.
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::CustomerAlreadyLinked,
            _ => DbError::Query(e),
        })?;
        self.find_link(&link.issuer, &link.subject)
            .await?
            .ok_or(DbError::Query(sqlx::Error::RowNotFound))
    }

    pub async fn touch_link(&self, link: &IdentityLink, at: i64) -> Result<(), DbError> {
        self.query(
            "UPDATE identity_links SET last_sign_in_at = $2 \
             WHERE store_hash = $1 AND issuer = $3 AND subject = $4",
        )
        .bind(at)
        .bind(&link.issuer)
        .bind(&link.subject)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Links whose email at link time contains `email` (case-insensitive), newest first.
    pub async fn search_links(
        &self,
        email: &str,
        limit: i64,
    ) -> Result<Vec<IdentityLink>, DbError> {
        let rows = self
            .query(select_links!("LOWER(email_at_link) LIKE $2 ESCAPE '\\' ORDER BY last_sign_in_at DESC, subject LIMIT $3"))
            .bind(like_pattern(email))
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(link_from_row).collect()
    }

    /// Removes a link; returns it as it was, or `None` when there was none.
    pub async fn delete_link(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<IdentityLink>, DbError> {
        let Some(link) = self.find_link(issuer, subject).await? else {
            return Ok(None);
        };
        let done = self
            .query(
                "DELETE FROM identity_links WHERE store_hash = $1 AND issuer = $2 AND subject = $3",
            )
            .bind(issuer)
            .bind(subject)
            .execute(&self.writer)
            .await?;
        Ok((done.rows_affected() > 0).then_some(link))
    }

    /// Sets what `link` knows of its customer's channels (BigCommerce changed them); whether
    /// a row changed. Only while the link still points at the same customer.
    pub async fn set_link_channels(
        &self,
        link: &IdentityLink,
        channel_ids: &Option<Vec<ChannelId>>,
    ) -> Result<bool, DbError> {
        let done = self
            .query(
                "UPDATE identity_links SET channel_ids = $2 \
                 WHERE store_hash = $1 AND issuer = $3 AND subject = $4 AND customer_id = $5",
            )
            .bind(channel_ids_text(channel_ids))
            .bind(&link.issuer)
            .bind(&link.subject)
            .bind(link.customer_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn count_links(&self) -> Result<i64, DbError> {
        let row = self
            .query("SELECT COUNT(*) AS n FROM identity_links WHERE store_hash = $1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

fn link_from_row(r: &sqlx::any::AnyRow) -> Result<IdentityLink, DbError> {
    let connection: String = r.try_get("connection")?;
    let channel_ids: Option<String> = r.try_get("channel_ids")?;
    Ok(IdentityLink {
        issuer: r.try_get("issuer")?,
        subject: r.try_get("subject")?,
        connection: ConnectionId::parse(&connection)
            .map_err(|_| DbError::BadConnectionId(connection))?,
        customer_id: r.try_get("customer_id")?,
        // Unreadable is an error, not `None`: `None` would widen the link to every channel.
        channel_ids: channel_ids
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(DbError::BadChannelIds)?,
        email_at_link: r.try_get("email_at_link")?,
        created_at: r.try_get("created_at")?,
        last_sign_in_at: r.try_get("last_sign_in_at")?,
    })
}

/// As the `channel_ids` column holds them: a JSON array (`[1,2]`), NULL for a global account.
fn channel_ids_text(ids: &Option<Vec<ChannelId>>) -> Option<String> {
    ids.as_ref()
        .map(|v| serde_json::Value::from(v.iter().map(|id| id.0).collect::<Vec<_>>()).to_string())
}
