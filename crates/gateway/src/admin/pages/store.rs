//! Store settings: the API account and storefront channels, set in the console unless the
//! configuration file declares them. Page and JSON API share one save path.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::admin::input::Fields;
use crate::admin::{AdminUser, CsrfForm, NoFields};
use crate::config::{RawChannel, RawStore};
use crate::error::Error;
use crate::routes::{render, see_other};

/// The store form's values, as typed (so a refused form comes back as it was sent).
pub struct StoreForm {
    api_base_url: String,
    client_id: String,
    /// One channel a line: `<id> <storefront URL> [<default redirect path>]`.
    channels: String,
}

impl StoreForm {
    fn from_fields(f: &Fields) -> Self {
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
                let raw = crate::settings::store::to_raw(&api.settings);
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
pub struct StorePage {
    csrf: String,
    store_hash: String,
    /// Whether settings are in force (an empty secret field then keeps the stored one).
    is_set: bool,
    from_file: bool,
    has_secret_key: bool,
    /// Where BigCommerce delivers the customer webhooks.
    webhook_destination: String,
    form: StoreForm,
    errors: Vec<String>,
}

fn store_page(app: &AppState, csrf: String, form: StoreForm, errors: Vec<String>) -> Response {
    let current = app.store_settings.current();
    let status = super::form_status(&errors);
    let page = render(&StorePage {
        csrf,
        store_hash: app.config.store.store_hash.clone(),
        is_set: current.is_some(),
        from_file: app.config.store.declared.is_some(),
        has_secret_key: app.config.database.secret_key.is_some(),
        webhook_destination: crate::webhooks::destination(&app.config).to_string(),
        form,
        errors,
    });
    (status, page).into_response()
}

pub async fn store_settings_page(State(app): State<Arc<AppState>>, admin: AdminUser) -> Response {
    store_page(&app, admin.0.csrf, StoreForm::of(&app), Vec::new())
}

/// "Register webhooks": registers or repairs the two customer hooks, then shows the store
/// check, whose Webhooks line says how they stand (also when registering failed).
pub async fn register_webhooks(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, Error> {
    // Only "not set up" stops here; a BigCommerce failure is logged and the check shows it.
    match crate::admin::register_webhooks(&app, &admin.actor).await {
        Err(Error::StoreNotSetUp) => Err(Error::StoreNotSetUp),
        _ => Ok(see_other("/admin/checks/store")),
    }
}

/// Saves the form, then shows the store check: a wrong token or scope shows at once.
pub async fn save_store_settings(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    CsrfForm(f): CsrfForm<Fields>,
) -> Result<Response, Error> {
    let form = StoreForm::from_fields(&f);
    let (raw, lines) = match form.to_raw() {
        Ok(parsed) => parsed,
        Err(errors) => return Ok(store_page(&app, admin.0.csrf, form, errors)),
    };
    let token = f.get("access_token").cloned();
    let secret = f.get("client_secret").cloned();
    match crate::admin::save_store_settings(&app, &admin.actor, raw, token, secret).await {
        Ok(()) => Ok(see_other("/admin/checks/store")),
        Err(Error::Manage(crate::settings::ManageError::InvalidStore(errors))) => {
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
            Ok(store_page(&app, admin.0.csrf, form, errors))
        }
        Err(e) => Err(e),
    }
}
