//! Configuration: defaults < `muster.toml` < `MUSTER_*` environment variables < command-line
//! flags. One struct, read once, passed down.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines, for a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting Muster reads.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the server listens on.
    pub listen_addr: String,
    /// Database URL: `sqlite://path` or `postgres://...`. Default: a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Where Muster keeps its SQLite database.
    pub data_dir: PathBuf,
    /// The external base URL (scheme, host, port, path prefix) used in SCIM `meta.location` and
    /// the SCIM base URLs Muster prints. Default: `http://{listen_addr}`.
    pub public_url: Option<String>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// Log filter, such as `info` or `muster=debug,sqlx=warn`.
    pub log_level: String,
    /// The environment commands act on.
    pub environment: String,
    /// The largest SCIM page.
    pub max_page_size: u64,
    /// PostgreSQL pool size.
    pub pg_max_connections: u32,
    /// SQLite read connections.
    pub sqlite_readers: u32,
    /// SQLite: fsync on every commit (survives power loss) rather than at checkpoints. On by
    /// default; group commit keeps its cost low.
    pub sqlite_synchronous_full: bool,
    /// Seconds between two runs of the deactivation scheduler.
    pub scheduler_interval_secs: u64,
    /// Days sync log entries are kept.
    pub sync_log_retention_days: u32,
    /// Days events are kept in the feed (`/api/v1/events`); an older cursor gets 410.
    pub event_retention_days: u32,
    /// Allow webhook URLs to loopback, link-local and private addresses.
    pub allow_private_webhook_urls: bool,
    /// Seconds before a failed webhook delivery's first retry; each next one doubles.
    pub webhook_retry_base_secs: i64,
    /// The longest wait between two webhook attempts (seconds).
    pub webhook_retry_max_secs: i64,
    /// After failing this long (seconds), a webhook endpoint is marked failing and stops.
    pub webhook_give_up_after_secs: i64,
    /// Events per webhook delivery.
    pub webhook_batch_size: u64,
    /// How long an instance holds a webhook endpoint for one delivery (seconds): when it dies
    /// mid-delivery, another instance retries after this.
    pub webhook_lease_secs: i64,
    /// PEM certificate chain: with `tls_key_file`, `muster serve` speaks HTTPS itself.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// The longest a request may take, reading its body included (seconds).
    pub request_timeout_secs: u64,
    /// The longest a connection may take to send a request's headers, and stay idle between
    /// requests (seconds).
    pub header_timeout_secs: u64,
    /// Average SCIM requests a second per provider (0: no limit).
    pub rate_limit_per_second: u32,
    /// The largest burst of SCIM requests per provider.
    pub rate_limit_burst: u32,
    /// Average API requests a second per API token or application credential (0: no limit).
    pub api_rate_limit_per_second: u32,
    /// The largest burst of API requests per credential.
    pub api_rate_limit_burst: u32,
    /// Failed authentications a minute per client address (0: no limit).
    pub auth_failures_per_minute: u32,
    /// Reverse proxies and load balancers (addresses or networks, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client: the address the failed-authentication limits count.
    pub trusted_proxies: Vec<String>,
    /// How long a provider token found valid is trusted before the database is read again
    /// (milliseconds; 0: every request reads it). Revocations made through this server apply
    /// at once whatever the value; this bounds how late another server or the CLI is seen.
    pub token_cache_ms: u64,
    /// SMTP server for notices (docs/notifications.md); no email without it.
    pub smtp_host: Option<String>,
    /// Its port.
    pub smtp_port: u16,
    /// `starttls` (upgrade, required), `tls` (implicit TLS, usually port 465) or `none`.
    pub smtp_tls: SmtpTls,
    /// SMTP user name, when the server wants one.
    pub smtp_username: Option<String>,
    /// A file holding the SMTP password (or set `MUSTER_SMTP_PASSWORD`).
    pub smtp_password_file: Option<PathBuf>,
    /// The From address of notices.
    pub mail_from: String,
    /// The daily report's local time, `HH:MM`.
    pub report_time: String,
    /// The time zone of the report time (IANA name, such as `Europe/Paris`).
    pub time_zone: String,
    /// A provider that sent nothing for this many hours is "silent".
    pub provider_silence_hours: i64,
    /// Error emails go out at most this often per provider (minutes).
    pub error_email_interval_mins: i64,
    /// Errors over the last hour above this share of a provider's entries: "erroring".
    pub provider_error_rate: f64,
    /// Seconds before the first retry of a message the SMTP server did not take; doubling.
    pub mail_retry_base_secs: i64,
    /// A message not sent after this many seconds is given up on.
    pub mail_give_up_after_secs: i64,
    /// The identity provider administrators sign in to the console with (its issuer URL); off
    /// without it.
    pub oidc_issuer: Option<String>,
    /// Muster's client id there.
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (or set `MUSTER_OIDC_CLIENT_SECRET`).
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Scopes asked for.
    pub oidc_scopes: Vec<String>,
    /// The ID token claim whose values map to roles.
    pub oidc_role_claim: String,
    /// Claim values and the roles they give: `{ "muster-admins" = "customer-cloud-admin" }`.
    pub oidc_roles: std::collections::BTreeMap<String, String>,
    /// The provider's name on the sign-in button.
    pub oidc_label: String,
    /// `everyone` (any administrator with a password) or `break-glass` (only the accounts in
    /// `break_glass_accounts`).
    pub password_sign_in: String,
    /// Usernames that may still sign in with a password when `password_sign_in = "break-glass"`.
    pub break_glass_accounts: Vec<String>,
}

/// How Muster talks TLS to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (refused if the server cannot).
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No TLS (a relay on the same host or network only).
    None,
}

impl Config {
    /// The daily report's time as (hour, minute).
    pub fn report_at(&self) -> anyhow::Result<(i8, i8)> {
        let bad = || anyhow::anyhow!("report_time is HH:MM (24-hour), not '{}'", self.report_time);
        let (h, m) = self.report_time.split_once(':').ok_or_else(bad)?;
        let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok((h, m))
    }

    /// The roles `oidc_roles` gives, checked.
    pub fn oidc_roles(&self) -> anyhow::Result<Vec<(String, muster_core::model::AdminRole)>> {
        self.oidc_roles
            .iter()
            .map(|(group, role)| {
                let parsed = muster_core::model::AdminRole::parse(&role.replace('-', "_"));
                parsed.map(|r| (group.clone(), r)).ok_or_else(|| {
                    anyhow::anyhow!("oidc_roles: '{role}' is not customer-cloud-admin, identity-management-admin or audit-log-viewer")
                })
            })
            .collect()
    }

    /// The OIDC client secret: `MUSTER_OIDC_CLIENT_SECRET`, else `oidc_client_secret_file`.
    pub fn oidc_client_secret(&self) -> anyhow::Result<Option<String>> {
        if let Ok(s) = std::env::var("MUSTER_OIDC_CLIENT_SECRET") {
            return Ok(Some(s));
        }
        match &self.oidc_client_secret_file {
            Some(path) => Ok(Some(
                std::fs::read_to_string(path)
                    .with_context(|| {
                        format!("cannot read oidc_client_secret_file {}", path.display())
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            )),
            None => Ok(None),
        }
    }

    /// The SMTP password: `MUSTER_SMTP_PASSWORD`, else `smtp_password_file`.
    pub fn smtp_password(&self) -> anyhow::Result<Option<String>> {
        if let Ok(p) = std::env::var("MUSTER_SMTP_PASSWORD") {
            return Ok(Some(p));
        }
        match &self.smtp_password_file {
            Some(path) => Ok(Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read smtp_password_file {}", path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            )),
            None => Ok(None),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("./muster-data"),
            public_url: None,
            log_format: LogFormat::Human,
            log_level: "info".into(),
            environment: "default".into(),
            max_page_size: 1000,
            pg_max_connections: 16,
            sqlite_readers: 4,
            sqlite_synchronous_full: true,
            scheduler_interval_secs: 5,
            sync_log_retention_days: 90,
            event_retention_days: 90,
            allow_private_webhook_urls: false,
            webhook_retry_base_secs: 5,
            webhook_retry_max_secs: 3600,
            webhook_give_up_after_secs: 3 * 86_400,
            webhook_batch_size: 1,
            webhook_lease_secs: 60,
            tls_cert_file: None,
            tls_key_file: None,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            api_rate_limit_per_second: 100,
            api_rate_limit_burst: 1000,
            trusted_proxies: Vec::new(),
            auth_failures_per_minute: 10,
            token_cache_ms: 1000,
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: None,
            smtp_password_file: None,
            mail_from: "Muster <muster@localhost>".into(),
            report_time: "07:00".into(),
            time_zone: "UTC".into(),
            provider_silence_hours: 48,
            error_email_interval_mins: 15,
            provider_error_rate: 0.1,
            mail_retry_base_secs: 30,
            mail_give_up_after_secs: 86_400,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret_file: None,
            oidc_scopes: vec![
                "openid".into(),
                "email".into(),
                "profile".into(),
                "groups".into(),
            ],
            oidc_role_claim: "groups".into(),
            oidc_roles: std::collections::BTreeMap::new(),
            oidc_label: "your identity provider".into(),
            password_sign_in: "everyone".into(),
            break_glass_accounts: Vec::new(),
        }
    }
}

/// Hides a password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("environment", &self.environment)
            .field("max_page_size", &self.max_page_size)
            .finish_non_exhaustive()
    }
}

/// Values given on the command line or in `MUSTER_*` variables (clap reads both).
#[derive(Debug, Default, Clone, clap::Args)]
// Under their own heading in every command's help, after the command's own options (clap would
// otherwise interleave the two lists).
#[command(next_help_heading = "Global options")]
pub struct Overrides {
    /// Configuration file [default: ./muster.toml if it exists].
    #[arg(long, global = true, env = "MUSTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "MUSTER_LISTEN_ADDR", value_name = "ADDR")]
    pub listen_addr: Option<String>,
    /// Database URL (sqlite://FILE or postgres://...) [default: SQLite in the data directory].
    #[arg(
        long,
        global = true,
        env = "MUSTER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Data directory [default: ./muster-data].
    #[arg(long, global = true, env = "MUSTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// External base URL, as identity providers reach Muster.
    #[arg(long, global = true, env = "MUSTER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "MUSTER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter (such as info, debug, muster=debug).
    #[arg(long, global = true, env = "MUSTER_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Environment to act on [default: default].
    #[arg(long, global = true, env = "MUSTER_ENVIRONMENT", value_name = "SLUG")]
    pub environment: Option<String>,
}

impl Config {
    /// Reads the configuration file (if any) and applies the overrides.
    pub fn load(o: &Overrides) -> anyhow::Result<Config> {
        let mut cfg = match &o.config {
            Some(path) => Self::from_file(path)?,
            None if Path::new("muster.toml").exists() => Self::from_file(Path::new("muster.toml"))?,
            None => Config::default(),
        };
        if let Some(v) = &o.listen_addr {
            cfg.listen_addr = v.clone();
        }
        if let Some(v) = &o.database_url {
            cfg.database_url = Some(v.clone());
        }
        if let Some(v) = &o.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &o.public_url {
            cfg.public_url = Some(v.clone());
        }
        if let Some(v) = o.log_format {
            cfg.log_format = v;
        }
        if let Some(v) = &o.log_level {
            cfg.log_level = v.clone();
        }
        if let Some(v) = &o.environment {
            cfg.environment = v.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    /// `trusted_proxies`, read: an address stands for itself alone.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|t| {
                let t = t.trim();
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "trusted_proxies: '{t}' is neither an address nor a network (such as 10.0.0.0/8)"
                        )
                    })
            })
            .collect()
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.trusted_proxies()?;
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("public_url must start with http:// or https://, not '{url}'");
            }
        }
        if self.webhook_retry_base_secs < 1
            || self.webhook_retry_max_secs < self.webhook_retry_base_secs
            || self.webhook_give_up_after_secs < 1
        {
            bail!("webhook_retry_base_secs is at least 1, webhook_retry_max_secs at least that, webhook_give_up_after_secs at least 1");
        }
        self.report_at()?;
        self.oidc_roles()?;
        if self.oidc_issuer.is_some() != self.oidc_client_id.is_some() {
            bail!("oidc_issuer and oidc_client_id go together");
        }
        if self.oidc_issuer.is_some() && self.oidc_roles.is_empty() {
            bail!("oidc_roles maps no group to a role: nobody could sign in with the identity provider");
        }
        match self.password_sign_in.as_str() {
            "everyone" => {}
            "break-glass" if !self.break_glass_accounts.is_empty() => {}
            "break-glass" => bail!("password_sign_in = \"break-glass\" needs break_glass_accounts"),
            other => bail!("password_sign_in is everyone or break-glass, not '{other}'"),
        }
        if jiff::tz::TimeZone::get(&self.time_zone).is_err() {
            bail!(
                "time_zone '{}' is not a known IANA time zone (such as Europe/Paris)",
                self.time_zone
            );
        }
        if self.smtp_host.is_some() && self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            bail!(
                "mail_from '{}' is not an address (such as Muster <muster@example.com>)",
                self.mail_from
            );
        }
        if self.provider_silence_hours < 1
            || self.error_email_interval_mins < 1
            || !(0.0..=1.0).contains(&self.provider_error_rate)
            || self.mail_retry_base_secs < 1
            || self.mail_give_up_after_secs < 1
        {
            bail!("provider_silence_hours, error_email_interval_mins, mail_retry_base_secs and mail_give_up_after_secs are at least 1; provider_error_rate is 0 to 1");
        }
        if !(12..=3600).contains(&self.webhook_lease_secs) {
            // Longer than the 10-second request timeout, so a live sender never loses its lease.
            bail!("webhook_lease_secs is 12 to 3600");
        }
        if !(1..=100).contains(&self.webhook_batch_size) {
            bail!("webhook_batch_size is 1 to 100");
        }
        if self.event_retention_days == 0 {
            bail!("event_retention_days must be at least 1");
        }
        if self.sync_log_retention_days == 0 {
            bail!("sync_log_retention_days must be at least 1");
        }
        if self.scheduler_interval_secs == 0 {
            bail!("scheduler_interval_secs must be at least 1");
        }
        if self.max_page_size == 0 {
            bail!("max_page_size must be at least 1");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            bail!("tls_cert_file and tls_key_file go together: set both, or neither");
        }
        if self.token_cache_ms > 60_000 {
            bail!("token_cache_ms must be at most 60000 (one minute)");
        }
        if self.request_timeout_secs == 0 || self.header_timeout_secs == 0 {
            bail!("request_timeout_secs and header_timeout_secs must be at least 1");
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("muster.db").display()),
        }
    }

    /// The public base URL in force, without a trailing slash.
    pub fn public_url(&self) -> String {
        let scheme = if self.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        let url = match &self.public_url {
            Some(url) => url.clone(),
            None => format!("{scheme}://{}", self.listen_addr),
        };
        url.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://muster:s3cret@db:5432/muster"),
            "postgres://muster:***@db:5432/muster"
        );
        assert_eq!(
            redact_url("postgres://muster@db/muster"),
            "postgres://muster@db/muster"
        );
        let cfg = Config {
            database_url: Some("postgres://u:hunter2@h/d".into()),
            ..Config::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let cfg: Config =
            toml::from_str("trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]")
                .unwrap_or_default();
        let nets = cfg.trusted_proxies().unwrap_or_default();
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains(
            &"192.0.2.7"
                .parse::<std::net::IpAddr>()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(!nets[1].contains(
            &"192.0.2.8"
                .parse::<std::net::IpAddr>()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
        ));
        let bad: Config =
            toml::from_str("trusted_proxies = [\"proxy.internal\"]").unwrap_or_default();
        let err = bad
            .validate()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("'proxy.internal' is neither an address nor a network"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("listen_adr = \"x\"").is_err());
        let cfg: Config = toml::from_str("listen_addr = \"0.0.0.0:9000\"").unwrap_or_default();
        assert_eq!(cfg.listen_addr, "0.0.0.0:9000");
        assert_eq!(cfg.public_url(), "http://0.0.0.0:9000");
    }
}
