//! Notices as email (docs/notifications.md): each queued notice's kind and data become a subject
//! and one view ([`Notice`]: a title, an introduction, sections of lines, a link into the
//! console), written as plain text and as HTML by the two templates in `templates/mail/`. Data
//! comes from the queue; nothing secret is ever in it.

use askama::Template;
use muster_core::model::Mail;
use muster_core::notify::kinds;
use serde_json::Value;

/// A section of a notice.
pub struct Section {
    /// Its heading.
    pub heading: String,
    /// Its lines.
    pub lines: Vec<String>,
}

/// What a notice says, whatever its form.
pub struct Notice {
    title: String,
    intro: String,
    sections: Vec<Section>,
    link_label: String,
    link: String,
    console: String,
    settings: String,
}

#[derive(Template)]
#[template(path = "mail/notice.txt")]
struct Text<'a> {
    title: &'a str,
    intro: &'a str,
    sections: &'a [Section],
    link_label: &'a str,
    link: &'a str,
    console: &'a str,
    settings: &'a str,
}

#[derive(Template)]
#[template(path = "mail/notice.html")]
struct Html<'a> {
    title: &'a str,
    intro: &'a str,
    sections: &'a [Section],
    link_label: &'a str,
    link: &'a str,
    console: &'a str,
    settings: &'a str,
}

/// A notice ready to send.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// `(message, count)` pairs as lines.
fn counted(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|pair| {
            let count = pair[1].as_u64().unwrap_or(0);
            format!(
                "{} ({} time{})",
                pair[0].as_str().unwrap_or(""),
                count,
                if count == 1 { "" } else { "s" }
            )
        })
        .collect()
}

/// The words for what a sync-log action counts, in a report.
fn counted_action(action: &str) -> Option<&'static str> {
    Some(match action {
        "user.created" => "users created",
        "user.updated" => "users updated",
        "user.blocked" => "users blocked",
        "user.deactivated" => "users deactivated",
        "user.reactivated" => "users reactivated",
        "user.removed" => "users removed by the provider",
        "user.moved" => "organization moves by mapping",
        "group.created" => "groups created",
        "group.renamed" => "groups renamed",
        "group.deleted" => "groups deleted",
        "group.members_added" => "membership changes (members added)",
        "group.members_removed" => "membership changes (members removed)",
        _ => return None,
    })
}

impl Notice {
    /// The view of a queued notice; `None` for a kind this version does not know.
    pub fn of(m: &Mail, public_url: &str) -> Option<(String, Notice)> {
        let console = format!("{public_url}/console");
        let d = &m.payload;
        let provider_link = |id: &str| format!("{console}/providers/{id}/guard");
        let (subject, title, intro, sections, link_label, link) = match m.kind.as_str() {
            kinds::TEST => (
                "Muster test message".to_string(),
                "Muster can send you email".to_string(),
                format!(
                    "This is a test message, queued at {}. Notices from Muster will reach this address.",
                    s(d, "at")
                ),
                Vec::new(),
                "Open the console".to_string(),
                console.clone(),
            ),
            kinds::ADMIN_CHANGED => {
                let what = match s(d, "change").as_str() {
                    "created" => format!("was added as {}", s(d, "role")),
                    "role_changed" => format!("was given the role {} (was {})", s(d, "role"), s(d, "before")),
                    _ => format!("was removed (had the role {})", s(d, "role")),
                };
                (
                    format!("Muster: administrator {} {}", s(d, "admin"), what),
                    "An administrator's access changed".to_string(),
                    format!(
                        "The administrator {} {} at {}, by {}. If you did not expect this, check the Administrators page and the sync log.",
                        s(d, "admin"), what, s(d, "at"), s(d, "by")
                    ),
                    Vec::new(),
                    "Open Administrators".to_string(),
                    format!("{console}/admins"),
                )
            }
            kinds::GUARD_TRIPPED => (
                format!("Muster: deactivations from {} are held", s(d, "provider")),
                format!("{} turned off {} users: their deactivations are held", s(d, "provider"), n(d, "turnedOff")),
                format!(
                    "{} turned off {} of its about {} active users within {} minutes (the guard trips above {}% and {} users). Muster keeps accepting its requests and has blocked these users, but holds every deactivation from it until an administrator releases the hold or restores the users.",
                    s(d, "provider"), n(d, "turnedOff"), n(d, "activeBefore"), n(d, "windowSecs") / 60,
                    n(d, "percent"), n(d, "minUsers")
                ),
                vec![Section {
                    heading: "What to do".into(),
                    lines: vec![
                        "If the provider was misconfigured (an application unassigned from a group, say): fix it there, then restore the users.".into(),
                        "If the users really left: release the hold, and the deactivations proceed on their schedule.".into(),
                    ],
                }],
                "Review the held users".to_string(),
                provider_link(&s(d, "providerId")),
            ),
            kinds::ERRORS => (
                format!("Muster: {} provisioning error{} from {}", n(d, "total"), if n(d, "total") == 1 { "" } else { "s" }, s(d, "provider")),
                format!("Provisioning errors from {}", s(d, "provider")),
                format!("Between {} and {}, Muster could not carry out these changes from {}:", s(d, "from"), s(d, "to"), s(d, "provider")),
                vec![Section { heading: "Errors".into(), lines: counted(&d["errors"]) }],
                "See them in the sync log".to_string(),
                format!("{console}/sync-log?provider={}&result=error", s(d, "providerId")),
            ),
            kinds::REPORT => {
                let mut sections = Vec::new();
                for p in d["providers"].as_array().into_iter().flatten() {
                    let mut lines = Vec::new();
                    if p["held"] == true {
                        lines.push("DEACTIVATIONS HELD by the mass-deactivation guard".into());
                    }
                    if p["silent"] == true {
                        lines.push(format!("Silent: no request since {}", if s(p, "lastRequestAt").is_empty() { "it was added".into() } else { s(p, "lastRequestAt") }));
                    }
                    if let Some(counts) = p["counts"].as_object() {
                        for (action, count) in counts {
                            if let Some(words) = counted_action(action) {
                                lines.push(format!("{words}: {count}"));
                            }
                        }
                    }
                    lines.push(format!("errors: {}", n(p, "errors")));
                    for e in counted(&p["topErrors"]) {
                        lines.push(format!("error: {e}"));
                    }
                    if n(p, "errors") > 0 {
                        lines.push(format!("errors in the sync log: {console}/sync-log?provider={}&result=error", s(p, "id")));
                    }
                    lines.push(format!("deactivations pending: {}", n(p, "pendingTotal")));
                    for pair in p["pending"].as_array().into_iter().flatten() {
                        lines.push(format!("pending: {} at {}", pair[0].as_str().unwrap_or(""), pair[1].as_str().unwrap_or("")));
                    }
                    lines.push(format!("last request: {}", if s(p, "lastRequestAt").is_empty() { "none".into() } else { s(p, "lastRequestAt") }));
                    sections.push(Section { heading: s(p, "name"), lines });
                }
                (
                    format!("Muster directory sync report: {} error{}", n(d, "errors"), if n(d, "errors") == 1 { "" } else { "s" }),
                    "Directory sync report".to_string(),
                    format!("What each provider changed from {} to {} ({}).", s(d, "from"), s(d, "to"), s(d, "timeZone")),
                    sections,
                    "Open the sync log".to_string(),
                    format!("{console}/sync-log"),
                )
            }
            _ => return None,
        };
        Some((
            subject,
            Notice {
                title,
                intro,
                sections,
                link_label,
                link,
                settings: format!("{console}/notifications"),
                console,
            },
        ))
    }

    /// Writes the notice as text and HTML.
    pub fn render(&self, subject: String) -> Result<Rendered, askama::Error> {
        let text = Text {
            title: &self.title,
            intro: &self.intro,
            sections: &self.sections,
            link_label: &self.link_label,
            link: &self.link,
            console: &self.console,
            settings: &self.settings,
        }
        .render()?;
        let html = Html {
            title: &self.title,
            intro: &self.intro,
            sections: &self.sections,
            link_label: &self.link_label,
            link: &self.link,
            console: &self.console,
            settings: &self.settings,
        }
        .render()?;
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

/// A queued notice as email; `None` for a kind this version does not know.
pub fn render(m: &Mail, public_url: &str) -> Option<Rendered> {
    let (subject, notice) = Notice::of(m, public_url)?;
    notice.render(subject).ok()
}
