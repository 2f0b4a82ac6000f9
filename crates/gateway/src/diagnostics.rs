//! The shape of a diagnosis shared by the IdP connection test (`oidc::diagnose`) and the
//! store check (`bigcommerce::diagnose`): a list of named checks, each with a status and a
//! sentence an IT admin can act on.

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable id, for the page and for tests.
    pub name: &'static str,
    pub status: CheckStatus,
    /// Plain words; may quote untrusted text from the remote side, so pages escape it.
    /// Never contains a secret.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    /// Probably works, but something deserves a look.
    Warning,
    /// Sign-in will fail (or would be unsafe) until this is fixed.
    Failed,
}

impl Check {
    pub fn new(name: &'static str, status: CheckStatus, message: impl Into<String>) -> Self {
        Self {
            name,
            status,
            message: message.into(),
        }
    }
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warning => "warning",
            CheckStatus::Failed => "failed",
        }
    }
}

/// The worst status of a report.
pub fn overall(checks: &[Check]) -> CheckStatus {
    if checks.iter().any(|c| c.status == CheckStatus::Failed) {
        CheckStatus::Failed
    } else if checks.iter().any(|c| c.status == CheckStatus::Warning) {
        CheckStatus::Warning
    } else {
        CheckStatus::Ok
    }
}
