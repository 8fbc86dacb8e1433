//! Webhook endpoints, their leases, and their delivery log.

use super::*;

const WEBHOOK_COLS: &str =
    "webhook_id, environment_id, url, description, event_types, secret, enabled, failing, \
     after_seq, attempts, first_failure_at, next_attempt_at, lease_until, created_at, updated_at";

fn webhook_from<R: Cols + ?Sized>(row: &R) -> StoreResult<WebhookEndpoint> {
    let types: String = get(row, "event_types")?;
    Ok(WebhookEndpoint {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: WebhookId(get(row, "webhook_id")?),
        url: get(row, "url")?,
        description: get(row, "description")?,
        event_types: types
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        secret: get(row, "secret")?,
        enabled: get(row, "enabled")?,
        failing: get(row, "failing")?,
        after_seq: get(row, "after_seq")?,
        attempts: get(row, "attempts")?,
        first_failure_at: ts_opt(get(row, "first_failure_at")?),
        next_attempt_at: ts(get(row, "next_attempt_at")?),
        lease_until: ts_opt(get(row, "lease_until")?),
        created_at: ts(get(row, "created_at")?),
        updated_at: ts(get(row, "updated_at")?),
    })
}

fn delivery_from<R: Cols + ?Sized>(row: &R) -> StoreResult<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: get(row, "delivery_id")?,
        webhook_id: WebhookId(get(row, "webhook_id")?),
        environment_id: EnvironmentId(get(row, "environment_id")?),
        attempted_at: ts(get(row, "attempted_at")?),
        first_seq: get(row, "first_seq")?,
        last_seq: get(row, "last_seq")?,
        status_code: get(row, "status_code")?,
        latency_ms: get(row, "latency_ms")?,
        response: get(row, "response")?,
        error: get(row, "error")?,
        kind: DeliveryKind::parse(&get::<String, _>(row, "kind")?),
    })
}

/// Due: a healthy endpoint (no failed attempt) when events newer than its cursor have committed;
/// a failing one when its retry is due; any with a manual delivery queued; none leased. So an
/// endpoint with nothing new costs nothing until the feed moves. `$2` is true, `$3` now.
const DUE: &str = "((enabled = $2 and next_attempt_at <= $3 \
       and (attempts > 0 or after_seq < (select last_seq from event_seq))) \
     or exists (select 1 from webhook_manual m where m.webhook_id = webhook_endpoint.webhook_id)) \
     and (lease_until is null or lease_until < $3)";

/// Whether any endpoint is [`DUE`] (`$1` true, `$2` now).
static ANY_DUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "select webhook_id from webhook_endpoint where {} limit 1",
        DUE.replace("$2", "$1").replace("$3", "$2")
    )
});

#[async_trait]
impl WebhookStore for DbTx {
    async fn any_webhook_due(&mut self, now: Timestamp) -> StoreResult<bool> {
        let row = self
            .row(&Stmt::new(ANY_DUE.as_str()).arg(true).arg(now.0))
            .await?;
        Ok(row.is_some())
    }

    async fn insert_webhook(&mut self, w: &WebhookEndpoint) -> StoreResult<()> {
        self.exec(
            &Stmt::new(format!(
                "insert into webhook_endpoint ({WEBHOOK_COLS}) values \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ))
            .arg(w.id.0)
            .arg(w.environment_id.0)
            .arg(&w.url)
            .arg(&w.description)
            .arg(w.event_types.join(","))
            .arg(&w.secret)
            .arg(w.enabled)
            .arg(w.failing)
            .arg(w.after_seq)
            .arg(w.attempts)
            .arg(w.first_failure_at.map(|t| t.0))
            .arg(w.next_attempt_at.0)
            .arg(w.lease_until.map(|t| t.0))
            .arg(w.created_at.0)
            .arg(w.updated_at.0),
        )
        .await?;
        Ok(())
    }

    async fn list_webhooks(&mut self, env: EnvironmentId) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows = self
            .rows(
                &Stmt::new(format!(
                    "select {WEBHOOK_COLS} from webhook_endpoint where environment_id = $1 order by created_at, webhook_id"
                ))
                .arg(env.0),
            )
            .await?;
        rows.iter().map(webhook_from).collect()
    }

    async fn find_webhook(
        &mut self,
        env: EnvironmentId,
        id: WebhookId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {WEBHOOK_COLS} from webhook_endpoint where environment_id = $1 and webhook_id = $2"
                ))
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        row.map(|r| webhook_from(&r)).transpose()
    }

    async fn update_webhook(&mut self, w: &WebhookEndpoint) -> StoreResult<bool> {
        let done = self
            .exec(
                &Stmt::new(
                    "update webhook_endpoint set url = $1, description = $2, event_types = $3, secret = $4, \
                     enabled = $5, failing = $6, after_seq = $7, attempts = $8, first_failure_at = $9, \
                     next_attempt_at = $10, lease_until = $11, updated_at = $12 \
                     where environment_id = $13 and webhook_id = $14",
                )
                .arg(&w.url)
                .arg(&w.description)
                .arg(w.event_types.join(","))
                .arg(&w.secret)
                .arg(w.enabled)
                .arg(w.failing)
                .arg(w.after_seq)
                .arg(w.attempts)
                .arg(w.first_failure_at.map(|t| t.0))
                .arg(w.next_attempt_at.0)
                .arg(w.lease_until.map(|t| t.0))
                .arg(w.updated_at.0)
                .arg(w.environment_id.0)
                .arg(w.id.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn delete_webhook(&mut self, env: EnvironmentId, id: WebhookId) -> StoreResult<bool> {
        for table in ["webhook_delivery", "webhook_manual"] {
            self.exec(
                &Stmt::new(format!(
                    "delete from {table} where environment_id = $1 and webhook_id = $2"
                ))
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        }
        let done = self
            .exec(
                &Stmt::new(
                    "delete from webhook_endpoint where environment_id = $1 and webhook_id = $2",
                )
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn claim_due_webhook(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        // The inner select picks a candidate; the outer condition is checked again on the row
        // itself, so when two instances pick the same one, the second updates nothing.
        let row = self
            .row(
                &Stmt::new(format!(
                    "update webhook_endpoint set lease_until = $1 \
                     where webhook_id = (select webhook_id from webhook_endpoint \
                        where {DUE} order by next_attempt_at limit 1) \
                       and {DUE} \
                     returning {WEBHOOK_COLS}"
                ))
                .arg(lease_until.0)
                .arg(true)
                .arg(now.0),
            )
            .await?;
        row.map(|r| webhook_from(&r)).transpose()
    }

    async fn webhook_status(&mut self) -> StoreResult<(u64, u64, i64)> {
        let r = self
            .one(
                &Stmt::new(
                    "select \
                       coalesce(sum(case when enabled = $1 then 1 else 0 end), 0) as on_count, \
                       coalesce(sum(case when failing = $1 then 1 else 0 end), 0) as failing_count, \
                       coalesce(min(case when enabled = $1 then after_seq end), -1) as slowest \
                     from webhook_endpoint",
                )
                .arg(true),
            )
            .await?;
        let on: i64 = get(&r, "on_count")?;
        let failing: i64 = get(&r, "failing_count")?;
        let slowest: i64 = get(&r, "slowest")?;
        let behind = if slowest < 0 {
            0
        } else {
            (self.event_head().await? - slowest).max(0)
        };
        Ok((on.max(0) as u64, failing.max(0) as u64, behind))
    }

    async fn insert_delivery(&mut self, d: &WebhookDelivery) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "insert into webhook_delivery (webhook_id, environment_id, attempted_at, first_seq, last_seq, \
                 status_code, latency_ms, response, error, kind) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .arg(d.webhook_id.0)
            .arg(d.environment_id.0)
            .arg(d.attempted_at.0)
            .arg(d.first_seq)
            .arg(d.last_seq)
            .arg(d.status_code)
            .arg(d.latency_ms)
            .arg(&d.response)
            .arg(&d.error)
            .arg(d.kind.as_str()),
        )
        .await?;
        Ok(())
    }

    async fn delete_deliveries_before(
        &mut self,
        cutoff: Timestamp,
        limit: u64,
    ) -> StoreResult<u64> {
        self.exec(
            &Stmt::new(
                "delete from webhook_delivery where delivery_id in \
                 (select delivery_id from webhook_delivery where attempted_at < $1 order by attempted_at limit $2)",
            )
            .arg(cutoff.0)
            .arg(limit as i64),
        )
        .await
    }

    async fn insert_manual_delivery(
        &mut self,
        env: EnvironmentId,
        id: WebhookId,
        seq: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let row = self
            .one(
                &Stmt::new(
                    "insert into webhook_manual (webhook_id, environment_id, seq, requested_at) \
                     values ($1, $2, $3, $4) returning manual_id",
                )
                .arg(id.0)
                .arg(env.0)
                .arg(seq)
                .arg(now.0),
            )
            .await?;
        get(&row, "manual_id")
    }

    async fn next_manual_delivery(&mut self, id: WebhookId) -> StoreResult<Option<ManualDelivery>> {
        let row = self
            .row(
                &Stmt::new(
                    "select manual_id, seq from webhook_manual where webhook_id = $1 order by manual_id limit 1",
                )
                .arg(id.0),
            )
            .await?;
        row.map(|r| {
            Ok(ManualDelivery {
                id: get(&r, "manual_id")?,
                seq: get(&r, "seq")?,
            })
        })
        .transpose()
    }

    async fn delete_manual_delivery(&mut self, manual_id: i64) -> StoreResult<()> {
        self.exec(&Stmt::new("delete from webhook_manual where manual_id = $1").arg(manual_id))
            .await?;
        Ok(())
    }

    async fn list_deliveries(
        &mut self,
        env: EnvironmentId,
        id: WebhookId,
        limit: u64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let rows = self
            .rows(
                &Stmt::new(
                    "select delivery_id, webhook_id, environment_id, attempted_at, first_seq, last_seq, status_code, \
                     latency_ms, response, error, kind from webhook_delivery \
                     where environment_id = $1 and webhook_id = $2 order by delivery_id desc limit $3",
                )
                .arg(env.0)
                .arg(id.0)
                .arg(limit as i64),
            )
            .await?;
        rows.iter().map(delivery_from).collect()
    }
}
