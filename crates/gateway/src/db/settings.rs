//! The rows of the console-managed settings (`crate::settings`): named values in
//! `gateway_settings` (a kind's version row, the store settings, admin access, …) and the
//! console's connections, changed together by [`Db::write_versioned`].

use sqlx::Row;

use super::{Db, DbError};

/// A console-managed connection as stored: settings JSON and the sealed client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    pub id: String,
    pub settings: String,
    pub client_secret_sealed: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row change of console-managed connections, made only through
/// [`Db::write_versioned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsWrite {
    /// Inserts or replaces a connection (`created_at` is kept on replace).
    SaveConnection(StoredConnection),
    /// Flips only the `enabled` flag.
    SetConnectionEnabled {
        id: String,
        enabled: bool,
        at: i64,
    },
    DeleteConnection(String),
}

impl SettingsWrite {
    fn query<'q>(
        &'q self,
        db: &'q Db,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            SettingsWrite::SaveConnection(c) => db.query(
                "INSERT INTO connections (store_hash, id, settings, client_secret_sealed, enabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (store_hash, id) DO UPDATE SET settings = $3, client_secret_sealed = $4, \
                 enabled = $5, updated_at = $7",
            )
            .bind(&c.id)
            .bind(&c.settings)
            .bind(&c.client_secret_sealed)
            .bind(i64::from(c.enabled))
            .bind(c.created_at)
            .bind(c.updated_at),
            SettingsWrite::SetConnectionEnabled { id, enabled, at } => db
                .query(
                    "UPDATE connections SET enabled = $3, updated_at = $4 \
                     WHERE store_hash = $1 AND id = $2",
                )
                .bind(id)
                .bind(i64::from(*enabled))
                .bind(*at),
            SettingsWrite::DeleteConnection(id) => {
                db.query("DELETE FROM connections WHERE store_hash = $1 AND id = $2")
                    .bind(id)
            }
        }
    }
}

impl Db {
    /// Console-managed connections, in id order.
    pub async fn list_connections(&self) -> Result<Vec<StoredConnection>, DbError> {
        let rows = self
            .query(
                "SELECT id, settings, client_secret_sealed, enabled, created_at, updated_at \
                 FROM connections WHERE store_hash = $1 ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredConnection {
                    id: r.try_get("id")?,
                    settings: r.try_get("settings")?,
                    client_secret_sealed: r.try_get("client_secret_sealed")?,
                    enabled: r.try_get::<i64, _>("enabled")? != 0,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, DbError> {
        let row = self
            .query("SELECT value FROM gateway_settings WHERE store_hash = $1 AND name = $2")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Writes `value` only if the row still holds `expected` (`None`: no row yet), so two
    /// replicas saving at once cannot overwrite each other unseen. Returns whether it wrote.
    pub async fn replace_setting(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, DbError> {
        self.write_versioned(name, expected, value, &[]).await
    }

    /// The one way console changes are written: in one transaction, the version row
    /// `version` moves from `expected` (`None`: no row yet) to `next`, and only if it did
    /// are `writes` made. A writer that read an older version changes nothing and gets
    /// `false`, so what it checked (e.g. that no two connections claim one email domain)
    /// still holds for what is stored. The version row is locked from its UPDATE to the
    /// commit: PostgreSQL makes a second writer wait and then re-check `value`, SQLite
    /// lets one writer in at a time.
    pub async fn write_versioned(
        &self,
        version: &str,
        expected: Option<&str>,
        next: &str,
        writes: &[SettingsWrite],
    ) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        let moved = match expected {
            Some(old) => self
                .query(
                    "UPDATE gateway_settings SET value = $3 \
                     WHERE store_hash = $1 AND name = $2 AND value = $4",
                )
                .bind(version)
                .bind(next)
                .bind(old),
            None => self
                .query(
                    "INSERT INTO gateway_settings (store_hash, name, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (store_hash, name) DO NOTHING",
                )
                .bind(version)
                .bind(next),
        }
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for write in writes {
            write.query(self).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Writes `value` whatever the row held.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), DbError> {
        self.query(
            "INSERT INTO gateway_settings (store_hash, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (store_hash, name) DO UPDATE SET value = $3",
        )
        .bind(name)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
