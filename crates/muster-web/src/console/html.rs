//! The console's page frame and HTML escaping.

use muster_core::model::AdminAccount;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A page: its title, the header (when signed in), and its content.
pub struct Page {
    title: String,
    header: String,
    body: String,
}

impl Page {
    /// A page without the navigation bar (sign-in, errors).
    pub fn bare(title: &str) -> Page {
        Page {
            title: title.to_string(),
            header: String::new(),
            body: String::new(),
        }
    }

    /// A page with the navigation bar for this administrator; `current` is the active link.
    pub fn new(title: &str, current: &str, admin: &AdminAccount, csrf: &str) -> Page {
        let links: String = super::access::nav_for(admin.role)
            .into_iter()
            .map(|(href, label)| {
                let cur = if href == current {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                format!("<a href=\"{href}\"{cur}>{}</a>", esc(label))
            })
            .collect();
        let header = format!(
            "<header><div class=\"bar\"><a class=\"brand\" href=\"/console\">Muster</a>\
             <nav aria-label=\"Main\">{links}</nav>\
             <div class=\"who\"><span>{} · {}</span>\
             <form method=\"post\" action=\"/console/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button class=\"secondary\" type=\"submit\">Sign out</button></form></div></div></header>",
            esc(&admin.username),
            esc(admin.role.title()),
            esc(csrf)
        );
        Page {
            title: title.to_string(),
            header,
            body: String::new(),
        }
    }

    /// Sets the content (already HTML).
    pub fn body(mut self, html: String) -> Page {
        self.body = if html.starts_with("<main") {
            html
        } else {
            format!("<main>{html}</main>")
        };
        self
    }

    /// The whole document.
    pub fn render(&self) -> axum::response::Html<String> {
        axum::response::Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · Muster</title><link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
             <script src=\"/console/assets/console.js\" defer></script></head>\
             <body>{}{}</body></html>",
            esc(&self.title),
            self.header,
            self.body
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
