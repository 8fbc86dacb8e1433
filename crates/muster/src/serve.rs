//! Opening the database and running the server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use muster_core::model::Environment;
use muster_core::{Muster, Settings, SystemClock};
use muster_store::{AnyStore, SqliteSettings};
use tokio::net::TcpListener;

use crate::config::{redact_url, Config};

/// An opened, migrated database with the services over it.
pub struct App {
    /// The database.
    pub store: AnyStore,
    /// The services.
    pub muster: Muster,
    /// The environment this process acts on.
    pub env: Environment,
}

/// Opens the database (creating the data directory for the default SQLite file), applies
/// migrations, and makes sure the environment exists.
pub async fn open(cfg: &Config) -> anyhow::Result<App> {
    let url = cfg.database_url();
    if cfg.database_url.is_none() {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
    }
    let sqlite = SqliteSettings {
        readers: cfg.sqlite_readers,
        synchronous_full: cfg.sqlite_synchronous_full,
    };
    let store = AnyStore::connect(&url, &sqlite, cfg.pg_max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    store
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    let settings = Settings {
        public_url: cfg.public_url(),
        max_page_size: cfg.max_page_size,
        token_cache_ttl: Duration::from_millis(cfg.token_cache_ms),
        webhooks: muster_core::muster::WebhookSettings {
            allow_private_urls: cfg.allow_private_webhook_urls,
            retry_base_secs: cfg.webhook_retry_base_secs,
            retry_max_secs: cfg.webhook_retry_max_secs,
            give_up_after_secs: cfg.webhook_give_up_after_secs,
            batch_size: cfg.webhook_batch_size,
            lease_secs: cfg.webhook_lease_secs,
        },
        notify: muster_core::muster::NotifySettings {
            mail_enabled: cfg.smtp_host.is_some(),
            report_at: cfg.report_at()?,
            time_zone: cfg.time_zone.clone(),
            silence_secs: cfg.provider_silence_hours * 3600,
            error_interval_secs: cfg.error_email_interval_mins * 60,
            error_rate: cfg.provider_error_rate,
            mail_retry_base_secs: cfg.mail_retry_base_secs,
            mail_give_up_after_secs: cfg.mail_give_up_after_secs,
        },
        console: muster_core::muster::ConsoleSettings {
            oidc_roles: cfg.oidc_roles()?,
            break_glass: (cfg.password_sign_in == "break-glass")
                .then(|| cfg.break_glass_accounts.clone()),
        },
    };
    let muster = Muster::new(store.shared(), Arc::new(SystemClock), settings);
    let env = muster
        .ensure_environment(&cfg.environment)
        .await
        .context("cannot prepare the environment")?;
    Ok(App { store, muster, env })
}

/// On a new installation, what to do next: the first provider, the first administrator. Said
/// once at start-up, only while there is none; run the commands with the server's settings.
async fn first_steps(app: &App, cfg: &Config) {
    if let Ok(providers) = app.muster.list_providers(app.env.id).await {
        if providers.is_empty() {
            tracing::info!(
                "no provisioning provider yet: add one with `muster provider add --name NAME`, \
                 which prints its SCIM base URL and token"
            );
        }
    }
    if cfg.oidc_issuer.is_none() {
        if let Ok(admins) = app.muster.list_admins(app.env.id).await {
            if admins.is_empty() {
                tracing::info!(
                    console = %format!("{}/console", cfg.public_url()),
                    "no administrator yet: create one with `muster admin create --username NAME` \
                     to sign in to the console"
                );
            }
        }
    }
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => Some(crate::http::load_tls(cert, key)?),
        _ => None,
    };
    let app = open(&cfg).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        public_url = %cfg.public_url(),
        database = app.muster.store.backend(),
        database_url = %redact_url(&cfg.database_url()),
        environment = %app.env.slug,
        "Muster is listening"
    );
    first_steps(&app, &cfg).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(run_scheduler(
        app.muster.clone(),
        Duration::from_secs(cfg.scheduler_interval_secs),
        stop_rx.clone(),
    ));
    let retention = tokio::spawn(run_retention(
        app.muster.clone(),
        cfg.sync_log_retention_days,
        cfg.event_retention_days,
        stop_rx.clone(),
    ));
    let maintenance = tokio::spawn(run_maintenance(app.muster.clone(), stop_rx.clone()));
    let webhooks = tokio::spawn(crate::webhook_sender::run(
        app.muster.clone(),
        Duration::from_millis(250),
        stop_rx.clone(),
    ));
    let mail = match crate::mail_sender::Smtp::from_config(&cfg)? {
        Some(smtp) => Some(tokio::spawn(crate::mail_sender::run(
            app.muster.clone(),
            smtp,
            Duration::from_secs(1),
            stop_rx.clone(),
        ))),
        None => None,
    };
    let notices = tokio::spawn(run_notices(
        app.muster.clone(),
        app.env.id,
        Duration::from_secs(cfg.scheduler_interval_secs),
        stop_rx.clone(),
    ));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = muster_web::limits::LimitSettings {
        per_second: cfg.rate_limit_per_second,
        burst: cfg.rate_limit_burst,
        api_per_second: cfg.api_rate_limit_per_second,
        api_burst: cfg.api_rate_limit_burst,
        auth_failures_per_minute: cfg.auth_failures_per_minute,
        request_timeout: Duration::from_secs(cfg.request_timeout_secs),
    };
    let mut state = muster_web::AppState::with_limits(app.muster.clone(), limits)
        .for_environment(&app.env.slug)
        .with_stop(stop_rx.clone())
        .with_trusted_proxies(cfg.trusted_proxies()?);
    if let (Some(issuer), Some(client_id)) = (&cfg.oidc_issuer, &cfg.oidc_client_id) {
        let oidc = muster_web::oidc::Oidc::new(muster_web::oidc::OidcConfig {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret: cfg.oidc_client_secret()?,
            scopes: cfg.oidc_scopes.clone(),
            role_claim: cfg.oidc_role_claim.clone(),
            label: cfg.oidc_label.clone(),
            public_url: cfg.public_url(),
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        state = state.with_oidc(oidc);
    }
    let router = muster_web::router(state);
    let opts = crate::http::ServerOptions {
        tls: tls.clone(),
        header_timeout: Duration::from_secs(cfg.header_timeout_secs),
        drain_timeout: Duration::from_secs(cfg.request_timeout_secs),
    };
    crate::http::serve(listener, router, opts, stop_rx)
        .await
        .context("the server failed")?;
    if let Err(e) = scheduler.await {
        tracing::warn!(error = %e, "the scheduler task ended abnormally");
    }
    if let Err(e) = retention.await {
        tracing::warn!(error = %e, "the retention task ended abnormally");
    }
    if let Err(e) = webhooks.await {
        tracing::warn!(error = %e, "the webhook sender ended abnormally");
    }
    if let Some(Err(e)) = match mail {
        Some(m) => Some(m.await),
        None => None,
    } {
        tracing::warn!(error = %e, "the mail task ended abnormally");
    }
    if let Err(e) = notices.await {
        tracing::warn!(error = %e, "the notice task ended abnormally");
    }
    if let Err(e) = maintenance.await {
        tracing::warn!(error = %e, "the maintenance task ended abnormally");
    }
    // No request runs any more: the refusals still being counted are written now.
    if let Err(e) = app.muster.write_counted_rejections(true).await {
        tracing::warn!(error = %e, "could not write the counted refusals to the sync log");
    }
    tracing::info!("Muster stopped");
    app.store.close().await;
    Ok(())
}

/// The deactivation scheduler: runs due deactivations at start-up (overdue ones from before a
/// restart) and then every `every`, until told to stop.
async fn run_scheduler(
    muster: Muster,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                match muster.run_due_deactivations(muster.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deactivated = n, "scheduled deactivations ran"),
                    Err(e) => tracing::error!(error = %e, "scheduled deactivations failed; retrying at the next tick"),
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Periodic notices (docs/notifications.md): the daily report when its time has come, and
/// each provider's new errors, looked at every `every`. Queued only when email is configured.
async fn run_notices(
    muster: Muster,
    env: muster_core::ids::EnvironmentId,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if !muster.settings.notify.mail_enabled {
        return;
    }
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                match muster.run_daily_report(env).await {
                    Ok(true) => tracing::info!("the daily sync report was queued"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "the daily sync report failed; retrying at the next tick"),
                }
                match muster.run_error_emails(env).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(providers = n, "error emails were queued"),
                    Err(e) => tracing::error!(error = %e, "error emails failed; retrying at the next tick"),
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Planner statistics: refreshed at start-up (a database restored, or left by a server that
/// stopped, may have none), when the data has grown (see [`StatsRefresh`]) and every five
/// minutes, so that tables that grow fast (an initial sync of a whole company) keep their index
/// plans even where the database's own autovacuum is off or behind. (Without statistics,
/// PostgreSQL looked a `userName eq` filter up through the provider's index, reading every user
/// of the provider: 4,761 filters a second against 9,715 GETs by id.)
///
/// The same task writes, every second, the counts of refusals whose window ended
/// ([`Muster::write_counted_rejections`]).
async fn run_maintenance(muster: Muster, mut stop: tokio::sync::watch::Receiver<bool>) {
    use std::sync::atomic::Ordering;
    let written = || muster_store::stats::SYNC_LOG_ENTRIES.load(Ordering::Relaxed);
    let refresh = || async {
        match muster.store.maintain().await {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(error = %e, "refreshing planner statistics failed");
                0
            }
        }
    };
    let mut last = StatsRefresh {
        written: written(),
        size: refresh().await,
        at: std::time::Instant::now(),
    };
    let mut ticks = tokio::time::interval(StatsRefresh::CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                // Each provider's 429s of a window that has ended, as one entry.
                if let Err(e) = muster.write_counted_rejections(false).await {
                    tracing::warn!(error = %e, "could not write the counted refusals to the sync log");
                }
                let now = written();
                if !last.due(now, std::time::Instant::now()) {
                    continue;
                }
                last = StatsRefresh { written: now, size: refresh().await, at: std::time::Instant::now() };
            }
            _ = stop.changed() => break,
        }
    }
}

/// The last refresh of the planner statistics, and when the next is due: once the sync log has
/// grown by as many entries as it held then (as counted by the statistics, or written by this
/// process, whichever is more), and at least [`StatsRefresh::FLOOR`]; or after
/// [`StatsRefresh::EVERY`]. The doubling keeps the refreshes of a long sync to a handful; the
/// low floor and the check every second matter on an empty database, where PostgreSQL keeps the
/// plans made while a table was small (a scan of the whole table) until the next refresh.
#[derive(Debug, Clone, Copy)]
struct StatsRefresh {
    /// Sync log entries this process had written at the refresh.
    written: u64,
    /// Sync log entries the refreshed statistics counted.
    size: u64,
    at: std::time::Instant,
}

impl StatsRefresh {
    const CHECK: Duration = Duration::from_secs(1);
    const FLOOR: u64 = 100;
    const EVERY: Duration = Duration::from_secs(300);

    fn due(&self, written: u64, now: std::time::Instant) -> bool {
        let grown = written.saturating_sub(self.written);
        grown >= self.size.max(self.written).max(Self::FLOOR)
            || now.saturating_duration_since(self.at) >= Self::EVERY
    }
}

/// Sync log and event feed retention: at start-up and hourly, deletes entries and events older
/// than their retention periods, in small batches so provisioning never waits long for the
/// writer.
async fn run_retention(
    muster: Muster,
    days: u32,
    event_days: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(3600));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                match muster.prune_sync_log(days).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, retention_days = days, "old sync log entries removed"),
                    Err(e) => tracing::error!(error = %e, "sync log retention failed; retrying in an hour"),
                }
                match muster.prune_events(event_days).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, retention_days = event_days, "old events removed from the feed"),
                    Err(e) => tracing::error!(error = %e, "event retention failed; retrying in an hour"),
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::StatsRefresh;
    use std::time::{Duration, Instant};

    #[test]
    fn statistics_are_refreshed_as_the_sync_log_doubles() {
        let at = Instant::now();
        // An empty database: the first refresh comes after the floor, then each time the log
        // has doubled.
        let fresh = StatsRefresh {
            written: 0,
            size: 0,
            at,
        };
        assert!(!fresh.due(99, at));
        assert!(fresh.due(100, at));
        let second = StatsRefresh {
            written: 100,
            size: 100,
            at,
        };
        assert!(!second.due(199, at));
        assert!(second.due(200, at));
        // A server started on a large log waits for it to double, not for the floor.
        let large = StatsRefresh {
            written: 0,
            size: 1_000_000,
            at,
        };
        assert!(!large.due(999_999, at));
        assert!(large.due(1_000_000, at));
        // Statistics that count less than this process wrote (the table pruned, or no count
        // kept, as on SQLite) go by what was written.
        let counted_less = StatsRefresh {
            written: 5_000,
            size: 0,
            at,
        };
        assert!(!counted_less.due(9_999, at));
        assert!(counted_less.due(10_000, at));
        // And every five minutes whatever the growth.
        assert!(!large.due(0, at + Duration::from_secs(299)));
        assert!(large.due(0, at + StatsRefresh::EVERY));
    }
}
