//! The IdP connections in force: those declared in the config file (read-only in the
//! console) and those an admin manages in the console (stored in the database). Requests
//! take a snapshot; an admin change swaps in a new one, so no lock is held across a sign-in.

use std::sync::{Arc, RwLock};

use crate::config::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Declared in the config file: shown read-only in the console.
    File,
    /// Created in the admin console and stored (secret encrypted) in the database.
    Console,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub connection: Connection,
    pub source: Source,
    pub enabled: bool,
}

#[derive(Debug, Default)]
pub struct Connections {
    current: RwLock<Arc<Vec<Entry>>>,
}

impl Connections {
    pub fn new(entries: Vec<Entry>) -> Self {
        Self {
            current: RwLock::new(Arc::new(entries)),
        }
    }

    pub fn from_file(file: &[Connection]) -> Self {
        Self::new(
            file.iter()
                .map(|c| Entry {
                    connection: c.clone(),
                    source: Source::File,
                    enabled: true,
                })
                .collect(),
        )
    }

    /// Every connection, enabled or not (for the console).
    pub fn all(&self) -> Arc<Vec<Entry>> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The connections shoppers can sign in with.
    pub fn enabled(&self) -> Vec<Connection> {
        self.all()
            .iter()
            .filter(|e| e.enabled)
            .map(|e| e.connection.clone())
            .collect()
    }

    /// An enabled connection by id.
    pub fn get(&self, id: &str) -> Option<Connection> {
        self.all()
            .iter()
            .find(|e| e.enabled && e.connection.id.as_str() == id)
            .map(|e| e.connection.clone())
    }

    /// The enabled connection that owns an email domain. Domains are unique across
    /// connections (checked when a connection is saved), so the answer is unambiguous.
    pub fn for_domain(&self, domain: &str) -> Option<Connection> {
        self.all()
            .iter()
            .find(|e| {
                e.enabled
                    && e.connection
                        .allowed_email_domains
                        .iter()
                        .any(|d| d.matches(domain))
            })
            .map(|e| e.connection.clone())
    }

    pub fn replace(&self, entries: Vec<Entry>) {
        let next = Arc::new(entries);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
    }
}
