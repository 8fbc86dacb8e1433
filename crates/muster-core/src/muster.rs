//! [`Muster`], the one entry point every interface (SCIM, the API, the console, the CLI, the
//! background tasks) calls. It holds the store, the clock, the settings and what this process
//! caches; the operations themselves live in the module of the rule they carry out.

use crate::auth::cache::AuthCache;
use crate::clock::Clock;
use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::OrgId;
use crate::ids::ProviderId;
use crate::ids::RoleId;
use crate::model::Environment;
use crate::model::Org;
use crate::model::OrgStatus;
use crate::model::Role;
use crate::model::DEFAULT_ENVIRONMENT;
use crate::model::DEFAULT_ORG_NAME;
use crate::model::ROOT_DEFAULT_ROLES;
use crate::model::STANDARD_ROLES;
use crate::store::Store;
use std::sync::Arc;

/// Settings the domain needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The external base URL, without a trailing slash (`https://muster.example.com`).
    pub public_url: String,
    /// The largest page a SCIM list returns (RFC 7644 §3.4.2.4; advertised as `filter.maxResults`).
    pub max_page_size: u64,
    /// How long a provider token found valid is trusted without reading the database again
    /// (zero: never). Changes this process makes apply at once; see [`crate::auth_cache`].
    pub token_cache_ttl: std::time::Duration,
    /// Webhook delivery (docs/webhooks.md).
    pub webhooks: WebhookSettings,
    /// Email notices and provider health (docs/notifications.md).
    pub notify: NotifySettings,
    /// Console sign-in (docs/console.md).
    pub console: ConsoleSettings,
}

/// Console sign-in (docs/console.md): which identity-provider groups give which role, and who
/// may still sign in with a password.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// A value of the identity provider's role claim, and the role it gives; the most powerful
    /// role among a person's values wins.
    pub oidc_roles: Vec<(String, crate::model::AdminRole)>,
    /// `Some`: password sign-in only for these usernames (break-glass accounts). `None`: for
    /// every administrator with a password.
    pub break_glass: Option<Vec<String>>,
}

/// Email notices and provider health (docs/notifications.md).
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Whether an SMTP server is configured: without one, nothing is queued.
    pub mail_enabled: bool,
    /// The daily report's local time (hour, minute).
    pub report_at: (i8, i8),
    /// The time zone of `report_at` (an IANA name such as `Europe/Paris`).
    pub time_zone: String,
    /// A provider that sent nothing for this long is "silent".
    pub silence_secs: i64,
    /// Error emails go out at most this often per provider.
    pub error_interval_secs: i64,
    /// Errors over the last hour above this share of a provider's sync-log entries: "erroring".
    pub error_rate: f64,
    /// The first retry of a message the SMTP server did not take; each next one doubles.
    pub mail_retry_base_secs: i64,
    /// A message not sent for this long is given up on.
    pub mail_give_up_after_secs: i64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            mail_enabled: false,
            report_at: (7, 0),
            time_zone: "UTC".into(),
            silence_secs: 48 * 3600,
            error_interval_secs: 15 * 60,
            error_rate: 0.1,
            mail_retry_base_secs: 30,
            mail_give_up_after_secs: 24 * 3600,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            max_page_size: 1000,
            token_cache_ttl: std::time::Duration::from_secs(1),
            webhooks: WebhookSettings::default(),
            notify: NotifySettings::default(),
            console: ConsoleSettings::default(),
        }
    }
}

/// How webhook deliveries are made and retried (docs/webhooks.md).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Allow URLs to loopback, link-local and private addresses (for tests and closed networks).
    pub allow_private_urls: bool,
    /// The first retry's delay; each next one doubles, with jitter.
    pub retry_base_secs: i64,
    /// The longest delay between two attempts.
    pub retry_max_secs: i64,
    /// After failing this long without a success, an endpoint is marked failing and stops.
    pub give_up_after_secs: i64,
    /// Events per delivery.
    pub batch_size: u64,
    /// How long an instance holds an endpoint for one delivery; another instance takes over
    /// after it when the holder died.
    pub lease_secs: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private_urls: false,
            retry_base_secs: 5,
            retry_max_secs: 3600,
            give_up_after_secs: 3 * 86_400,
            batch_size: 1,
            lease_secs: 60,
        }
    }
}

/// Muster's domain services.
#[derive(Debug, Clone)]
pub struct Muster {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Provider tokens recently found valid.
    pub(crate) auth: Arc<AuthCache>,
    /// What this process remembers to spare the database a statement: each environment's root
    /// organization (it never changes), and when it last recorded each provider's sync.
    pub(crate) memo: Arc<Memo>,
}

#[derive(Debug, Default)]
pub(crate) struct Memo {
    pub(crate) roots: std::sync::RwLock<std::collections::HashMap<EnvironmentId, OrgId>>,
    /// Each environment's organizations as last read for creating a user, with their tree's
    /// token ([`crate::store::OrgTreeRead`]).
    #[allow(clippy::type_complexity)]
    pub(crate) trees: std::sync::RwLock<
        std::collections::HashMap<EnvironmentId, (i64, Arc<crate::orgs::index::Orgs>)>,
    >,
    pub(crate) synced: std::sync::Mutex<std::collections::HashMap<ProviderId, Timestamp>>,
    /// Each provider's 429s counted rather than written one by one.
    pub(crate) refused: crate::synclog::bursts::Bursts,
    /// The event feed's head as last read by the one task that reads it for every waiting long
    /// poll ([`crate::events::feed`]), while any waits.
    pub(crate) feed_head: std::sync::Mutex<Option<tokio::sync::watch::Receiver<i64>>>,
}

impl Muster {
    /// A service over a store.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            store,
            clock,
            auth: Arc::new(AuthCache::new(settings.token_cache_ttl)),
            memo: Arc::default(),
            settings: Arc::new(settings),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The environment with this slug, if there is one.
    pub async fn find_environment(&self, slug: &str) -> CoreResult<Option<Environment>> {
        let mut tx = self.store.read().await?;
        Ok(tx.find_environment(slug).await?)
    }

    /// The environment with this slug, created with its root organization on first use.
    pub async fn ensure_environment(&self, slug: &str) -> CoreResult<Environment> {
        let mut tx = self.store.write().await?;
        let env = match tx.find_environment(slug).await? {
            Some(env) => env,
            None => {
                let env = Environment {
                    id: EnvironmentId::new(),
                    slug: slug.to_string(),
                    name: if slug == DEFAULT_ENVIRONMENT {
                        "Default".into()
                    } else {
                        slug.to_string()
                    },
                    created_at: self.now(),
                };
                tx.insert_environment(&env).await?;
                env
            }
        };
        if tx.find_root_org(env.id).await?.is_none() {
            let now = self.now();
            let org = Org {
                environment_id: env.id,
                id: OrgId::new(),
                parent_id: None,
                name: DEFAULT_ORG_NAME.into(),
                status: OrgStatus::Active,
                own_default_roles: true,
                created_at: now,
                updated_at: now,
            };
            tx.insert_org(&org).await?;
            let mut defaults = Vec::new();
            for (name, description) in STANDARD_ROLES {
                let role = Role {
                    environment_id: env.id,
                    id: RoleId::new(),
                    name: (*name).into(),
                    description: (*description).into(),
                    builtin: true,
                    created_at: now,
                };
                tx.insert_role(&role).await?;
                if ROOT_DEFAULT_ROLES.contains(name) {
                    defaults.push(role.id);
                }
            }
            tx.set_org_default_roles(env.id, org.id, &defaults).await?;
        }
        tx.commit().await?;
        Ok(env)
    }

    /// Forgets every cached token check: a provider or a token changed.
    pub(crate) fn credentials_changed(&self) {
        self.auth.clear();
    }
}
