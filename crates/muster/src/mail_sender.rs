//! The mail task: takes queued notices from the database one at a time (the core's leases share
//! them between instances), writes them (`muster_web::mail`), sends them through the configured
//! SMTP server with `lettre`, and records the server's answer or the failure. `muster notify
//! test` sends through the same transport.

use std::time::Duration;

use anyhow::{bail, Context};
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use muster_core::model::Mail;
use muster_core::Muster;

use crate::config::{Config, SmtpTls};

/// How long the SMTP server has to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A configured SMTP transport and From address.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
}

impl Smtp {
    /// The transport the configuration describes; `None` without `smtp_host`.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Option<Smtp>> {
        let Some(host) = &cfg.smtp_host else {
            return Ok(None);
        };
        let builder = match cfg.smtp_tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .with_context(|| format!("SMTP server {host}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("SMTP server {host}"))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(cfg.smtp_port).timeout(Some(TIMEOUT));
        if let Some(user) = &cfg.smtp_username {
            let password = cfg.smtp_password()?.unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: Mailbox = cfg
            .mail_from
            .parse()
            .with_context(|| format!("mail_from '{}'", cfg.mail_from))?;
        Ok(Some(Smtp {
            transport: builder.build(),
            from,
            public_url: cfg.public_url(),
        }))
    }

    /// Writes and sends one queued notice; the server's answer, or why it failed.
    pub async fn send(&self, m: &Mail) -> Result<String, String> {
        let Some(r) = muster_web::mail::render(m, &self.public_url) else {
            return Err(format!(
                "a notice of kind '{}' this version cannot write",
                m.kind
            ));
        };
        let to: Mailbox = m
            .recipient
            .parse()
            .map_err(|e| format!("the address '{}': {e}", m.recipient))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(r.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(r.text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(r.html),
                    ),
            )
            .map_err(|e| format!("the message: {e}"))?;
        match self.transport.send(message).await {
            Ok(resp) => Ok(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(format!("the SMTP server: {e}")),
        }
    }
}

/// Sends queued notices until `stop` says so: everything due, then a look every `every`.
pub async fn run(
    muster: Muster,
    smtp: Smtp,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        loop {
            let m = match muster.next_mail().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "reading the mail queue failed");
                    break;
                }
            };
            let outcome = smtp.send(&m).await;
            if let Err(why) = &outcome {
                tracing::warn!(mail = m.id, kind = %m.kind, error = %why, "a notice was not sent; it will be retried");
            }
            if let Err(e) = muster.mail_done(&m, outcome).await {
                tracing::error!(error = %e, "recording a sent notice failed");
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// `muster notify test --to ADDRESS`: sends a test message now and prints the server's answer.
pub async fn send_test(cfg: &Config, to: &str) -> anyhow::Result<String> {
    let Some(smtp) = Smtp::from_config(cfg)? else {
        bail!("no SMTP server is configured: set smtp_host (docs/configuration.md)");
    };
    let to = muster_core::notify::check_email(to)?;
    let m = Mail {
        id: 0,
        environment_id: muster_core::ids::EnvironmentId(uuid::Uuid::nil()),
        recipient: to,
        kind: muster_core::notify::kinds::TEST.into(),
        payload: serde_json::json!({"at": jiff::Timestamp::now().to_string()}),
        created_at: muster_core::clock::Timestamp(0),
        attempts: 0,
    };
    smtp.send(&m).await.map_err(|e| anyhow::anyhow!(e))
}
