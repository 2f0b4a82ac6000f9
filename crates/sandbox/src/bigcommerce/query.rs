//! Query parameters of `GET /v3/customers` (CONTRACT.md §2.1, §8 item 4) and the
//! pagination blocks of its envelope.

use base64::Engine as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::state::{ERROR_TYPE_FULL, StoredCustomer, one_error};
use bigcommerce_wire::{CursorPagination, CustomerFull, ErrorResponse, PaginationLinks};

/// Platform default/maximum page size, assumed for customers (CONTRACT.md §2.1, unconfirmed).
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 250;

pub(super) fn cursor_block(
    data: &[CustomerFull],
    limit: i64,
    more: Option<bool>,
) -> CursorPagination {
    let encode =
        |c: &CustomerFull| base64::engine::general_purpose::STANDARD.encode(format!("id:{}", c.id));
    let start = data.first().map(encode);
    let end = data.last().map(encode);
    CursorPagination {
        count: data.len() as i64,
        per_page: limit,
        links: PaginationLinks {
            previous: None,
            current: None,
            next: match (more, &end) {
                (Some(false), _) | (_, None) => None,
                (_, Some(end)) => Some(format!("?after={end}&limit={limit}")),
            },
        },
        start_cursor: start,
        end_cursor: end,
    }
}

fn invalid_filter(key: &str, message: String) -> ErrorResponse {
    one_error(422, "Invalid filter value", ERROR_TYPE_FULL, key, message)
}

pub(super) fn parse_int_csv(key: &str, raw: &str) -> Result<Vec<i64>, ErrorResponse> {
    raw.split(',')
        .map(|s| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| invalid_filter(key, format!("'{}' is not an integer", s.trim())))
        })
        .collect()
}

fn csv_lower(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Dates as C3 documents them: `2024-05-14T09:34:00`, `2024-05-14`, or full RFC 3339.
/// Returns the instant and whether only a day was given.
fn parse_date(key: &str, raw: &str) -> Result<(OffsetDateTime, bool), ErrorResponse> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok((t, false));
    }
    if let Ok(t) = time::PrimitiveDateTime::parse(
        raw,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ) {
        return Ok((t.assume_utc(), false));
    }
    if let Ok(d) = time::Date::parse(raw, format_description!("[year]-[month]-[day]")) {
        return Ok((d.midnight().assume_utc(), true));
    }
    Err(invalid_filter(key, format!("'{raw}' is not a date")))
}

#[derive(Clone, Copy)]
pub(super) enum SortField {
    DateCreated,
    DateModified,
    LastName,
}

pub(super) enum Cursor {
    After(i64),
    Before(i64),
}

#[derive(Default)]
struct DateRange {
    min: Option<OffsetDateTime>,
    max: Option<OffsetDateTime>,
}

impl DateRange {
    fn set(&mut self, key: &str, raw: &str, suffix: &str) -> Result<(), ErrorResponse> {
        let (t, day_only) = parse_date(key, raw)?;
        let end = if day_only {
            t + time::Duration::days(1) - time::Duration::seconds(1)
        } else {
            t
        };
        match suffix {
            ":min" => self.min = Some(t),
            ":max" => self.max = Some(end),
            _ => {
                self.min = Some(t);
                self.max = Some(end);
            }
        }
        Ok(())
    }
    fn contains(&self, t: OffsetDateTime) -> bool {
        self.min.is_none_or(|m| t >= m) && self.max.is_none_or(|m| t <= m)
    }
}

pub(super) struct ListQuery {
    pub(super) ids: Option<Vec<i64>>,
    pub(super) emails: Option<Vec<String>>,
    pub(super) names: Option<Vec<String>>,
    pub(super) name_like: Option<Vec<String>>,
    pub(super) group_ids: Option<Vec<i64>>,
    created: DateRange,
    modified: DateRange,
    pub(super) page: i64,
    pub(super) limit: i64,
    pub(super) sort: Option<(SortField, bool)>,
    pub(super) cursor: Option<Cursor>,
}

impl ListQuery {
    pub(super) fn parse(query: &[(String, String)]) -> Result<Self, ErrorResponse> {
        let mut q = ListQuery {
            ids: None,
            emails: None,
            names: None,
            name_like: None,
            group_ids: None,
            created: DateRange::default(),
            modified: DateRange::default(),
            page: 1,
            limit: DEFAULT_LIMIT,
            sort: None,
            cursor: None,
        };
        for (key, raw) in query {
            match key.as_str() {
                "id:in" => q.ids = Some(parse_int_csv(key, raw)?),
                "email:in" => q.emails = Some(csv_lower(raw)),
                "name:in" => q.names = Some(csv_lower(raw)),
                "name:like" => q.name_like = Some(csv_lower(raw)),
                "customer_group_id:in" => q.group_ids = Some(parse_int_csv(key, raw)?),
                "date_created" | "date_created:min" | "date_created:max" => {
                    q.created.set(key, raw, &key["date_created".len()..])?
                }
                "date_modified" | "date_modified:min" | "date_modified:max" => {
                    q.modified.set(key, raw, &key["date_modified".len()..])?
                }
                "page" => {
                    q.page = raw
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|p| *p >= 1)
                        .ok_or_else(|| {
                            invalid_filter(key, "page must be a positive integer".to_owned())
                        })?
                }
                "limit" => {
                    // Above the maximum → 422 here; real BC may answer 413 or clamp (CONTRACT.md §2.1).
                    q.limit = raw
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            invalid_filter(key, format!("limit must be between 1 and {MAX_LIMIT}"))
                        })?
                }
                "sort" => {
                    let sort = match raw.as_str() {
                        "date_created:asc" => (SortField::DateCreated, false),
                        "date_created:desc" => (SortField::DateCreated, true),
                        "date_modified:asc" => (SortField::DateModified, false),
                        "date_modified:desc" => (SortField::DateModified, true),
                        "last_name:asc" => (SortField::LastName, false),
                        "last_name:desc" => (SortField::LastName, true),
                        other => {
                            return Err(invalid_filter(
                                key,
                                format!("'{other}' is not a valid sort"),
                            ));
                        }
                    };
                    q.sort = Some(sort);
                }
                "include" => {
                    // Accepted and validated; the sub-resources themselves are not emulated.
                    const ALLOWED: [&str; 6] = [
                        "addresses",
                        "storecredit",
                        "attributes",
                        "formfields",
                        "shopper_profile_id",
                        "segment_ids",
                    ];
                    if let Some(bad) = raw.split(',').map(str::trim).find(|v| !ALLOWED.contains(v))
                    {
                        return Err(invalid_filter(
                            key,
                            format!("'{bad}' is not a valid include"),
                        ));
                    }
                }
                "after" | "before" => {
                    let id = base64::engine::general_purpose::STANDARD
                        .decode(raw.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .and_then(|s| s.strip_prefix("id:").and_then(|n| n.parse::<i64>().ok()))
                        .ok_or_else(|| invalid_filter(key, "invalid cursor".to_owned()))?;
                    q.cursor = Some(if key == "after" {
                        Cursor::After(id)
                    } else {
                        Cursor::Before(id)
                    });
                }
                // Other documented filters (company:in, phone:in, …) are not emulated; like
                // BigCommerce we ignore parameters we do not know.
                _ => {}
            }
        }
        if q.cursor.is_some() && q.sort.is_some() {
            return Err(invalid_filter(
                "sort",
                "cursor pagination is emulated for the default order only".to_owned(),
            ));
        }
        Ok(q)
    }

    pub(super) fn matches(&self, c: &StoredCustomer) -> bool {
        let full = &c.full;
        let name = format!("{} {}", full.first_name, full.last_name).to_lowercase();
        self.ids.as_ref().is_none_or(|ids| ids.contains(&full.id))
            && self
                .emails
                .as_ref()
                .is_none_or(|e| e.iter().any(|e| full.email.to_lowercase() == *e))
            && self.names.as_ref().is_none_or(|n| n.contains(&name))
            && self
                .name_like
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| name.contains(n.as_str())))
            && self
                .group_ids
                .as_ref()
                .is_none_or(|g| g.contains(&full.customer_group_id))
            && self.created.contains(c.created)
            && self.modified.contains(c.modified)
    }
}
