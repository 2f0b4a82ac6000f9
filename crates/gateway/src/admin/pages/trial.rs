//! "Try sign-in": starting a trial, and its report.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::AppState;
use crate::admin::{AdminUser, CsrfForm, NoFields, trial};
use crate::error::Error;
use crate::routes::{render, see_other};

/// "Try sign-in": starts the real flow in test mode.
pub async fn try_sign_in(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, Error> {
    let start = trial::begin(&app, &admin.actor, &id).await?;
    Ok(see_other(&start))
}

#[derive(Template)]
#[template(path = "admin/trial.html")]
pub struct TrialPage {
    csrf: String,
    connection: String,
    finished: bool,
    decision: String,
    explanation: String,
    /// (claim, value) rows, values as text.
    claims: Vec<(&'static str, String)>,
    customer: Vec<(&'static str, String)>,
}

pub async fn trial_report(
    State(app): State<Arc<AppState>>,
    AdminUser(admin): AdminUser,
    Path(ticket): Path<String>,
) -> Result<Response, Error> {
    let trial = app.db.trial(&ticket).await?.ok_or(Error::NotFound)?;
    let report: Option<serde_json::Value> = trial
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "(none)".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let rows =
        |v: Option<&serde_json::Value>, keys: &[&'static str]| -> Vec<(&'static str, String)> {
            v.map(|v| keys.iter().map(|k| (*k, text(&v[*k]))).collect())
                .unwrap_or_default()
        };
    let page = match &report {
        Some(r) => TrialPage {
            csrf: admin.csrf,
            connection: trial.connection,
            finished: true,
            decision: text(&r["decision"]),
            explanation: text(&r["explanation"]),
            claims: rows(
                r.get("claims").filter(|c| !c.is_null()),
                &[
                    "issuer",
                    "subject",
                    "email",
                    "email_verified",
                    "given_name",
                    "family_name",
                    "name",
                    "groups",
                    "company",
                ],
            ),
            customer: rows(
                r.get("customer").filter(|c| !c.is_null()),
                &[
                    "outcome",
                    "customer_id",
                    "email",
                    "first_name",
                    "last_name",
                    "customer_group_id",
                    "company",
                    "channel_ids",
                ],
            )
            .into_iter()
            .filter(|(_, v)| v != "(none)")
            .collect(),
        },
        None => TrialPage {
            csrf: admin.csrf,
            connection: trial.connection,
            finished: false,
            decision: String::new(),
            explanation: String::new(),
            claims: Vec::new(),
            customer: Vec::new(),
        },
    };
    Ok(render(&page))
}
