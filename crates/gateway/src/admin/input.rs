//! What the console's forms and the API's queries share: fields read strictly, the key of
//! an identity link, the audit search, and times as an admin reads and types them.

use std::collections::HashMap;

use crate::db::{AuditFilter, AuditKind};
use crate::error::Error;

/// A form body or query string by field name.
pub type Fields = HashMap<String, String>;

/// Form or query fields; a field given twice is refused rather than guessed.
pub fn fields(body: &[u8]) -> Result<Fields, Error> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            // `{:?}`: the name is the client's text, and goes to the log (rule 25).
            return Err(Error::AdminInput(format!("field {k:?} is given twice")));
        }
    }
    Ok(out)
}

/// The fields of a query string (none when there is none).
pub fn query(query: Option<&str>) -> Result<Fields, Error> {
    fields(query.unwrap_or("").as_bytes())
}

/// `(issuer, subject)`: the key of an identity link, both required.
pub fn link_key(f: &Fields) -> Result<(&str, &str), Error> {
    match (f.get("issuer"), f.get("subject")) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok((i, s)),
        _ => Err(Error::AdminInput("issuer and subject are required".into())),
    }
}

/// The search of the audit page and `GET /admin/api/audit`. `from`/`to` are dates
/// (`2026-11-26`, whole days in UTC) or Unix seconds.
pub fn audit_filter(q: &Fields) -> Result<AuditFilter, Error> {
    let nonempty = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let kind = match nonempty("kind") {
        Some(k) => Some(
            AuditKind::parse(k)
                .ok_or_else(|| Error::AdminInput(format!("unknown event kind {k:?}")))?,
        ),
        None => None,
    };
    Ok(AuditFilter {
        from: nonempty("from").map(|v| parse_time(v, false)).transpose()?,
        to: nonempty("to").map(|v| parse_time(v, true)).transpose()?,
        connection: nonempty("connection").map(str::to_owned),
        kind,
        email: nonempty("email").map(str::to_owned),
        limit: nonempty("limit")
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::AdminInput("limit must be a number".into()))
            })
            .transpose()?
            .unwrap_or(200),
    })
}

pub fn parse_time(v: &str, end_of_day: bool) -> Result<i64, Error> {
    if let Ok(secs) = v.parse::<i64>() {
        return Ok(secs);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(v, &format)
        .map_err(|_| Error::AdminInput(format!("{v:?} is not a date (YYYY-MM-DD)")))?;
    let start = date.midnight().assume_utc().unix_timestamp();
    Ok(if end_of_day { start + 86_399 } else { start })
}

pub fn fmt_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_filters() -> Result<(), Error> {
        assert_eq!(parse_time("2026-11-26", false)?, 1_795_651_200);
        assert_eq!(parse_time("2026-11-26", true)?, 1_795_651_200 + 86_399);
        assert_eq!(parse_time("1234", false)?, 1234);
        assert!(parse_time("26/11/2026", false).is_err());
        assert_eq!(fmt_time(1_795_651_200), "2026-11-26 00:00:00 UTC");
        let f = audit_filter(&fields(b"kind=sign_in_refused&email=ada&limit=5")?)?;
        assert_eq!(
            (f.kind, f.email.as_deref(), f.limit),
            (Some(AuditKind::SignInRefused), Some("ada"), 5)
        );
        assert!(audit_filter(&fields(b"kind=nope")?).is_err());
        assert!(fields(b"a=1&a=2").is_err());
        Ok(())
    }
}
