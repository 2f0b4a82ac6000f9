//! Logging set-up and the per-request span.
//!
//! Every request gets a fresh correlation id (never the client's: it is printed on error
//! pages and must be ours). The span names the matched route, not the URI, because the
//! callback's query holds the authorization code and state (SECURITY.md rule 18).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_CTX: RequestCtx;
}

#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    pub correlation_id: String,
    pub wants_json: bool,
    /// Where an error page sends the shopper back to: the default storefront.
    pub home_url: Option<Arc<str>>,
    /// The client's IP as `server.trusted_proxies` resolves it, for the audit trail.
    pub client_ip: Option<IpAddr>,
    /// Its `User-Agent`, cleaned and cut short, for the audit trail.
    pub user_agent: Option<String>,
}

/// What the gateway knows about a request before the span starts.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub home_url: Option<Arc<str>>,
    pub client_ip: Option<IpAddr>,
}

impl RequestCtx {
    /// The context of the request being served, or an empty one outside a request.
    pub fn current() -> RequestCtx {
        REQUEST_CTX
            .try_with(Clone::clone)
            .unwrap_or_else(|_| RequestCtx {
                correlation_id: "-".into(),
                ..RequestCtx::default()
            })
    }
}

/// Runs `work` (a task spawned by a request) in that request's context: its audit events
/// carry the request's correlation id and client.
pub async fn within<F: Future>(ctx: RequestCtx, work: F) -> F::Output {
    REQUEST_CTX.scope(ctx, work).await
}

pub const CORRELATION_HEADER: &str = "x-request-id";

/// Middleware: correlation id, request span, one access-log line per request.
pub async fn request_span(
    State(RequestInfo {
        home_url,
        client_ip,
    }): State<RequestInfo>,
    req: Request,
    next: Next,
) -> Response {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let wants_json = req.uri().path().starts_with("/admin/api/")
        || req.uri().path().starts_with("/webhooks/")
        || req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"));
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        method = %req.method(),
        route = %route,
        client_ip = client_ip.map(tracing::field::display),
        connection = tracing::field::Empty,
        sub = tracing::field::Empty,
        customer_id = tracing::field::Empty,
    );
    let ctx = RequestCtx {
        correlation_id: correlation_id.clone(),
        wants_json,
        home_url,
        client_ip,
        user_agent: crate::client_ip::user_agent(req.headers()),
    };
    let started = Instant::now();
    let mut response = REQUEST_CTX
        .scope(ctx, next.run(req))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request finished"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
    response
}

/// Installs the global subscriber: `BCSSO_LOG` (env-filter syntax, default `info`) and
/// `BCSSO_LOG_FORMAT=json` for machine-read logs. The text format escapes the fields (see
/// [`EscapedFields`]); JSON escapes by construction.
pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BCSSO_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_sessions=warn"));
    let json = std::env::var("BCSSO_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        // The current span carries every field of the request; the list of spans would
        // repeat it on every line (twice the bytes, for nothing).
        builder.json().with_span_list(false).try_init()
    } else {
        builder.fmt_fields(EscapedFields::default()).try_init()
    };
}

/// The text log's field formatter: tracing-subscriber's, with every control character of
/// the output escaped (`\n`, `\r`, `\t`, `\u{1b}`, ...; also U+2028/U+2029).
///
/// Request-supplied text reaches the log inside fields and messages: an error's `Display`
/// can name a form field or a path segment, a claim can be a `sub` or an email. The default
/// formatter writes `%` (Display) values and the message as they are, so one `%0A` in a
/// form field name wrote a second, forged log line (SECURITY.md rule 25). Escaping here
/// covers every field of every event and span, whoever logs it. Field names are not
/// coloured (the escaping would show the colour codes); levels still are.
#[derive(Debug, Default)]
pub struct EscapedFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut escaping = Escaping(&mut writer);
        self.0.format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut escaping),
            fields,
        )
    }
}

/// A `fmt::Write` that escapes control characters on their way to the inner writer.
struct Escaping<'a, W: std::fmt::Write>(&'a mut W);

impl<W: std::fmt::Write> std::fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Characters that end or rewrite a log line on a terminal or in a log file.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_log_fields_and_messages_cannot_break_the_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(true)
            .fmt_fields(EscapedFields::default())
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let evil = "x\n2026-01-01T00:00:00Z ERROR forged\r\u{1b}[2J\u{2028}";
            let span = tracing::info_span!("request", route = %evil);
            let _in = span.enter();
            tracing::info!(error = %evil, debug = ?evil, "refused {evil}");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains("\u{2028}") && !out.contains("\r"), "{out}");
        assert!(
            out.contains("error=x\\n2026-01-01T00:00:00Z ERROR forged\\r\\u{1b}[2J\\u{2028}"),
            "{out}"
        );
        assert!(out.contains("refused x\\n2026"), "{out}");
        assert!(out.contains("route=x\\n2026"), "{out}");
        // Debug values were escaped already and stay as they were.
        assert!(out.contains(r#"debug="x\n2026"#), "{out}");
    }
}
