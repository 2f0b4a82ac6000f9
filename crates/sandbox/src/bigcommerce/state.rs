//! The emulator's in-memory store and the customer rules of CONTRACT.md §2, free of HTTP so
//! every rule can be read (and unit-tested) without a router.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::EmulatedChannel;
use super::items::{Item, NewCustomer, batch_items, check_channels, is_object};
use super::query::{Cursor, ListQuery, SortField, cursor_block, parse_int_csv};
use bigcommerce_wire::{
    CategoryAccess, CollectionMeta, CustomerAuthentication, CustomerCollectionResponse,
    CustomerFull, CustomerGroupFull, ErrorResponse, Pagination, PaginationLinks,
};

/// `type` of the POST/PUT `ErrorResponse` (CONTRACT.md §2.3 example).
pub(super) const ERROR_TYPE_SHORT: &str = "/api-docs/getting-started/api-status-codes";
/// `type` of the GET/DELETE `Error` schema (CONTRACT.md §2.5 example).
pub(super) const ERROR_TYPE_FULL: &str =
    "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes";

pub(super) fn error(
    status: u16,
    title: &str,
    kind: &str,
    errors: BTreeMap<String, String>,
) -> ErrorResponse {
    ErrorResponse {
        status,
        title: title.to_owned(),
        error_type: kind.to_owned(),
        instance: None,
        errors: Value::Object(
            errors
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    }
}

pub(super) fn one_error(
    status: u16,
    title: &str,
    kind: &str,
    key: &str,
    message: String,
) -> ErrorResponse {
    error(
        status,
        title,
        kind,
        BTreeMap::from([(key.to_owned(), message)]),
    )
}

/// `2020-02-06T17:46:33Z`: the V3 date format (CONTRACT.md §2.2), whole seconds.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

/// `2023-07-17 06:30:41`: the V2 date format of customer groups (CONTRACT.md §3.1).
fn v2_date(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// One item of a PUT that passed validation: its id, the item, its `channel_ids` change
/// (`Some(None)` = make it global), and its `authentication.force_password_reset`.
type AcceptedPut = (i64, Item, Option<Option<Vec<i64>>>, Option<bool>);

/// A customer as stored: the API view plus what the API accepts but never returns.
#[derive(Debug, Clone)]
pub struct StoredCustomer {
    pub full: CustomerFull,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    /// As sent on POST (CONTRACT.md §2.2: accepted, not echoed); tests assert the gateway sends `false`.
    pub trigger_account_created_notification: Option<bool>,
    /// `authentication.new_password` is write-only (CONTRACT.md §8 item 11): we only remember that one was set.
    pub password_set: bool,
}

pub struct Store {
    pub customers: BTreeMap<i64, StoredCustomer>,
    next_id: i64,
    pub groups: Vec<CustomerGroupFull>,
    pub duplicate_email_answer: DuplicateEmailAnswer,
}

/// How `POST /v3/customers` answers an email that is already taken (always a 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicateEmailAnswer {
    /// `{"errors": {".customer_create": "Error creating customers"}}`: the only create
    /// failure C3 documents (CONTRACT.md §2.3).
    #[default]
    Documented,
    /// `{"errors": {"0.email": "The email address '…' is already in use by another
    /// customer"}}`: the storefront's wording, unconfirmed for the API.
    ItemLevel,
}

impl Store {
    pub fn new(now: OffsetDateTime) -> Self {
        let group = |id, name: &str, is_default| CustomerGroupFull {
            id,
            name: name.to_owned(),
            is_default,
            category_access: Some(CategoryAccess {
                r#type: "all".to_owned(),
                categories: None,
            }),
            discount_rules: Vec::new(),
            date_created: v2_date(now),
            date_modified: v2_date(now),
            is_group_for_guests: false,
        };
        Self {
            customers: BTreeMap::new(),
            next_id: 1,
            groups: vec![group(1, "Retail", true), group(2, "Wholesale", false)],
            duplicate_email_answer: DuplicateEmailAnswer::default(),
        }
    }

    /// Uniqueness is store-wide and case-insensitive (CONTRACT.md §2.3; per-channel scope unconfirmed).
    fn email_taken(&self, email: &str, except_id: Option<i64>) -> bool {
        let folded = email.to_lowercase();
        self.customers
            .values()
            .any(|c| Some(c.full.id) != except_id && c.full.email.to_lowercase() == folded)
    }

    fn group_exists(&self, id: i64) -> bool {
        id == 0 || self.groups.iter().any(|g| g.id == id)
    }

    // ---------------------------------------------------------------- GET /v3/customers

    /// `GET /v3/customers` (CONTRACT.md §2.1, §8 items 4-5).
    pub fn list(
        &self,
        query: &[(String, String)],
    ) -> Result<CustomerCollectionResponse, ErrorResponse> {
        let q = ListQuery::parse(query)?;
        let mut rows: Vec<&StoredCustomer> =
            self.customers.values().filter(|c| q.matches(c)).collect();
        match q.sort {
            None => {}
            Some((field, desc)) => {
                rows.sort_by(|a, b| {
                    let ord = match field {
                        SortField::DateCreated => a.created.cmp(&b.created),
                        SortField::DateModified => a.modified.cmp(&b.modified),
                        SortField::LastName => a
                            .full
                            .last_name
                            .to_lowercase()
                            .cmp(&b.full.last_name.to_lowercase()),
                    };
                    let ord = if desc { ord.reverse() } else { ord };
                    ord.then(a.full.id.cmp(&b.full.id))
                });
            }
        }
        let limit = q.limit;
        if let Some(cursor) = &q.cursor {
            // Cursor pagination (ids ascending only): only `cursor_pagination` comes back
            // (CONTRACT.md §2.1, "before/after given → only cursor_pagination").
            let page: Vec<&StoredCustomer> = match cursor {
                Cursor::After(id) => rows
                    .into_iter()
                    .filter(|c| c.full.id > *id)
                    .take(limit as usize)
                    .collect(),
                Cursor::Before(id) => {
                    let older: Vec<_> = rows.into_iter().filter(|c| c.full.id < *id).collect();
                    let skip = older.len().saturating_sub(limit as usize);
                    older.into_iter().skip(skip).collect()
                }
            };
            let data: Vec<CustomerFull> = page.iter().map(|c| c.full.clone()).collect();
            let cursor_pagination = cursor_block(&data, limit, None);
            return Ok(CustomerCollectionResponse {
                data,
                meta: CollectionMeta {
                    pagination: None,
                    cursor_pagination: Some(cursor_pagination),
                },
            });
        }
        let total = rows.len() as i64;
        let total_pages = (total + limit - 1) / limit;
        let start = ((q.page - 1) * limit) as usize;
        let data: Vec<CustomerFull> = rows
            .iter()
            .skip(start)
            .take(limit as usize)
            .map(|c| c.full.clone())
            .collect();
        let link = |p: i64| format!("?page={p}&limit={limit}");
        let pagination = Pagination {
            total,
            count: data.len() as i64,
            per_page: limit,
            current_page: q.page,
            total_pages,
            links: PaginationLinks {
                previous: (q.page > 1).then(|| link(q.page - 1)),
                current: Some(link(q.page)),
                next: (q.page < total_pages).then(|| link(q.page + 1)),
            },
        };
        // Page 1 carries both blocks (CONTRACT.md §2.1). Cursors only exist for the id order.
        let cursor_pagination = (q.page == 1 && q.sort.is_none()).then(|| {
            let more = total > data.len() as i64;
            cursor_block(&data, limit, Some(more))
        });
        Ok(CustomerCollectionResponse {
            data,
            meta: CollectionMeta {
                pagination: Some(pagination),
                cursor_pagination,
            },
        })
    }

    // ---------------------------------------------------------------- POST /v3/customers

    /// `POST /v3/customers` (CONTRACT.md §2.3, §8 item 8). The batch is atomic: any
    /// failing item means nothing is created.
    pub fn create(
        &mut self,
        body: &Value,
        channels: &[EmulatedChannel],
        now: OffsetDateTime,
    ) -> Result<Vec<StoredCustomer>, ErrorResponse> {
        const TITLE: &str = "Create customers failed.";
        let items = batch_items(body, TITLE)?;
        let mut errors = BTreeMap::new();
        let mut accepted: Vec<NewCustomer> = Vec::new();
        let mut batch_emails: HashSet<String> = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            if !is_object(&mut errors, i, item) {
                continue;
            }
            let Some(item) = Item::read(&mut errors, i, item, 250, true) else {
                continue;
            };
            let Some(post) = NewCustomer::of(item) else {
                continue;
            };
            check_channels(&mut errors, i, post.channel_ids.as_deref(), channels);
            if let Some(origin) = post.origin_channel_id
                && !channels.iter().any(|c| c.id == origin)
            {
                errors.insert(
                    format!("{i}.origin_channel_id"),
                    format!("Channel {origin} does not exist"),
                );
            }
            if let Some(g) = post.customer_group_id
                && !self.group_exists(g)
            {
                errors.insert(
                    format!("{i}.customer_group_id"),
                    format!("Customer group {g} does not exist"),
                );
            }
            let folded = post.email.to_lowercase();
            if self.email_taken(&post.email, None) || !batch_emails.insert(folded) {
                // C3 documents no duplicate-specific answer, only this one (CONTRACT.md
                // §2.3); the item-level wording is the storefront's, kept as an option so
                // the gateway is tested against both.
                match self.duplicate_email_answer {
                    DuplicateEmailAnswer::Documented => errors.insert(
                        ".customer_create".to_owned(),
                        "Error creating customers".to_owned(),
                    ),
                    DuplicateEmailAnswer::ItemLevel => errors.insert(
                        format!("{i}.email"),
                        format!(
                            "The email address '{}' is already in use by another customer",
                            post.email
                        ),
                    ),
                };
            }
            accepted.push(post);
        }
        if !errors.is_empty() {
            return Err(error(422, TITLE, ERROR_TYPE_SHORT, errors));
        }
        let mut created = Vec::with_capacity(accepted.len());
        for post in accepted {
            let id = self.next_id;
            self.next_id += 1;
            let stored = StoredCustomer {
                full: CustomerFull {
                    id,
                    email: post.email,
                    first_name: post.first_name,
                    last_name: post.last_name,
                    company: post.company.unwrap_or_default(),
                    phone: post.phone.unwrap_or_default(),
                    notes: post.notes.unwrap_or_default(),
                    // Blank for API-created customers (CONTRACT.md §2.2).
                    registration_ip_address: String::new(),
                    customer_group_id: post.customer_group_id.unwrap_or(0),
                    date_created: rfc3339(now),
                    date_modified: rfc3339(now),
                    origin_channel_id: Some(post.origin_channel_id.unwrap_or(1)),
                    channel_ids: post.channel_ids,
                    authentication: Some(CustomerAuthentication {
                        force_password_reset: post.force_password_reset.unwrap_or(false),
                    }),
                },
                created: now,
                modified: now,
                trigger_account_created_notification: post.trigger_account_created_notification,
                password_set: post.password_set,
            };
            self.customers.insert(id, stored.clone());
            created.push(stored);
        }
        Ok(created)
    }

    // ---------------------------------------------------------------- PUT /v3/customers

    /// `PUT /v3/customers` (CONTRACT.md §2.3, §8 item 9): read-only fields are ignored.
    pub fn update(
        &mut self,
        body: &Value,
        channels: &[EmulatedChannel],
        now: OffsetDateTime,
    ) -> Result<Vec<CustomerFull>, ErrorResponse> {
        const TITLE: &str = "Update customers failed.";
        let items = batch_items(body, TITLE)?;
        let mut errors = BTreeMap::new();
        let mut accepted: Vec<AcceptedPut> = Vec::new();
        let mut batch_emails: HashSet<String> = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            if !is_object(&mut errors, i, item) {
                continue;
            }
            let Some(id) = item.get("id").and_then(Value::as_i64) else {
                errors.insert(
                    format!("{i}.id"),
                    "The field 'id' is required and must be an integer".to_owned(),
                );
                continue;
            };
            if !self.customers.contains_key(&id) {
                errors.insert(format!("{i}.id"), format!("Customer {id} does not exist"));
                continue;
            }
            let Some(put) = Item::read(&mut errors, i, item, 255, false) else {
                continue;
            };
            // On PUT `null` means "make this a global account".
            let channel_change = put.channel_ids.clone();
            if let Some(Some(ids)) = &channel_change {
                check_channels(&mut errors, i, Some(ids), channels);
            }
            if let Some(g) = put.customer_group_id
                && !self.group_exists(g)
            {
                errors.insert(
                    format!("{i}.customer_group_id"),
                    format!("Customer group {g} does not exist"),
                );
            }
            if let Some(email) = &put.email
                && (self.email_taken(email, Some(id)) || !batch_emails.insert(email.to_lowercase()))
            {
                errors.insert(
                    format!("{i}.email"),
                    format!("The email address '{email}' is already in use by another customer"),
                );
            }
            let force_reset = put.force_password_reset;
            accepted.push((id, put, channel_change, force_reset));
        }
        if !errors.is_empty() {
            return Err(error(422, TITLE, ERROR_TYPE_SHORT, errors));
        }
        let mut updated = Vec::with_capacity(accepted.len());
        for (id, put, channel_change, force_reset) in accepted {
            let Some(stored) = self.customers.get_mut(&id) else {
                continue; // checked above; unreachable while we hold the lock
            };
            let c = &mut stored.full;
            if let Some(v) = put.email {
                c.email = v;
            }
            if let Some(v) = put.first_name {
                c.first_name = v;
            }
            if let Some(v) = put.last_name {
                c.last_name = v;
            }
            if let Some(v) = put.company {
                c.company = v;
            }
            if let Some(v) = put.phone {
                c.phone = v;
            }
            if let Some(v) = put.notes {
                c.notes = v;
            }
            if let Some(v) = put.customer_group_id {
                c.customer_group_id = v;
            }
            if let Some(v) = channel_change {
                c.channel_ids = v;
            }
            if let Some(v) = force_reset {
                c.authentication
                    .get_or_insert_with(Default::default)
                    .force_password_reset = v;
            }
            c.date_modified = rfc3339(now);
            stored.modified = now;
            updated.push(stored.full.clone());
        }
        Ok(updated)
    }

    // ---------------------------------------------------------------- DELETE /v3/customers

    /// `DELETE /v3/customers?id:in=…` (CONTRACT.md §2.4): without `id:in` nothing is deleted.
    /// The ids that were deleted.
    pub fn delete(&mut self, query: &[(String, String)]) -> Result<Vec<i64>, ErrorResponse> {
        let Some((_, raw)) = query.iter().find(|(k, _)| k == "id:in") else {
            return Ok(Vec::new());
        };
        let ids = parse_int_csv("id:in", raw)?;
        Ok(ids
            .into_iter()
            .filter(|id| self.customers.remove(id).is_some())
            .collect())
    }
}
