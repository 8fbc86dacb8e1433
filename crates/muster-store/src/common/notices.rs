//! The mass-deactivation guard, the mail queue, and the state of periodic notices.

use super::*;
use muster_core::model::{Mail, ProviderGuard};
use muster_core::store::NoticeStore;

const GUARD_COLS: &str =
    "provider_id, environment_id, enabled, percent, min_users, window_secs, held_since, held_turned_off";

fn guard_from<R: Cols + ?Sized>(row: &R) -> StoreResult<ProviderGuard> {
    Ok(ProviderGuard {
        provider_id: ProviderId(get(row, "provider_id")?),
        environment_id: EnvironmentId(get(row, "environment_id")?),
        enabled: get(row, "enabled")?,
        percent: get(row, "percent")?,
        min_users: get(row, "min_users")?,
        window_secs: get(row, "window_secs")?,
        held_since: ts_opt(get(row, "held_since")?),
        held_turned_off: get(row, "held_turned_off")?,
    })
}

const MAIL_COLS: &str = "mail_id, environment_id, recipient, kind, payload, created_at, attempts";

fn mail_from<R: Cols + ?Sized>(row: &R) -> StoreResult<Mail> {
    let payload: String = get(row, "payload")?;
    Ok(Mail {
        id: get(row, "mail_id")?,
        environment_id: EnvironmentId(get(row, "environment_id")?),
        recipient: get(row, "recipient")?,
        kind: get(row, "kind")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("mail payload: {e}")))?,
        created_at: ts(get(row, "created_at")?),
        attempts: get(row, "attempts")?,
    })
}

#[async_trait]
impl NoticeStore for DbTx {
    async fn find_guard(&mut self, provider: ProviderId) -> StoreResult<Option<ProviderGuard>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {GUARD_COLS} from provider_guard where provider_id = $1"
                ))
                .arg(provider.0),
            )
            .await?;
        row.map(|r| guard_from(&r)).transpose()
    }

    async fn save_guard(&mut self, g: &ProviderGuard) -> StoreResult<()> {
        self.exec(
            &Stmt::new(format!(
                "insert into provider_guard ({GUARD_COLS}) values ($1, $2, $3, $4, $5, $6, $7, $8) \
                 on conflict (provider_id) do update set enabled = $3, percent = $4, min_users = $5, \
                 window_secs = $6, held_since = $7, held_turned_off = $8"
            ))
            .arg(g.provider_id.0)
            .arg(g.environment_id.0)
            .arg(g.enabled)
            .arg(g.percent)
            .arg(g.min_users)
            .arg(g.window_secs)
            .arg(g.held_since.map(|t| t.0))
            .arg(g.held_turned_off),
        )
        .await?;
        Ok(())
    }

    async fn held_guards(&mut self, env: EnvironmentId) -> StoreResult<Vec<ProviderGuard>> {
        let rows = self
            .rows(
                &Stmt::new(format!(
                    "select {GUARD_COLS} from provider_guard where environment_id = $1 and held_since is not null"
                ))
                .arg(env.0),
            )
            .await?;
        rows.iter().map(guard_from).collect()
    }

    async fn count_turn_offs(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        since: Timestamp,
    ) -> StoreResult<u64> {
        let q = Stmt::new(
            "select count(*) as n from sync_log where environment_id = $1 and provider_id = $2 \
                     and at >= $3 and action = $4 and actor_kind = $5",
        )
        .arg(env.0)
        .arg(provider.0)
        .arg(since.0)
        .arg(Event::UserBlocked.as_str())
        .arg("provider");
        self.count(&q).await
    }

    async fn count_active_users(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<u64> {
        let q = Stmt::new(
            "select count(*) as n from user_account where environment_id = $1 and provider_id = $2 \
                     and status = $3 and removed_at is null",
        )
        .arg(env.0)
        .arg(provider.0)
        .arg("active");
        self.count(&q).await
    }

    async fn count_pending_deactivations(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> StoreResult<u64> {
        let q = Stmt::new(
            "select count(*) as n from user_account where environment_id = $1 and provider_id = $2 \
                     and deactivate_at is not null",
        )
        .arg(env.0)
        .arg(provider.0);
        self.count(&q).await
    }

    async fn pending_deactivations(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        let rows = self
            .rows(
                &Stmt::new(format!(
                    "select {USER_COLS} from user_account where environment_id = $1 and provider_id = $2 \
                     and deactivate_at is not null order by deactivate_at, user_id limit $3"
                ))
                .arg(env.0)
                .arg(provider.0)
                .arg(limit as i64),
            )
            .await?;
        rows.iter().map(user_from).collect()
    }

    async fn insert_mail(
        &mut self,
        env: EnvironmentId,
        recipient: &str,
        kind: &str,
        payload: &Value,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "insert into mail_outbox (environment_id, recipient, kind, payload, created_at, next_attempt_at) \
                 values ($1, $2, $3, $4, $5, $5)",
            )
            .arg(env.0)
            .arg(recipient)
            .arg(kind)
            .arg(payload.to_string())
            .arg(now.0),
        )
        .await?;
        Ok(())
    }

    async fn claim_due_mail(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Mail>> {
        // As for webhooks: the inner select picks a candidate, the outer condition is checked
        // again on the row, so two instances never take the same message.
        const DUE: &str = "sent_at is null and failed_at is null and next_attempt_at <= $2 \
                           and (lease_until is null or lease_until < $2)";
        let row = self
            .row(
                &Stmt::new(format!(
                    "update mail_outbox set lease_until = $1 where mail_id = \
                     (select mail_id from mail_outbox where {DUE} order by next_attempt_at, mail_id limit 1) \
                     and {DUE} returning {MAIL_COLS}"
                ))
                .arg(lease_until.0)
                .arg(now.0),
            )
            .await?;
        row.map(|r| mail_from(&r)).transpose()
    }

    async fn mail_sent(&mut self, id: i64, now: Timestamp) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "update mail_outbox set sent_at = $1, lease_until = null, attempts = attempts + 1 where mail_id = $2",
            )
            .arg(now.0)
            .arg(id),
        )
        .await?;
        Ok(())
    }

    async fn mail_failed(
        &mut self,
        id: i64,
        now: Timestamp,
        retry_at: Option<Timestamp>,
        error: &str,
    ) -> StoreResult<()> {
        let stmt = match retry_at {
            Some(at) => Stmt::new(
                "update mail_outbox set attempts = attempts + 1, lease_until = null, next_attempt_at = $1, \
                 last_error = $2 where mail_id = $3",
            )
            .arg(at.0),
            None => Stmt::new(
                "update mail_outbox set attempts = attempts + 1, lease_until = null, failed_at = $1, \
                 last_error = $2 where mail_id = $3",
            )
            .arg(now.0),
        };
        self.exec(&stmt.arg(error).arg(id)).await?;
        Ok(())
    }

    async fn mail_status(&mut self) -> StoreResult<(u64, u64, u64)> {
        let row = self
            .one(&Stmt::new(
                "select \
                   coalesce(sum(case when sent_at is null and failed_at is null then 1 else 0 end), 0) as queued, \
                   coalesce(sum(case when failed_at is not null then 1 else 0 end), 0) as failed, \
                   (select count(*) from provider_guard where held_since is not null) as held \
                 from mail_outbox",
            ))
            .await?;
        Ok((
            get::<i64, _>(&row, "queued")?.max(0) as u64,
            get::<i64, _>(&row, "failed")?.max(0) as u64,
            get::<i64, _>(&row, "held")?.max(0) as u64,
        ))
    }

    async fn claim_notice(
        &mut self,
        kind: &str,
        scope: &str,
        at: Timestamp,
        older_than: Timestamp,
    ) -> StoreResult<bool> {
        let done = self
            .exec(
                &Stmt::new(
                    "insert into notice_state (kind, scope, last_at) values ($1, $2, $3) \
                     on conflict (kind, scope) do update set last_at = $3 where notice_state.last_at < $4",
                )
                .arg(kind)
                .arg(scope)
                .arg(at.0)
                .arg(older_than.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn log_counts(
        &mut self,
        env: EnvironmentId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<(Option<ProviderId>, String, bool, u64)>> {
        let rows = self
            .rows(
                &Stmt::new(
                    "select provider_id, action, outcome, count(*) as n from sync_log \
                     where environment_id = $1 and at >= $2 and at < $3 group by provider_id, action, outcome",
                )
                .arg(env.0)
                .arg(from.0)
                .arg(to.0),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let outcome: String = get(r, "outcome")?;
                Ok((
                    get::<Option<Uuid>, _>(r, "provider_id")?.map(ProviderId),
                    get(r, "action")?,
                    outcome == "error",
                    get::<i64, _>(r, "n")?.max(0) as u64,
                ))
            })
            .collect()
    }

    async fn top_errors(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        from: Timestamp,
        to: Timestamp,
        limit: u64,
    ) -> StoreResult<Vec<(String, u64)>> {
        let rows = self
            .rows(
                &Stmt::new(
                    "select coalesce(message, action) as m, count(*) as n from sync_log \
                     where environment_id = $1 and provider_id = $2 and at >= $3 and at < $4 and outcome = $5 \
                     group by coalesce(message, action) order by count(*) desc, coalesce(message, action) limit $6",
                )
                .arg(env.0)
                .arg(provider.0)
                .arg(from.0)
                .arg(to.0)
                .arg("error")
                .arg(limit as i64),
            )
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, "m")?, get::<i64, _>(r, "n")?.max(0) as u64)))
            .collect()
    }

    async fn notice_last(&mut self, kind: &str, scope: &str) -> StoreResult<Option<Timestamp>> {
        let row = self
            .row(
                &Stmt::new("select last_at from notice_state where kind = $1 and scope = $2")
                    .arg(kind)
                    .arg(scope),
            )
            .await?;
        row.map(|r| get::<i64, _>(&r, "last_at").map(ts))
            .transpose()
    }
}
