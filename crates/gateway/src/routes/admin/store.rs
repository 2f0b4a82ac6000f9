//! Store settings: the API account and storefront channels, set in the console unless the
//! configuration file declares them. Page and JSON API share one save path.

// Handlers share the parent's imports and input helpers.
use super::*;
use crate::config::{RawChannel, RawStore};

/// The store form's values, as typed (so a refused form comes back as it was sent).
pub(super) struct StoreForm {
    api_base_url: String,
    client_id: String,
    /// One channel a line: `<id> <storefront URL> [<default redirect path>]`.
    channels: String,
}

impl StoreForm {
    fn from_fields(f: &HashMap<String, String>) -> Self {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        StoreForm {
            api_base_url: get("api_base_url"),
            client_id: get("client_id"),
            channels: get("channels"),
        }
    }

    fn of(app: &AppState) -> Self {
        match app.store_settings.current() {
            Some(api) => {
                let raw = crate::store_settings::to_raw(&api.settings);
                StoreForm {
                    api_base_url: raw.api_base_url.unwrap_or_default(),
                    client_id: raw.client_id.unwrap_or_default(),
                    channels: raw
                        .channels
                        .iter()
                        .map(|c| {
                            format!(
                                "{} {} {}",
                                c.id,
                                c.storefront_url,
                                c.default_redirect.as_deref().unwrap_or("/account.php")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
            }
            None => StoreForm {
                api_base_url: "https://api.bigcommerce.com".into(),
                client_id: String::new(),
                channels: String::new(),
            },
        }
    }

    /// The form as `[store]` settings, with the form line of each channel; a channel line
    /// that cannot be read is an error naming its line.
    fn to_raw(&self) -> Result<(RawStore, Vec<usize>), Vec<String>> {
        let mut errors = Vec::new();
        let mut channels = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in self.channels.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [id, url, rest @ ..] if rest.len() <= 1 => match id.parse::<i64>() {
                    Ok(id) => {
                        lines.push(n + 1);
                        channels.push(RawChannel {
                            id,
                            storefront_url: (*url).to_owned(),
                            default_redirect: rest.first().map(|r| (*r).to_owned()),
                        })
                    }
                    Err(_) => errors.push(format!(
                        "channels, line {}: {id:?} is not a channel id (a number such as 1)",
                        n + 1
                    )),
                },
                _ => errors.push(format!(
                    "channels, line {}: expected \"<channel id> <storefront URL> [<landing path>]\", e.g. \"1 https://shop.example.com /account.php\"",
                    n + 1
                )),
            }
        }
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        if errors.is_empty() {
            let raw = RawStore {
                api_base_url: nonempty(&self.api_base_url),
                client_id: nonempty(&self.client_id),
                channels,
                ..RawStore::default()
            };
            Ok((raw, lines))
        } else {
            Err(errors)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/store_form.html")]
pub(super) struct StorePage {
    csrf: String,
    store_hash: String,
    /// Whether settings are in force (an empty secret field then keeps the stored one).
    is_set: bool,
    from_file: bool,
    has_secret_key: bool,
    form: StoreForm,
    errors: Vec<String>,
}

fn store_page(app: &AppState, csrf: String, form: StoreForm, errors: Vec<String>) -> Response {
    let current = app.store_settings.current();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = render(&StorePage {
        csrf,
        store_hash: app.config.store.store_hash.clone(),
        is_set: current.is_some(),
        from_file: app.config.store.declared.is_some(),
        has_secret_key: app.config.database.secret_key.is_some(),
        form,
        errors,
    });
    (status, page).into_response()
}

pub(super) async fn store_settings_page(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    Ok(store_page(
        &app,
        admin.csrf,
        StoreForm::of(&app),
        Vec::new(),
    ))
}

/// Saves the form, then shows the store check: a wrong token or scope shows at once.
pub(super) async fn save_store_settings(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let f = fields(&body)?;
    admin::check_csrf(&admin, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let form = StoreForm::from_fields(&f);
    let (raw, lines) = match form.to_raw() {
        Ok(parsed) => parsed,
        Err(errors) => return Ok(store_page(&app, admin.csrf, form, errors)),
    };
    let token = f.get("access_token").cloned();
    let secret = f.get("client_secret").cloned();
    match admin::save_store_settings(&app, &admin.actor, raw, token, secret).await {
        Ok(()) => Ok(see_other("/admin/checks/store")),
        Err(Error::Manage(crate::managed::ManageError::InvalidStore(errors))) => {
            // Validation counts channels from 0; the form counts lines from 1.
            let errors = errors
                .iter()
                .map(|e| {
                    let mut m = crate::error::form_message(&e.to_string());
                    for (i, line) in lines.iter().enumerate().rev() {
                        m = m.replace(
                            &format!("channels[{i}]."),
                            &format!("channels, line {line}, "),
                        );
                    }
                    m
                })
                .collect();
            Ok(store_page(&app, admin.csrf, form, errors))
        }
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// JSON API

fn store_json(app: &AppState) -> serde_json::Value {
    let current = app.store_settings.current();
    serde_json::json!({
        "store_hash": app.config.store.store_hash,
        "managed_by": current.as_ref().map(|api| api.source.as_str()),
        "data": current.map(|api| crate::store_settings::describe(&api.settings)),
    })
}

pub(super) async fn api_store(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    Ok(Json(store_json(&app)).into_response())
}

/// `PUT /admin/api/store`: the settings as `[store]` spells them, secrets included
/// (omitted or empty secrets keep the ones in force).
pub(super) async fn api_update_store(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    let actor = api_admin(&app, &headers)?;
    let mut raw: RawStore = serde_json::from_slice(&body)
        .map_err(|e| Error::AdminInput(format!("body is not store settings: {e}")))?;
    if raw.store_hash.is_some() || raw.clock_check_interval_secs.is_some() {
        return Err(Error::AdminInput(
            "store_hash and clock_check_interval_secs are set in the config file or env, not here"
                .into(),
        ));
    }
    if raw.access_token_file.is_some() || raw.client_secret_file.is_some() {
        return Err(Error::AdminInput(
            "*_file settings are for the config file; send access_token and client_secret".into(),
        ));
    }
    let token = raw.access_token.take();
    let secret = raw.client_secret.take();
    admin::save_store_settings(&app, &actor, raw, token, secret).await?;
    Ok(Json(store_json(&app)).into_response())
}
