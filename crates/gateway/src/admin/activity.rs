//! Sign-in activity for the console: the last 24 hours by hour and the last 7 days by day,
//! succeeded against refused, with the refusal reasons; drawn as server-side SVG (no
//! script, no CDN) and exported as CSV. Counted by the database from the audit trail.

use time::macros::format_description;

use crate::db::{AuditEvent, Db, DbError, SignInCount};

/// The SVG's drawing area: [`WIDTH`] wide, bars up to 100 high, labels below.
pub const WIDTH: i64 = 480;

/// One bar: a bucket of time with its successes and refusals, and its geometry in the
/// chart's units (the SVG scales uniformly, so text is never stretched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    /// Whether this bar's label is drawn (24 hourly labels would overlap: every 4th).
    pub show_label: bool,
    pub succeeded: i64,
    pub refused: i64,
    /// Heights in chart units (0..=100); the refused part stacks on the succeeded one.
    pub succeeded_height: i64,
    pub refused_height: i64,
    pub x: i64,
    pub width: i64,
}

impl Bar {
    /// Where the bar's label is centred.
    pub fn middle(&self) -> i64 {
        self.x + self.width / 2
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub title: &'static str,
    pub bars: Vec<Bar>,
    pub total_succeeded: i64,
    pub total_refused: i64,
    /// Refusal reasons with their counts, most frequent first.
    pub reasons: Vec<(String, i64)>,
}

impl Chart {
    /// The tallest bar's total, for the axis label.
    pub fn peak(&self) -> i64 {
        self.bars
            .iter()
            .map(|b| b.succeeded + b.refused)
            .max()
            .unwrap_or(0)
    }
}

/// The two charts of the overview, ending at `now` (Unix seconds).
pub async fn charts(db: &Db, now: i64) -> Result<[Chart; 2], DbError> {
    const HOUR: i64 = 3600;
    const DAY: i64 = 86_400;
    // Buckets end at the next whole hour/day, so the newest bar is the current one.
    let hours_end = now - now.rem_euclid(HOUR) + HOUR;
    let days_end = now - now.rem_euclid(DAY) + DAY;
    let day_start = hours_end - 24 * HOUR;
    let week_start = days_end - 7 * DAY;
    let by_hour = db.sign_in_counts(day_start, HOUR).await?;
    let by_day = db.sign_in_counts(week_start, DAY).await?;
    Ok([
        chart("Last 24 hours", &by_hour, 24, |i| {
            label(day_start + i * HOUR, format_description!("[hour]:00"))
        }),
        chart("Last 7 days", &by_day, 7, |i| {
            label(
                week_start + i * DAY,
                format_description!("[month repr:short] [day]"),
            )
        }),
    ])
}

fn label(at: i64, format: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| at.to_string())
}

/// Fills `n` buckets from the database's counts (missing buckets are zero).
pub fn chart(
    title: &'static str,
    counts: &[SignInCount],
    n: i64,
    label: impl Fn(i64) -> String,
) -> Chart {
    let slot = WIDTH / n.max(1);
    let every = (n / 6).max(1);
    let mut bars: Vec<Bar> = (0..n)
        .map(|i| Bar {
            label: label(i),
            show_label: i % every == 0,
            succeeded: 0,
            refused: 0,
            succeeded_height: 0,
            refused_height: 0,
            x: i * slot + slot / 8,
            width: slot - slot / 4,
        })
        .collect();
    let mut reasons: Vec<(String, i64)> = Vec::new();
    for c in counts {
        let Some(bar) = usize::try_from(c.bucket).ok().and_then(|i| bars.get_mut(i)) else {
            continue;
        };
        if c.succeeded {
            bar.succeeded += c.count;
        } else {
            bar.refused += c.count;
            let reason = if c.reason.is_empty() {
                "unknown".to_owned()
            } else {
                c.reason.clone()
            };
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += c.count,
                None => reasons.push((reason, c.count)),
            }
        }
    }
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let peak = bars
        .iter()
        .map(|b| b.succeeded + b.refused)
        .max()
        .unwrap_or(0)
        .max(1);
    for b in &mut bars {
        b.succeeded_height = b.succeeded * 100 / peak;
        b.refused_height = b.refused * 100 / peak;
    }
    Chart {
        title,
        total_succeeded: bars.iter().map(|b| b.succeeded).sum(),
        total_refused: bars.iter().map(|b| b.refused).sum(),
        bars,
        reasons,
    }
}

/// The audit events as CSV (RFC 4180), newest first. A cell that a spreadsheet would take
/// for a formula (`=`, `+`, `-`, `@`, tab, CR) gets a leading `'`: emails, names and
/// reasons come from IdPs and requests, and opening an export must not run them.
pub fn csv(events: &[AuditEvent]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "time",
        "kind",
        "connection",
        "subject",
        "email",
        "customer_id",
        "reason",
        "actor",
        "client_ip",
        "user_agent",
        "correlation_id",
    ])?;
    for e in events {
        let at = time::OffsetDateTime::from_unix_timestamp(e.at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| e.at.to_string());
        let text = |v: &Option<String>| inert(v.as_deref().unwrap_or(""));
        w.write_record([
            at,
            e.kind.as_str().to_owned(),
            text(&e.connection),
            text(&e.subject),
            text(&e.email),
            e.customer_id.map(|c| c.to_string()).unwrap_or_default(),
            text(&e.reason),
            text(&e.actor),
            text(&e.client_ip),
            text(&e.user_agent),
            text(&e.correlation_id),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

fn inert(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::AuditKind;

    #[test]
    fn buckets_fill_stack_and_rank_reasons() {
        let c = |bucket, succeeded, reason: &str, count| SignInCount {
            bucket,
            succeeded,
            reason: reason.into(),
            count,
        };
        let chart = chart(
            "t",
            &[
                c(0, true, "", 3),
                c(0, false, "email_unverified", 1),
                c(2, false, "domain_not_allowed", 4),
                c(2, false, "email_unverified", 2),
                c(9, true, "", 100), // outside the range: ignored
            ],
            3,
            |i| format!("b{i}"),
        );
        assert_eq!(chart.bars.len(), 3);
        assert_eq!((chart.total_succeeded, chart.total_refused), (3, 7));
        assert_eq!(chart.peak(), 6);
        assert_eq!(chart.bars[2].refused_height, 100);
        assert_eq!(chart.bars[0].succeeded_height, 50);
        assert_eq!(chart.bars[1].succeeded_height, 0);
        assert_eq!(
            chart.reasons,
            [
                ("domain_not_allowed".to_owned(), 4),
                ("email_unverified".to_owned(), 3)
            ]
        );
    }

    /// CSV injection: a claim that starts like a formula is exported as text.
    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let e = AuditEvent {
            at: 0,
            kind: AuditKind::SignInRefused,
            email: Some("=HYPERLINK(\"http://evil\",\"x\")@a.test".into()),
            user_agent: Some("Mozilla, \"quoted\"\nnext".into()),
            reason: Some("-1+1".into()),
            ..AuditEvent::default()
        };
        let text = String::from_utf8(csv(&[e]).unwrap()).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "1970-01-01T00:00:00Z");
        assert_eq!(&row[1], "sign_in_refused");
        assert!(row[4].starts_with("'="), "{}", &row[4]);
        assert_eq!(&row[6], "'-1+1");
        assert_eq!(&row[9], "Mozilla, \"quoted\"\nnext", "quoted, not split");
    }
}
