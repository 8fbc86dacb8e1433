//! The console's page frame and rendering. Every page is an askama template
//! (`templates/console/*.html`) extending `layout.html`, with HTML escaping on for every value;
//! the frame's data is a [`Shell`].

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use muster_core::model::AdminAccount;

/// One link of the navigation bar.
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The navigation bar of a signed-in administrator.
pub struct Nav {
    pub links: Vec<NavLink>,
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
    /// Providers whose deactivations the mass-deactivation guard holds: a banner on every page.
    pub held: Vec<HeldBanner>,
}

/// A provider whose deactivations are held, as the banner names it.
pub struct HeldBanner {
    pub name: String,
    pub turned_off: i64,
    /// Its guard page, for administrators who manage providers.
    pub link: Option<String>,
}

/// One `<option>` (or radio button) of a choice.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Opt {
    /// An option, selected when `chosen` is its value.
    pub fn new(value: String, label: &str, chosen: Option<&str>) -> Opt {
        Opt {
            selected: chosen == Some(value.as_str()),
            label: label.to_string(),
            value,
        }
    }
}

/// What the layout needs: the title, and the navigation bar when signed in.
pub struct Shell {
    pub title: String,
    pub nav: Option<Nav>,
}

impl Shell {
    /// A page without the navigation bar (sign-in, errors).
    pub fn bare(title: &str) -> Shell {
        Shell {
            title: title.to_string(),
            nav: None,
        }
    }

    /// A page with the navigation bar for this administrator; `current` is the active link.
    pub fn new(
        title: &str,
        current: &str,
        admin: &AdminAccount,
        csrf: &str,
        held: Vec<HeldBanner>,
    ) -> Shell {
        let links = super::access::nav_for(admin.role)
            .into_iter()
            .map(|(href, label)| NavLink {
                href,
                label,
                current: href == current,
            })
            .collect();
        Shell {
            title: title.to_string(),
            nav: Some(Nav {
                links,
                username: admin.username.clone(),
                role: admin.role.title(),
                csrf: csrf.to_string(),
                held,
            }),
        }
    }
}

/// Renders a page with this status. A template that fails to render (a formatting error in a
/// value) is logged and answered with a plain 500, never with half a page.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong. The server log has the details.",
            )
                .into_response()
        }
    }
}

/// A page that says one thing: an error, a refusal, a missing page.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct Message<'a> {
    pub shell: Shell,
    pub heading: &'a str,
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = Message {
            shell: Shell::bare("<b>"),
            heading: "Bad",
            message: "<script>alert('x') & \"y\"</script>",
        };
        let html = page.render().unwrap_or_default();
        assert!(
            html.contains("&#60;script&#62;alert(&#39;x&#39;) &#38; &#34;y&#34;&#60;/script&#62;"),
            "{html}"
        );
        assert!(
            html.contains("<title>&#60;b&#62; · Muster</title>"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
    }
}
