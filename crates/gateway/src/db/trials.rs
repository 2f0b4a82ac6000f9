//! "Try sign-in" runs of the admin console: a ticket, used once, and the report it ends with.
//! In the database rather than the admin's session so any replica can finish a run.

use sqlx::Row;

use super::{Db, DbError};

/// A "Try sign-in" run of the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub connection: String,
    pub actor: String,
    pub created_at: i64,
    /// The report as JSON, once the sign-in came back.
    pub result: Option<String>,
}

impl Db {
    pub async fn create_trial(
        &self,
        ticket: &str,
        connection: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), DbError> {
        self.query(
            "INSERT INTO trials (store_hash, ticket, connection, actor, created_at, started) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(ticket)
        .bind(connection)
        .bind(actor)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Marks a trial ticket used, once, if it is not older than `not_before`; returns its
    /// connection. The UPDATE is the single point of use, so a ticket cannot start two runs.
    pub async fn start_trial(
        &self,
        ticket: &str,
        not_before: i64,
    ) -> Result<Option<String>, DbError> {
        let done = self
            .query(
                "UPDATE trials SET started = 1 \
                 WHERE store_hash = $1 AND ticket = $2 AND started = 0 AND created_at >= $3",
            )
            .bind(ticket)
            .bind(not_before)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(self.trial(ticket).await?.map(|t| t.connection))
    }

    pub async fn finish_trial(&self, ticket: &str, result: &str) -> Result<(), DbError> {
        self.query("UPDATE trials SET result = $3 WHERE store_hash = $1 AND ticket = $2")
            .bind(ticket)
            .bind(result)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn trial(&self, ticket: &str) -> Result<Option<Trial>, DbError> {
        let row = self
            .query(
                "SELECT connection, actor, created_at, result FROM trials \
                 WHERE store_hash = $1 AND ticket = $2",
            )
            .bind(ticket)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Trial {
                connection: r.try_get("connection")?,
                actor: r.try_get("actor")?,
                created_at: r.try_get("created_at")?,
                result: r.try_get("result")?,
            })
        })
        .transpose()
    }
}
