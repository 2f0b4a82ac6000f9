//! What an IT admin would rather look at than read (issue 10 item 7): the overview's
//! sign-in chart (last 24 hours and 7 days, succeeded against refused, by reason) drawn
//! from the audit trail, and the audit log exported as CSV.

use reqwest::{Method, StatusCode};

use crate::common::{Env, new_browser};

/// One sign-in and one refusal, then the admin signs in to the console.
async fn env_with_two_sign_ins() -> Env {
    let env = Env::start().await;
    env.signed_in("", "ada").await;
    env.refused("", "eve", StatusCode::FORBIDDEN, "email_unverified")
        .await;
    env.admin_sign_in().await;
    env
}

#[tokio::test]
async fn overview_charts_sign_ins_by_result_and_reason() {
    let env = env_with_two_sign_ins().await;
    let page = env.open("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "Last 24 hours</strong>: 1 signed in, 1 refused",
        "Last 7 days</strong>: 1 signed in, 1 refused",
        "<code>email_unverified</code> 1",
        "<svg role=\"img\"",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle} not in:\n{}",
            page.body
        );
    }
    // 24 hourly bars and 7 daily ones, each a succeeded and a refused rect.
    assert_eq!(page.body.matches("<rect class=\"ok\"").count(), 24 + 7);
    // Claims never reach the chart (it counts; the audit log names people).
    assert!(!page.body.contains("ada@example.com</title>"));
}

#[tokio::test]
async fn audit_log_exports_as_csv_in_the_console_and_the_api() {
    let env = env_with_two_sign_ins().await;
    let audit = env.open("/admin/audit").await;
    assert!(audit.body.contains("formaction=\"/admin/audit.csv\""));
    let csv = env.request(Method::GET, "/admin/audit.csv?kind=sign_in_refused");
    let r = csv.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"bc-sso-audit-"),
        "{disposition}"
    );
    let text = r.text().await.unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("time,kind,connection,subject,email")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains("sign_in_refused") && rows[0].contains("eve@example.com"));
    assert!(rows[0].contains("email_unverified"));

    // The API, with the admin token; without it, nothing.
    let api = env.gateway("/admin/api/audit.csv");
    let anonymous = new_browser().get(api.clone()).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let r = new_browser().get(api).bearer_auth(env.admin_token()).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("sign_in_succeeded") && text.contains("ada@example.com"));
}
