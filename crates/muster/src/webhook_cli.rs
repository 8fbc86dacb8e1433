//! `muster webhook`: endpoints that receive the event feed (docs/webhooks.md).

use clap::Subcommand;
use muster_core::ids::{EnvironmentId, WebhookId};
use muster_core::model::WebhookEndpoint;
use muster_core::webhooks::WebhookInput;
use muster_core::Muster;
use serde_json::json;

use crate::output::{cli_actor, print_json};

#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Add an endpoint; its signing secret (`whsec_…`) is shown once.
    #[command(visible_alias = "create")]
    Add {
        /// Where deliveries are POSTed.
        #[arg(long)]
        url: String,
        /// Comma-separated types and families (`user.,group.member_added`); every type if left out.
        #[arg(long)]
        types: Option<String>,
        /// For people.
        #[arg(long)]
        description: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List endpoints, with their cursor and state.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Turn an endpoint on (resuming where it stopped) or off.
    Set {
        /// The endpoint's id.
        id: WebhookId,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Deliver again, in order, every event after a seq.
    Replay {
        /// The endpoint's id.
        id: WebhookId,
        /// The seq to replay after.
        #[arg(long)]
        after: i64,
    },
    /// Send one kept event to the endpoint again, ahead of its next batch.
    Redeliver {
        /// The endpoint's id.
        id: WebhookId,
        /// The event's seq.
        #[arg(long)]
        seq: i64,
    },
    /// Send a test event (`webhook.test`) to the endpoint, even while it is off.
    Test {
        /// The endpoint's id.
        id: WebhookId,
    },
    /// Give an endpoint a new signing secret, shown once.
    RotateSecret {
        /// The endpoint's id.
        id: WebhookId,
    },
    /// Remove an endpoint and its delivery log.
    Remove {
        /// The endpoint's id.
        id: WebhookId,
    },
    /// An endpoint's delivery attempts, newest first.
    Deliveries {
        /// The endpoint's id.
        id: WebhookId,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

fn webhook_json(w: &WebhookEndpoint) -> serde_json::Value {
    json!({
        "id": w.id.to_string(), "url": w.url, "description": w.description,
        "eventTypes": w.event_types, "enabled": w.enabled, "failing": w.failing,
        "afterSeq": w.after_seq, "attempts": w.attempts,
    })
}

/// Runs `muster webhook ...`.
pub async fn run_webhook(m: &Muster, env: EnvironmentId, cmd: WebhookCmd) -> anyhow::Result<()> {
    match cmd {
        WebhookCmd::Add {
            url,
            types,
            description,
            json,
        } => {
            let input = WebhookInput {
                url: Some(url),
                description,
                event_types: types.map(|t| t.split(',').map(str::to_string).collect()),
                enabled: Some(true),
            };
            let made = m.create_webhook(env, &input, &cli_actor()).await?;
            if json {
                let mut v = webhook_json(&made.endpoint);
                v["secret"] = json!(made.secret);
                return print_json(&v);
            }
            println!(
                "Webhook endpoint {} added.\n\n  Signing secret: {}\n\nIt is shown only once: verify deliveries with it (docs/webhooks.md).",
                made.endpoint.id, made.secret
            );
        }
        WebhookCmd::List { json } => {
            let all = m.list_webhooks(env).await?;
            if json {
                return print_json(&all.iter().map(webhook_json).collect::<Vec<_>>());
            }
            if all.is_empty() {
                println!("No webhook endpoints. Add one with: muster webhook add --url URL");
            } else {
                println!("{:<36}  {:<7}  {:<11}  URL", "ID", "STATE", "AFTER EVENT");
            }
            for w in all {
                let state = match (w.enabled, w.failing) {
                    (_, true) => "failing",
                    (true, _) => "on",
                    (false, _) => "off",
                };
                println!("{}  {:<7}  {:<11}  {}", w.id, state, w.after_seq, w.url);
            }
        }
        WebhookCmd::Set { id, state } => {
            let input = WebhookInput {
                enabled: Some(state == "on"),
                ..WebhookInput::default()
            };
            let w = m.update_webhook(env, id, &input, &cli_actor()).await?;
            println!(
                "Webhook endpoint {} is {}.",
                w.id,
                if w.enabled { "on" } else { "off" }
            );
        }
        WebhookCmd::Replay { id, after } => {
            let w = m.replay_webhook(env, id, after, &cli_actor()).await?;
            println!(
                "Webhook endpoint {} delivers again from seq {}.",
                w.id,
                after + 1
            );
        }
        WebhookCmd::Redeliver { id, seq } => {
            m.redeliver_webhook_event(env, id, seq, &cli_actor())
                .await?;
            println!(
                "Event {seq} is queued for {id}; a running `muster serve` sends it within seconds \
                 (`muster webhook deliveries {id}` shows the attempt)."
            );
        }
        WebhookCmd::Test { id } => {
            m.send_test_webhook(env, id, &cli_actor()).await?;
            println!(
                "A test event is queued for {id}; a running `muster serve` sends it within seconds \
                 (`muster webhook deliveries {id}` shows the attempt)."
            );
        }
        WebhookCmd::RotateSecret { id } => {
            let made = m.rotate_webhook_secret(env, id, &cli_actor()).await?;
            println!(
                "New signing secret for {id}: {}\nIt is shown only once.",
                made.secret
            );
        }
        WebhookCmd::Remove { id } => {
            m.delete_webhook(env, id, &cli_actor()).await?;
            println!("Webhook endpoint {id} removed.");
        }
        WebhookCmd::Deliveries { id, limit } => {
            for d in m.webhook_deliveries(env, id, limit).await? {
                println!(
                    "{}  {:<9}  seq {}-{}  {}  {} ms  {}",
                    d.attempted_at.to_rfc3339(),
                    d.kind.as_str(),
                    d.first_seq,
                    d.last_seq,
                    d.status_code
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    d.latency_ms,
                    d.error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
