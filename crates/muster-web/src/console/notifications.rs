//! Notifications (every administrator): one's own email address and which reports one gets
//! (docs/notifications.md). Customer Cloud Admins get security notices whatever they choose;
//! the mass-deactivation guard tells those who manage providers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use muster_core::model::ReportPreference;
use muster_core::CoreError;

use super::access::Everyone;
use super::html::{render, Opt, Shell};
use super::shell::{error_page, internal, status_of, Console, Posted};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/notifications.html")]
struct NotificationsPage<'a> {
    shell: Shell,
    csrf: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    email: String,
    reports: Vec<Opt>,
    mail_enabled: bool,
}

/// `GET /console/notifications`.
pub async fn page(State(state): State<AppState>, console: Console<Everyone>) -> Response {
    let (email, report) = (console.admin.email.clone(), console.admin.report);
    notifications_page(&state, &console, email, report, None, None, StatusCode::OK)
}

/// `POST /console/notifications`: saves one's own address and report preference.
pub async fn act(State(state): State<AppState>, posted: Posted<Everyone>) -> Response {
    let Posted { console, form } = posted;
    if form.field("action").as_deref() != Some("save") {
        return error_page(StatusCode::BAD_REQUEST, "Unknown action.");
    }
    let email = form.field("email");
    let report = form
        .field("report")
        .as_deref()
        .and_then(ReportPreference::parse);
    let saved = match report {
        None => Err(CoreError::Invalid(
            "choose Daily, Only on errors or Never".into(),
        )),
        Some(r) => {
            state
                .muster
                .set_admin_notifications(
                    console.env(),
                    console.admin.id,
                    Some(email.clone()),
                    Some(r),
                    &console.actor(),
                )
                .await
        }
    };
    match saved {
        Ok(a) => notifications_page(
            &state,
            &console,
            a.email,
            a.report,
            None,
            Some("Saved."),
            StatusCode::OK,
        ),
        Err(e @ CoreError::Store(_)) => internal(&e),
        Err(e) => {
            let message = e.to_string();
            notifications_page(
                &state,
                &console,
                email,
                report.unwrap_or(console.admin.report),
                Some(&message),
                None,
                status_of(&e),
            )
        }
    }
}

fn notifications_page(
    state: &AppState,
    console: &Console<Everyone>,
    email: Option<String>,
    report: ReportPreference,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let chosen = Some(report.as_str());
    let page = NotificationsPage {
        shell: console.shell("Notifications", "/console/notifications"),
        csrf: &console.session.csrf_token,
        error,
        notice,
        email: email.unwrap_or_default(),
        reports: vec![
            Opt::new(
                "daily".into(),
                "Daily: the directory sync report every day",
                chosen,
            ),
            Opt::new(
                "errors".into(),
                "Only on errors: the report on days with errors",
                chosen,
            ),
            Opt::new(
                "never".into(),
                "Never: no report and no error emails",
                chosen,
            ),
        ],
        mail_enabled: state.muster.settings.notify.mail_enabled,
    };
    render(status, &page)
}
