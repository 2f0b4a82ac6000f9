//! One batch of `POST`/`PUT /v3/customers` as the emulator reads it: the array rules, and
//! each item read from the raw JSON by the names C3 documents (CONTRACT.md §2.2-2.3).

use std::collections::BTreeMap;

use serde_json::Value;

use super::EmulatedChannel;
use super::state::{ERROR_TYPE_SHORT, one_error};
use bigcommerce_wire::ErrorResponse;

/// BigCommerce caps POST/PUT batches at 10 items (CONTRACT.md §2.3).
const MAX_BATCH: usize = 10;

/// The array rules shared by POST and PUT (CONTRACT.md §2.3, §8 item 7).
pub(super) fn batch_items<'a>(body: &'a Value, title: &str) -> Result<&'a [Value], ErrorResponse> {
    let Some(items) = body.as_array() else {
        // Non-array → 422 (CONTRACT.md §8 item 7 says 422, possibly 400 in reality).
        return Err(one_error(
            422,
            title,
            ERROR_TYPE_SHORT,
            "body",
            "The request body must be a JSON array of customers".to_owned(),
        ));
    };
    if items.len() > MAX_BATCH {
        return Err(one_error(
            413,
            "The request payload is too large. The maximum number of items allowed in the array is 10.",
            ERROR_TYPE_SHORT,
            "body",
            format!("{} items sent", items.len()),
        ));
    }
    if items.is_empty() {
        return Err(one_error(
            422,
            title,
            ERROR_TYPE_SHORT,
            "body",
            "The array must not be empty".to_owned(),
        ));
    }
    Ok(items)
}

/// Whether batch item `i` is a JSON object; the error when not.
pub(super) fn is_object(errors: &mut BTreeMap<String, String>, i: usize, item: &Value) -> bool {
    if !item.is_object() {
        let error = "Each customer must be a JSON object".to_owned();
        errors.insert(i.to_string(), error);
    }
    item.is_object()
}

/// One item of a POST or PUT body, read from the raw JSON by the names C3 documents
/// (CONTRACT.md §2.2), not through the gateway's wire types: a misspelt field there is
/// ignored here, and a test sees the difference.
pub(super) struct Item {
    pub(super) email: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) company: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) notes: Option<String>,
    pub(super) customer_group_id: Option<i64>,
    pub(super) origin_channel_id: Option<i64>,
    /// Absent: `None`; `null`: `Some(None)`.
    pub(super) channel_ids: Option<Option<Vec<i64>>>,
    pub(super) trigger_account_created_notification: Option<bool>,
    pub(super) force_password_reset: Option<bool>,
    pub(super) password_set: bool,
}

/// A POST item: the three required fields present.
pub(super) struct NewCustomer {
    pub(super) email: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) company: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) notes: Option<String>,
    pub(super) customer_group_id: Option<i64>,
    pub(super) origin_channel_id: Option<i64>,
    pub(super) channel_ids: Option<Vec<i64>>,
    pub(super) trigger_account_created_notification: Option<bool>,
    pub(super) force_password_reset: Option<bool>,
    pub(super) password_set: bool,
}

impl NewCustomer {
    pub(super) fn of(item: Item) -> Option<Self> {
        Some(NewCustomer {
            email: item.email?,
            first_name: item.first_name?,
            last_name: item.last_name?,
            company: item.company,
            phone: item.phone,
            notes: item.notes,
            customer_group_id: item.customer_group_id,
            origin_channel_id: item.origin_channel_id,
            channel_ids: item.channel_ids.flatten(),
            trigger_account_created_notification: item.trigger_account_created_notification,
            force_password_reset: item.force_password_reset,
            password_set: item.password_set,
        })
    }
}

/// Length limits of `customer_Post`/`customer_Put` (CONTRACT.md §2.2).
const STRING_LIMITS: [(&str, usize); 4] = [
    ("company", 255),
    ("phone", 50),
    ("notes", usize::MAX),
    ("tax_exempt_category", 255),
];

impl Item {
    /// Batch item `i` once its `email` (at most `email_max` characters), names and other
    /// fields pass their checks (email and names `required` on create); `None` with the
    /// reasons in `errors` otherwise.
    pub(super) fn read(
        errors: &mut BTreeMap<String, String>,
        i: usize,
        item: &Value,
        email_max: usize,
        required: bool,
    ) -> Option<Item> {
        let before = errors.len();
        check_email(errors, i, item.get("email"), email_max, required);
        check_name(errors, i, "first_name", item.get("first_name"), required);
        check_name(errors, i, "last_name", item.get("last_name"), required);
        let mut invalid = |field: &str, message: String| {
            errors.insert(format!("{i}.{field}"), message);
        };
        for (field, max) in STRING_LIMITS {
            match item.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.chars().count() <= max => {}
                Some(Value::String(_)) => invalid(
                    field,
                    format!("The field '{field}' must be at most {max} characters"),
                ),
                Some(_) => invalid(field, format!("The field '{field}' must be a string")),
            }
        }
        let int = |invalid: &mut dyn FnMut(&str, String), field: &str| match item.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => v.as_i64().or_else(|| {
                invalid(field, format!("The field '{field}' must be an integer"));
                None
            }),
        };
        let customer_group_id = int(&mut invalid, "customer_group_id");
        let origin_channel_id = int(&mut invalid, "origin_channel_id");
        let channel_ids = match item.get("channel_ids") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Array(ids)) => {
                let ints: Option<Vec<i64>> = ids.iter().map(Value::as_i64).collect();
                if ints.is_none() {
                    invalid("channel_ids", "channel_ids must be integers".to_owned());
                }
                Some(ints)
            }
            Some(_) => {
                invalid("channel_ids", "channel_ids must be an array".to_owned());
                None
            }
        };
        let trigger = match item.get("trigger_account_created_notification") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                invalid(
                    "trigger_account_created_notification",
                    "must be a boolean".to_owned(),
                );
                None
            }
        };
        let auth = item.get("authentication");
        let force_password_reset = match auth.and_then(|a| a.get("force_password_reset")) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                invalid(
                    "authentication.force_password_reset",
                    "must be a boolean".to_owned(),
                );
                None
            }
        };
        if errors.len() > before {
            return None;
        }
        let string = |field: &str| item.get(field).and_then(Value::as_str).map(str::to_owned);
        Some(Item {
            email: string("email"),
            first_name: string("first_name"),
            last_name: string("last_name"),
            company: string("company"),
            phone: string("phone"),
            notes: string("notes"),
            customer_group_id,
            origin_channel_id,
            channel_ids,
            trigger_account_created_notification: trigger,
            force_password_reset,
            password_set: auth
                .and_then(|a| a.get("new_password"))
                .is_some_and(Value::is_string),
        })
    }
}

/// Email rules: 3–250 chars on POST, 3–255 on PUT (CONTRACT.md §9), exactly one `@`.
fn check_email(
    errors: &mut BTreeMap<String, String>,
    i: usize,
    v: Option<&Value>,
    max: usize,
    required: bool,
) {
    let key = format!("{i}.email");
    match v {
        None if !required => {}
        Some(Value::String(s)) => {
            let len = s.chars().count();
            if !(3..=max).contains(&len)
                || s.matches('@').count() != 1
                || s.trim() != s
                || s.contains(char::is_whitespace)
            {
                errors.insert(
                    key,
                    format!(
                        "The field 'email' must be a valid email address of 3 to {max} characters"
                    ),
                );
            }
        }
        _ => {
            errors.insert(key, "The field 'email' is required".to_owned());
        }
    }
}

/// Name rules: 1–100 chars, not blank (CONTRACT.md §2.2).
fn check_name(
    errors: &mut BTreeMap<String, String>,
    i: usize,
    field: &str,
    v: Option<&Value>,
    required: bool,
) {
    let key = format!("{i}.{field}");
    match v {
        None if !required => {}
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 100 => {}
        Some(Value::String(_)) => {
            errors.insert(
                key,
                format!("The field '{field}' must be 1 to 100 characters"),
            );
        }
        _ => {
            errors.insert(key, format!("The field '{field}' is required"));
        }
    }
}

/// `channel_ids` must not be `[]` and may name only existing channels (CONTRACT.md §2.2).
pub(super) fn check_channels(
    errors: &mut BTreeMap<String, String>,
    i: usize,
    ids: Option<&[i64]>,
    channels: &[EmulatedChannel],
) {
    let key = format!("{i}.channel_ids");
    match ids {
        None => {}
        Some([]) => {
            errors.insert(
                key,
                "channel_ids must not be an empty array; omit it for a global account".to_owned(),
            );
        }
        Some(ids) => {
            if let Some(bad) = ids.iter().find(|id| !channels.iter().any(|c| c.id == **id)) {
                errors.insert(key, format!("Channel {bad} does not exist"));
            }
        }
    }
}
