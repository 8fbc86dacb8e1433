//! `/metrics`: request counts and latencies by route, status and provider; database and
//! scheduler gauges.

use axum::http::Method;
use serde_json::json;

use crate::on_both;
use crate::support::{Backend, TestApp};

on_both!(metrics_count_requests_and_scheduled_deactivations);

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_and_scheduled_deactivations(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "m1@example.com").await;
    app.create_user(&p, "m2@example.com").await;
    let _ = app
        .send(
            Method::GET,
            &format!("{}/Users", p.base),
            Some("mst_wrong"),
            None,
        )
        .await;
    // A method the route does not take is answered by the route's fallback, which the
    // middleware wraps as well: counted under the route, with no provider (the fallback does not
    // authenticate).
    let wrong_method = app
        .send(
            Method::DELETE,
            &format!("{}/Users", p.base),
            Some(&p.token),
            None,
        )
        .await;
    assert_eq!(wrong_method.status.as_u16(), 405);
    let r = app
        .patch(
            &p,
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let m = app.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(m.status.as_u16(), 200);
    assert_eq!(
        m.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = m.body.as_str().unwrap_or_default().to_string();
    let created = format!(
        "muster_http_requests_total{{route=\"/scim/v2/{{provider}}/Users\",method=\"POST\",status=\"201\",provider=\"{}\"}}",
        p.id
    );
    assert_eq!(value(&text, &created), Some(2.0), "{text}");
    // A refused request is counted without a provider label: the token was not accepted.
    let refused = "muster_http_requests_total{route=\"/scim/v2/{provider}/Users\",method=\"GET\",status=\"401\",provider=\"\"}";
    assert_eq!(value(&text, refused), Some(1.0), "{text}");
    let not_allowed = "muster_http_requests_total{route=\"/scim/v2/{provider}/Users\",method=\"DELETE\",status=\"405\",provider=\"\"}";
    assert_eq!(value(&text, not_allowed), Some(1.0), "{text}");
    let bucket = format!(
        "muster_http_request_duration_seconds_bucket{{le=\"+Inf\",route=\"/scim/v2/{{provider}}/Users\",method=\"POST\",status=\"201\",provider=\"{}\"}}",
        p.id
    );
    assert_eq!(value(&text, &bucket), Some(2.0));
    assert!(value(&text, "muster_sync_log_entries_total").is_some_and(|n| n >= 4.0));
    assert!(text.contains("muster_db_connections{backend="));
    assert!(text.contains("muster_db_commit_seconds_count{backend="));
    assert_eq!(value(&text, "muster_deactivations_pending"), Some(1.0));
    assert_eq!(value(&text, "muster_deactivations_overdue"), Some(0.0));
    assert_eq!(value(&text, "muster_scheduler_lag_seconds"), Some(0.0));
    assert_eq!(value(&text, "muster_up"), Some(1.0));
    assert!(!text.contains(&p.token), "no secret in metrics");
    // Every metric is in the operations guide's table, by the name it is scraped by.
    let guide = include_str!("../../../../docs/operations.md");
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(
        families.contains(&"muster_up") && families.len() >= 15,
        "{text}"
    );
    for family in families {
        let counter = format!("`{family}_total`");
        assert!(
            guide.contains(&format!("`{family}`")) || guide.contains(&counter),
            "{family} is not in docs/operations.md"
        );
    }

    // Past the due time with no scheduler run, the lag shows.
    app.clock.advance_secs(16 * 60);
    let text = app.send(Method::GET, "/metrics", None, None).await.body;
    let text = text.as_str().unwrap_or_default();
    assert_eq!(value(text, "muster_deactivations_overdue"), Some(1.0));
    assert_eq!(value(text, "muster_scheduler_lag_seconds"), Some(60.0));
    app.finish().await;
}
