//! Console administrators and their sessions.

use super::*;

const ADMIN_COLS: &str = "a.admin_id, a.environment_id, a.username, a.role, a.created_at, a.last_sign_in_at, a.failed_sign_ins, a.locked_until, a.email, a.report, a.oidc_subject";

fn admin_from<R: Cols + ?Sized>(row: &R) -> StoreResult<AdminAccount> {
    let role: String = get(row, "role")?;
    Ok(AdminAccount {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        id: AdminId(get(row, "admin_id")?),
        username: get(row, "username")?,
        role: AdminRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("admin role '{role}'")))?,
        created_at: ts(get(row, "created_at")?),
        last_sign_in_at: ts_opt(get(row, "last_sign_in_at")?),
        failed_sign_ins: get(row, "failed_sign_ins")?,
        locked_until: ts_opt(get(row, "locked_until")?),
        email: get(row, "email")?,
        oidc_subject: get(row, "oidc_subject")?,
        report: {
            let r: String = get(row, "report")?;
            ReportPreference::parse(&r).unwrap_or(ReportPreference::Never)
        },
    })
}

const SESSION_COLS: &str = "s.session_id, s.csrf_token, s.created_at as s_created, s.last_seen_at, s.expires_at, s.revoked_at";

fn session_from<R: Cols + ?Sized>(r: &R) -> StoreResult<(AdminSession, AdminAccount)> {
    let admin = admin_from(r)?;
    let session = AdminSession {
        environment_id: admin.environment_id,
        id: SessionId(get(r, "session_id")?),
        admin_id: admin.id,
        csrf_token: get(r, "csrf_token")?,
        created_at: ts(get(r, "s_created")?),
        last_seen_at: ts(get(r, "last_seen_at")?),
        expires_at: ts(get(r, "expires_at")?),
        revoked_at: ts_opt(get(r, "revoked_at")?),
    };
    Ok((session, admin))
}

#[async_trait]
impl AdminAccountStore for DbTx {
    async fn insert_admin(&mut self, a: &AdminAccount, password_hash: &str) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into admin_account (admin_id, environment_id, username, username_key, password_hash, role, created_at, failed_sign_ins, email, report) \
             values ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)").arg(a.id.0).arg(a.environment_id.0).arg(&a.username).arg(key(&a.username)).arg(password_hash).arg(a.role.as_str()).arg(a.created_at.0).arg(&a.email).arg(a.report.as_str())).await?;
        Ok(())
    }

    async fn find_admin_by_oidc_subject(
        &mut self,
        env: EnvironmentId,
        subject: &str,
    ) -> StoreResult<Option<AdminAccount>> {
        let row = self
            .row(
                &Stmt::new(format!(
                    "select {ADMIN_COLS} from admin_account a where a.environment_id = $1 and a.oidc_subject = $2"
                ))
                .arg(env.0)
                .arg(subject),
            )
            .await?;
        row.map(|r| admin_from(&r)).transpose()
    }

    async fn set_admin_oidc_subject(&mut self, id: AdminId, subject: &str) -> StoreResult<()> {
        self.exec(
            &Stmt::new("update admin_account set oidc_subject = $1 where admin_id = $2")
                .arg(subject)
                .arg(id.0),
        )
        .await?;
        Ok(())
    }

    async fn insert_oidc_login(
        &mut self,
        env: EnvironmentId,
        state_hash: &str,
        nonce: &str,
        verifier: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "insert into oidc_login (state_hash, environment_id, nonce, verifier, created_at) values ($1, $2, $3, $4, $5)",
            )
            .arg(state_hash)
            .arg(env.0)
            .arg(nonce)
            .arg(verifier)
            .arg(now.0),
        )
        .await?;
        Ok(())
    }

    async fn take_oidc_login(
        &mut self,
        state_hash: &str,
    ) -> StoreResult<Option<(EnvironmentId, String, String, Timestamp)>> {
        let row = self
            .row(
                &Stmt::new(
                    "delete from oidc_login where state_hash = $1 returning environment_id, nonce, verifier, created_at",
                )
                .arg(state_hash),
            )
            .await?;
        row.map(|r| {
            Ok((
                EnvironmentId(get(&r, "environment_id")?),
                get(&r, "nonce")?,
                get(&r, "verifier")?,
                ts(get(&r, "created_at")?),
            ))
        })
        .transpose()
    }

    async fn prune_oidc_logins(&mut self, cutoff: Timestamp) -> StoreResult<u64> {
        self.exec(&Stmt::new("delete from oidc_login where created_at < $1").arg(cutoff.0))
            .await
    }

    async fn set_admin_notifications(
        &mut self,
        env: EnvironmentId,
        id: AdminId,
        email: Option<&str>,
        report: ReportPreference,
    ) -> StoreResult<()> {
        self.exec(
            &Stmt::new(
                "update admin_account set email = $1, report = $2 where environment_id = $3 and admin_id = $4",
            )
            .arg(email)
            .arg(report.as_str())
            .arg(env.0)
            .arg(id.0),
        )
        .await?;
        Ok(())
    }

    async fn find_admin_by_username(
        &mut self,
        env: EnvironmentId,
        username_key: &str,
    ) -> StoreResult<Option<(AdminAccount, String)>> {
        let row = self.row(&Stmt::new(format!(
            "select {ADMIN_COLS}, a.password_hash from admin_account a where a.environment_id = $1 and a.username_key = $2"
        )).arg(env.0).arg(username_key)).await?;
        match row {
            Some(r) => Ok(Some((admin_from(&r)?, get(&r, "password_hash")?))),
            None => Ok(None),
        }
    }

    async fn list_admins(&mut self, env: EnvironmentId) -> StoreResult<Vec<AdminAccount>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {ADMIN_COLS} from admin_account a where a.environment_id = $1 order by a.username_key"
        )).arg(env.0)).await?;
        rows.iter().map(admin_from).collect()
    }

    async fn update_admin_sign_in(&mut self, a: &AdminAccount) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_account set last_sign_in_at = $1, failed_sign_ins = $2, locked_until = $3 \
             where environment_id = $4 and admin_id = $5").arg(a.last_sign_in_at.map(|t| t.0)).arg(a.failed_sign_ins).arg(a.locked_until.map(|t| t.0)).arg(a.environment_id.0).arg(a.id.0)).await?;
        Ok(())
    }

    async fn insert_session(&mut self, s: &AdminSession, token_hash: &[u8]) -> StoreResult<()> {
        self.exec(&Stmt::new("insert into admin_session (session_id, environment_id, admin_id, token_hash, csrf_token, created_at, last_seen_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)").arg(s.id.0).arg(s.environment_id.0).arg(s.admin_id.0).arg(token_hash).arg(&s.csrf_token).arg(s.created_at.0).arg(s.last_seen_at.0).arg(s.expires_at.0)).await?;
        Ok(())
    }

    async fn find_session_by_hash(
        &mut self,
        hash: &[u8],
    ) -> StoreResult<Option<(AdminSession, AdminAccount)>> {
        let row = self.row(&Stmt::new(format!(
            "select {ADMIN_COLS}, {SESSION_COLS} \
             from admin_session s join admin_account a on a.admin_id = s.admin_id where s.token_hash = $1"
        )).arg(hash)).await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(session_from(&r)?))
    }

    async fn touch_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()> {
        self.exec(
            &Stmt::new("update admin_session set last_seen_at = $1 where session_id = $2")
                .arg(at.0)
                .arg(id.0),
        )
        .await?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_session set revoked_at = $1 where session_id = $2 and revoked_at is null").arg(at.0).arg(id.0)).await?;
        Ok(())
    }

    async fn revoke_sessions_of(&mut self, admin: AdminId, at: Timestamp) -> StoreResult<()> {
        self.exec(&Stmt::new("update admin_session set revoked_at = $1 where admin_id = $2 and revoked_at is null").arg(at.0).arg(admin.0)).await?;
        Ok(())
    }

    async fn set_admin_role(
        &mut self,
        env: EnvironmentId,
        id: AdminId,
        role: AdminRole,
    ) -> StoreResult<bool> {
        let done = self
            .exec(
                &Stmt::new(
                    "update admin_account set role = $1 where environment_id = $2 and admin_id = $3",
                )
                .arg(role.as_str())
                .arg(env.0)
                .arg(id.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn delete_admin(&mut self, env: EnvironmentId, id: AdminId) -> StoreResult<bool> {
        self.exec(
            &Stmt::new("delete from admin_session where environment_id = $1 and admin_id = $2")
                .arg(env.0)
                .arg(id.0),
        )
        .await?;
        let done = self
            .exec(
                &Stmt::new("delete from admin_account where environment_id = $1 and admin_id = $2")
                    .arg(env.0)
                    .arg(id.0),
            )
            .await?;
        Ok(done == 1)
    }

    async fn open_sessions(
        &mut self,
        env: EnvironmentId,
        now: Timestamp,
    ) -> StoreResult<Vec<(AdminSession, AdminAccount)>> {
        let rows = self
            .rows(
                &Stmt::new(format!(
                    "select {ADMIN_COLS}, {SESSION_COLS} \
                     from admin_session s join admin_account a on a.admin_id = s.admin_id \
                     where s.environment_id = $1 and s.revoked_at is null and s.expires_at > $2 \
                     order by s.last_seen_at desc, s.session_id"
                ))
                .arg(env.0)
                .arg(now.0),
            )
            .await?;
        rows.iter().map(session_from).collect()
    }
}
