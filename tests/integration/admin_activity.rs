//! What an IT admin would rather look at than read (issue 10 item 7): the overview's
//! sign-in chart (last 24 hours and 7 days, succeeded against refused, by reason) drawn
//! from the audit trail, and the audit log exported as CSV.

use reqwest::StatusCode;

use crate::admin::{sign_in, token};
use crate::common::Env;

async fn two_sign_ins(env: &Env) {
    let (_, ok) = env.sign_in("", "ada").await;
    assert_eq!(ok.status, StatusCode::FOUND);
    let (_, refused) = env.sign_in("", "eve").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn overview_charts_sign_ins_by_result_and_reason() {
    let env = Env::start().await;
    two_sign_ins(&env).await;
    sign_in(&env).await;
    let page = env.get(&env.gateway("/admin")).await;
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
    let env = Env::start().await;
    two_sign_ins(&env).await;
    sign_in(&env).await;
    let audit = env.get(&env.gateway("/admin/audit")).await;
    assert!(audit.body.contains("formaction=\"/admin/audit.csv\""));
    let r = env
        .browser
        .get(env.gateway("/admin/audit.csv?kind=sign_in_refused"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"bc-sso-audit-")
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
    let anonymous = crate::common::new_browser()
        .get(api.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let r = crate::common::new_browser()
        .get(api)
        .bearer_auth(token(&env))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("sign_in_succeeded") && text.contains("ada@example.com"));
}
