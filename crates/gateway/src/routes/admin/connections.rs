//! Connection pages: add, edit, enable, disable, delete, and "Try sign-in".

// Handlers share the parent's imports and input helpers.
use super::*;

// ---------------------------------------------------------------------------------------
// Connections

/// The connection form's values, as typed (so a refused form comes back as it was sent).
#[derive(Default)]
pub(super) struct ConnectionForm {
    id: String,
    display_name: String,
    issuer: String,
    client_id: String,
    scopes: String,
    domains: String,
    /// Comma-separated: allowed domains whose unverified emails are trusted.
    trusted_domains: String,
    create_customers: bool,
    /// `LinkExisting` by name.
    link_existing: String,
    allow_non_ascii_email: bool,
    sync_profile: bool,
    /// Channel ids, comma-separated; empty = all.
    channels: String,
    customer_group_id: String,
    groups_claim: String,
    /// One rule a line: `IdP group = customer group id`.
    group_rules: String,
    company_claim: String,
    hosted_domain: String,
    channel_access: String,
    id_token_algs: String,
    clock_leeway_secs: String,
}

impl ConnectionForm {
    fn defaults() -> Self {
        ConnectionForm {
            scopes: "openid email profile".into(),
            groups_claim: "groups".into(),
            create_customers: true,
            link_existing: crate::config::LinkExisting::default().as_str().into(),
            channel_access: "channel".into(),
            id_token_algs: "RS256".into(),
            clock_leeway_secs: "60".into(),
            ..Default::default()
        }
    }

    fn from_fields(f: &HashMap<String, String>) -> Self {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        ConnectionForm {
            id: get("id"),
            display_name: get("display_name"),
            issuer: get("issuer"),
            client_id: get("client_id"),
            scopes: get("scopes"),
            domains: get("allowed_email_domains"),
            trusted_domains: get("trusted_email_domains"),
            // Unchecked boxes are not sent at all.
            create_customers: f.contains_key("create_customers"),
            link_existing: get("link_existing"),
            allow_non_ascii_email: f.contains_key("allow_non_ascii_email"),
            sync_profile: f.contains_key("sync_profile"),
            channels: get("channels"),
            customer_group_id: get("customer_group_id"),
            groups_claim: get("groups_claim"),
            group_rules: get("group_rules"),
            company_claim: get("company_claim"),
            hosted_domain: get("hosted_domain"),
            channel_access: get("channel_access"),
            id_token_algs: get("id_token_algs"),
            clock_leeway_secs: get("clock_leeway_secs"),
        }
    }

    fn from_connection(c: &crate::config::Connection) -> Self {
        let raw = crate::connections::to_raw(c);
        ConnectionForm {
            id: c.id.to_string(),
            display_name: c.display_name.clone(),
            issuer: c.issuer.as_str().to_owned(),
            client_id: c.client_id.clone(),
            scopes: c.scopes.join(" "),
            domains: raw.allowed_email_domains.join(", "),
            trusted_domains: raw.trusted_email_domains.join(", "),
            create_customers: c.create_customers,
            link_existing: c.link_existing.as_str().into(),
            allow_non_ascii_email: c.allow_non_ascii_email,
            sync_profile: c.sync_profile,
            channels: c
                .channels
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            customer_group_id: c
                .customer_group_id
                .map(|g| g.to_string())
                .unwrap_or_default(),
            groups_claim: c.groups_claim.clone(),
            group_rules: c
                .group_rules
                .iter()
                .map(|r| format!("{} = {}", r.group, r.customer_group_id))
                .collect::<Vec<_>>()
                .join("\n"),
            company_claim: c.company_claim.clone().unwrap_or_default(),
            hosted_domain: c.hosted_domain.clone().unwrap_or_default(),
            channel_access: raw.channel_access.unwrap_or_default(),
            id_token_algs: c.id_token_algs.join(" "),
            clock_leeway_secs: c.clock_leeway.as_secs().to_string(),
        }
    }

    /// The settings the validator reads; numbers that do not parse are reported here.
    fn to_raw(&self) -> Result<RawConnection, Vec<String>> {
        let list = |s: &str| -> Vec<String> {
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let errors = std::cell::RefCell::new(Vec::new());
        let number = |name: &str, s: &str| -> Option<i64> {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            s.parse()
                .map_err(|_| {
                    errors
                        .borrow_mut()
                        .push(format!("{name}: {s:?} is not a whole number"))
                })
                .ok()
        };
        let customer_group_id = number("customer_group_id", &self.customer_group_id);
        let channels: Vec<i64> = list(&self.channels)
            .iter()
            .filter_map(|c| number("channels", c))
            .collect();
        let mut group_rules = Vec::new();
        for (n, line) in self
            .group_rules
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match line.rsplit_once('=') {
                Some((group, id)) => {
                    if let Some(id) = number(&format!("group_rules line {}", n + 1), id) {
                        group_rules.push(crate::config::RawGroupRule {
                            group: group.trim().to_owned(),
                            customer_group_id: id,
                        });
                    }
                }
                None => errors.borrow_mut().push(format!(
                    "group_rules line {}: write \"IdP group = customer group id\"",
                    n + 1
                )),
            }
        }
        let leeway = number("clock_leeway_secs", &self.clock_leeway_secs);
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let raw = RawConnection {
            id: nonempty(&self.id),
            display_name: nonempty(&self.display_name),
            issuer: nonempty(&self.issuer),
            client_id: nonempty(&self.client_id),
            client_secret: None,
            client_secret_file: None,
            scopes: Some(list(&self.scopes)).filter(|l| !l.is_empty()),
            allowed_email_domains: list(&self.domains),
            trust_unverified_email: false,
            trusted_email_domains: list(&self.trusted_domains),
            customer_group_id,
            groups_claim: nonempty(&self.groups_claim),
            group_rules,
            company_claim: nonempty(&self.company_claim),
            hosted_domain: nonempty(&self.hosted_domain),
            sync_profile: self.sync_profile,
            channels,
            create_customers: Some(self.create_customers),
            link_existing: nonempty(&self.link_existing),
            allow_non_ascii_email: self.allow_non_ascii_email,
            channel_access: nonempty(&self.channel_access),
            id_token_algs: Some(list(&self.id_token_algs)).filter(|l| !l.is_empty()),
            clock_leeway_secs: leeway.map(|l| l.max(0) as u64),
        };
        let errors = errors.into_inner();
        if errors.is_empty() {
            Ok(raw)
        } else {
            Err(errors)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/connection_form.html")]
pub(super) struct ConnectionPage {
    csrf: String,
    /// `None` when creating.
    editing: Option<String>,
    /// The connection admins sign in with: saving it needs the admin token typed again.
    admin_connection: bool,
    form: ConnectionForm,
    errors: Vec<String>,
    has_secret_key: bool,
    redirect_uri: String,
    /// BigCommerce customer groups (id, name) to choose from.
    groups: Vec<(i64, String)>,
    groups_error: Option<String>,
}

pub(super) async fn connection_page(
    app: &AppState,
    csrf: String,
    editing: Option<String>,
    form: ConnectionForm,
    errors: Vec<String>,
) -> Response {
    // The customer groups to map to, from BigCommerce; the form works without them.
    let groups = match app.bigcommerce() {
        Ok(api) => api
            .client
            .customer_groups()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (groups, groups_error) = match groups {
        Ok(groups) => (groups.into_iter().map(|g| (g.id, g.name)).collect(), None),
        Err(e) => {
            tracing::warn!(error = %e, "could not list customer groups for the connection form");
            (Vec::new(), Some(e))
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    // The id is known once typed; until then the form shows where it goes.
    let redirect_uri = if form.id.trim().is_empty() {
        app.config.redirect_uri("CONNECTION-ID").to_string()
    } else {
        app.config.redirect_uri(form.id.trim()).to_string()
    };
    let page = render(&ConnectionPage {
        csrf,
        admin_connection: editing
            .as_deref()
            .is_some_and(|id| admin::is_admin_connection(app, id)),
        editing,
        form,
        errors,
        has_secret_key: app.config.database.secret_key.is_some(),
        redirect_uri,
        groups,
        groups_error,
    });
    (status, page).into_response()
}

pub(super) async fn new_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    Ok(connection_page(
        &app,
        admin.csrf,
        None,
        ConnectionForm::defaults(),
        Vec::new(),
    )
    .await)
}

pub(super) async fn edit_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let all = app.connections.all();
    let entry = all
        .iter()
        .find(|e| e.connection.id.as_str() == id)
        .ok_or_else(|| Error::UnknownConnection(id.clone()))?;
    if entry.source == crate::managed::Source::File {
        return Err(crate::managed::ManageError::ManagedByFile(id).into());
    }
    let form = ConnectionForm::from_connection(&entry.connection);
    Ok(connection_page(&app, admin.csrf, Some(id), form, Vec::new()).await)
}

pub(super) async fn create_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    save_from_form(&app, &session, &body, None).await
}

pub(super) async fn update_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    save_from_form(&app, &session, &body, Some(id)).await
}

/// Saves a create/edit form; a refused form comes back with its values and the reasons.
pub(super) async fn save_from_form(
    app: &Arc<AppState>,
    session: &Session,
    body: &[u8],
    editing: Option<String>,
) -> Result<Response, Error> {
    let admin = signed_in(session).await?;
    let f = fields(body)?;
    admin::check_csrf(&admin, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let form = ConnectionForm::from_fields(&f);
    let configured: Vec<i64> = app
        .store_settings
        .current()
        .map(|api| api.settings.channels.keys().copied().collect())
        .unwrap_or_default();
    let raw = match form.to_raw() {
        Ok(raw) if raw.channels.iter().any(|c| !configured.contains(c)) => {
            let errors = vec![format!(
                "channels: only configured storefront channels can be chosen ({})",
                if configured.is_empty() {
                    "none is configured yet: see Store settings".to_owned()
                } else {
                    configured
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )];
            return Ok(connection_page(app, admin.csrf, editing, form, errors).await);
        }
        Ok(raw) => raw,
        Err(errors) => return Ok(connection_page(app, admin.csrf, editing, form, errors).await),
    };
    if let Some(id) = editing
        .as_deref()
        .filter(|id| admin::is_admin_connection(app, id))
        && let Err(e) = admin::confirm_with_token(
            app,
            &admin.actor,
            f.get("bootstrap_token").map(String::as_str),
        )
        .await
    {
        tracing::debug!(
            connection = id,
            "admin connection edit without the admin token"
        );
        let errors = vec![e.to_string()];
        return Ok(connection_page(app, admin.csrf, editing, form, errors).await);
    }
    let secret = f.get("client_secret").cloned();
    match admin::save_connection(app, &admin.actor, raw, secret, editing.as_deref()).await {
        Ok(id) => Ok(see_other(&format!("/admin/checks/connections/{id}"))),
        Err(Error::Manage(crate::managed::ManageError::Invalid(errors))) => {
            let errors = errors
                .iter()
                .map(|e| crate::error::form_message(&e.to_string()))
                .collect();
            Ok(connection_page(app, admin.csrf, editing, form, errors).await)
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn enable_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    connection_action(&app, &session, &body, &id, Action::Enable).await
}

pub(super) async fn disable_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    connection_action(&app, &session, &body, &id, Action::Disable).await
}

pub(super) async fn delete_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    connection_action(&app, &session, &body, &id, Action::Delete).await
}

use crate::admin::Action;

pub(super) async fn connection_action(
    app: &Arc<AppState>,
    session: &Session,
    body: &[u8],
    id: &str,
    action: Action,
) -> Result<Response, Error> {
    let admin = signed_in(session).await?;
    let f = fields(body)?;
    admin::check_csrf(&admin, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    if admin::is_admin_connection(app, id) {
        admin::confirm_with_token(
            app,
            &admin.actor,
            f.get("bootstrap_token").map(String::as_str),
        )
        .await?;
    }
    admin::connection_action(app, &admin.actor, id, action).await?;
    Ok(see_other("/admin"))
}

/// "Try sign-in": starts the real flow in test mode.
pub(super) async fn try_sign_in(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    admin::check_csrf(
        &admin,
        fields(&body)?.get("csrf").map(String::as_str).unwrap_or(""),
    )?;
    let start = crate::trial::begin(&app, &admin.actor, &id).await?;
    Ok(see_other(&start))
}

#[derive(Template)]
#[template(path = "admin/trial.html")]
pub(super) struct TrialPage {
    csrf: String,
    connection: String,
    finished: bool,
    decision: String,
    explanation: String,
    /// (claim, value) rows, values as text.
    claims: Vec<(&'static str, String)>,
    customer: Vec<(&'static str, String)>,
}

pub(super) async fn trial_report(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(ticket): Path<String>,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let trial = app
        .store
        .trial(&app.config.store.store_hash, &ticket)
        .await?
        .ok_or(Error::NotFound)?;
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
