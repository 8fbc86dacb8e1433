//! What every command shares: durations read and written for people, JSON output, and the
//! actor the sync log records for the CLI.

use muster_core::model::Actor;
use muster_core::words::count;

/// Reads `0`, `90`, `30s`, `15m`, `2h`, `7d` as seconds.
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 15m, 2h or 7d"))?;
    let factor = match unit.trim() {
        "s" | "sec" | "secs" | "seconds" => 1,
        "m" | "min" | "mins" | "minutes" => 60,
        "h" | "hours" => 3600,
        "d" | "days" => 86_400,
        _ => return Err(format!("'{text}' is not a duration such as 15m, 2h or 7d")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// A point in time as people write one on a command line: an RFC 3339 time, a date (midnight
/// UTC), or how long before `now` (`30m`, `24h`, `7d`; a unit is required, so that a number alone
/// is not taken for seconds ago).
pub fn parse_time(
    text: &str,
    now: muster_core::Timestamp,
) -> Result<muster_core::Timestamp, String> {
    use muster_core::Timestamp;
    let t = text.trim();
    if let Some(at) = Timestamp::parse_rfc3339(t) {
        return Ok(at);
    }
    if t.len() == 10 {
        if let Some(at) = Timestamp::parse_rfc3339(&format!("{t}T00:00:00Z")) {
            return Ok(at);
        }
    }
    if t.ends_with(|c: char| c.is_ascii_alphabetic()) {
        if let Ok(secs) = parse_duration_secs(t) {
            return Ok(now.plus_secs(-secs));
        }
    }
    Err(format!(
        "'{text}' is not a time: give an RFC 3339 time (2027-01-01T00:00:00Z), a date \
         (2027-01-01, midnight UTC) or how long ago (30m, 24h, 7d)"
    ))
}

/// A duration in words, for people.
pub fn describe_secs(secs: i64) -> String {
    match secs {
        0 => "at once".into(),
        s if s % 86_400 == 0 => count((s / 86_400).unsigned_abs(), "day", "days"),
        s if s % 3600 == 0 => count((s / 3600).unsigned_abs(), "hour", "hours"),
        s if s % 60 == 0 => count((s / 60).unsigned_abs(), "minute", "minutes"),
        s => count(s.unsigned_abs(), "second", "seconds"),
    }
}

/// Prints a value as indented JSON.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The sync log's actor for a CLI command: `cli:` and the operating-system user.
pub(crate) fn cli_actor() -> Actor {
    let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    Actor::Admin {
        name: format!("cli:{who}"),
    }
}

/// Something a command names by its id or by its name: the text as typed, resolved against the
/// database when the command runs. `$what` is what clap says of empty text.
macro_rules! named_ref {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(String);

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                if s.trim().is_empty() {
                    return Err($what.into());
                }
                Ok($name(s.to_string()))
            }
        }
    };
}
pub(crate) use named_ref;

named_ref!(
    /// A provider named on the command line: by id, or by name (compared without case; names
    /// are unique in an environment).
    ProviderRef,
    "a provider's id or name"
);

/// The id `text` names among `items`: the id it is, or the id of the item it names (`name`),
/// compared without case.
pub(crate) fn id_or_name<T, I: std::str::FromStr>(
    text: &str,
    items: &[T],
    name: impl Fn(&T) -> &str,
    id: impl Fn(&T) -> I,
) -> Option<I> {
    if let Ok(v) = text.parse() {
        return Some(v);
    }
    let wanted = muster_core::model::name_key(text);
    items
        .iter()
        .find(|x| muster_core::model::name_key(name(x)) == wanted)
        .map(id)
}

/// What there is, for an answer that names what was not found: "a, b", or "none yet".
pub(crate) fn listed<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none yet".into()
    } else {
        names.join(", ")
    }
}

impl ProviderRef {
    /// The provider's id: the text itself, or the id of the provider with that name.
    pub async fn resolve(
        &self,
        m: &muster_core::Muster,
        env: muster_core::ids::EnvironmentId,
    ) -> anyhow::Result<muster_core::ids::ProviderId> {
        if let Ok(id) = self.0.parse() {
            return Ok(id);
        }
        let providers = m.list_providers(env).await?;
        id_or_name(&self.0, &providers, |p| &p.name, |p| p.id).ok_or_else(|| {
            anyhow::anyhow!(
                "no provider has the id or name \"{}\" (providers: {})",
                self.0,
                listed(providers.iter().map(|p| p.name.as_str()))
            )
        })
    }
}

named_ref!(
    /// An organization named on the command line: by id, by its name when no other organization
    /// has it, or by the end of its path ("Acme / Research") when several do; names compared
    /// without case. Names are unique only among siblings.
    OrgRef,
    "an organization's id, name or path"
);

impl OrgRef {
    /// The organization's id: the text itself, or the id of the one organization it names.
    pub async fn resolve(
        &self,
        m: &muster_core::Muster,
        env: muster_core::ids::EnvironmentId,
    ) -> anyhow::Result<muster_core::ids::OrgId> {
        use muster_core::model::name_key;
        if let Ok(id) = self.0.parse() {
            return Ok(id);
        }
        let orgs = m.list_orgs(env, None).await?;
        let whole = name_key(&self.0);
        let steps: Vec<String> = self.0.split('/').map(name_key).collect();
        let found: Vec<_> = orgs
            .iter()
            .filter(|o| {
                let named = o.path.last().is_some_and(|n| name_key(n) == whole);
                let ends = steps.len() > 1
                    && o.path.len() >= steps.len()
                    && o.path[o.path.len() - steps.len()..]
                        .iter()
                        .map(|n| name_key(n))
                        .eq(steps.iter().cloned());
                named || ends
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one.org.id),
            [] => anyhow::bail!(
                "no organization has the id, name or path \"{}\" (`muster org list` shows them)",
                self.0
            ),
            many => anyhow::bail!(
                "\"{}\" names {} organizations: {}; give its id, or its parent's name and its own (\"Parent / Name\")",
                self.0,
                many.len(),
                many.iter()
                    .map(|o| format!("{} ({})", o.path.join(" / "), o.org.id))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// [`OrgRef::resolve`] of a flag that may be left out.
    pub async fn resolve_opt(
        this: Option<&Self>,
        m: &muster_core::Muster,
        env: muster_core::ids::EnvironmentId,
    ) -> anyhow::Result<Option<muster_core::ids::OrgId>> {
        match this {
            Some(o) => Ok(Some(o.resolve(m, env).await?)),
            None => Ok(None),
        }
    }
}

named_ref!(
    /// A role named on the command line: by id, or by name (compared without case; names are
    /// unique in an environment).
    RoleRef,
    "a role's id or name"
);

impl RoleRef {
    /// The role's id: the text itself, or the id of the role with that name.
    pub async fn resolve(
        &self,
        m: &muster_core::Muster,
        env: muster_core::ids::EnvironmentId,
    ) -> anyhow::Result<muster_core::ids::RoleId> {
        let mut ids = Self::resolve_all(std::slice::from_ref(self), m, env).await?;
        ids.pop()
            .ok_or_else(|| anyhow::anyhow!("no role \"{}\"", self.0))
    }

    /// The ids of the roles named, in order; one unknown name fails them all.
    pub async fn resolve_all(
        refs: &[Self],
        m: &muster_core::Muster,
        env: muster_core::ids::EnvironmentId,
    ) -> anyhow::Result<Vec<muster_core::ids::RoleId>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let roles = m.list_roles(env).await?;
        refs.iter()
            .map(|r| {
                id_or_name(&r.0, &roles, |x| &x.name, |x| x.id).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no role has the id or name \"{}\" (`muster role list` shows them)",
                        r.0
                    )
                })
            })
            .collect()
    }
}

/// The administrator token or application credential a command names among `tokens`: by id, by
/// the prefix its list shows (`msa_…`, `mapp_…`), or by its label (an application's name),
/// compared without case. `what` names the kind in the answer ("application credential").
pub fn pick_admin_token(
    tokens: &[muster_core::model::AdminToken],
    text: &str,
    what: &str,
) -> anyhow::Result<muster_core::model::AdminToken> {
    let text = text.trim().trim_end_matches('…');
    let wanted = muster_core::model::name_key(text);
    let mut found: Vec<_> = tokens
        .iter()
        .filter(|t| {
            text.parse() == Ok(t.id)
                || t.prefix == text
                || muster_core::model::name_key(&t.label) == wanted
        })
        .collect();
    // A name a revoked credential also had means the one still in use.
    if found.len() > 1 && found.iter().filter(|t| t.revoked_at.is_none()).count() == 1 {
        found.retain(|t| t.revoked_at.is_none());
    }
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!("no {what} has the id, prefix or name \"{text}\""),
        many => anyhow::bail!(
            "{} of them are named \"{text}\"; give the id of the one you mean: {}",
            many.len(),
            many.iter()
                .map(|t| format!("{} ({}…)", t.id, t.prefix))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An error and its causes on one line, as `{:#}` writes them, less the causes whose text the
/// line already holds: a database error's message repeats its source's, and the source its own
/// ("… Connection refused (os error 111): Connection refused (os error 111)").
pub fn describe_error(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_people_write_them() {
        let now = muster_core::Timestamp::parse_rfc3339("2027-03-10T12:00:00Z")
            .unwrap_or_else(|| panic!("a time"));
        let at = |t: &str| parse_time(t, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2027-01-01T08:30:00+02:00"),
            Ok("2027-01-01T06:30:00.000Z".into())
        );
        assert_eq!(at("2027-01-01"), Ok("2027-01-01T00:00:00.000Z".into()));
        assert_eq!(at("24h"), Ok("2027-03-09T12:00:00.000Z".into()));
        assert_eq!(at(" 7d "), Ok("2027-03-03T12:00:00.000Z".into()));
        assert_eq!(at("30m"), Ok("2027-03-10T11:30:00.000Z".into()));
        for bad in ["90", "yesterday", "2027-13-01", "7 weeks", ""] {
            let said = at(bad).err().unwrap_or_default();
            assert!(said.contains("is not a time"), "{bad}: {said}");
        }
    }

    #[derive(Debug)]
    struct Wrapped(&'static str, Option<std::io::Error>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn repeated_causes_are_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = anyhow::Error::new(Wrapped(
            "database error: error communicating with database: Connection refused",
            Some(io),
        ))
        .context("cannot open the database postgres://db/x");
        assert_eq!(
            describe_error(&e),
            "cannot open the database postgres://db/x: database error: error communicating with database: Connection refused"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(describe_error(&plain), "outer: inner");
    }
}
