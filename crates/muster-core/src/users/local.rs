//! Local users: made by an administrator, owned by no provider, changed by no provider.

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::ids::EnvironmentId;
use crate::ids::OrgId;
use crate::ids::UserId;
use crate::model::name_key as key;
use crate::model::Actor;
use crate::model::UserRecord;
use crate::model::UserStatus;
use crate::muster::Muster;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use crate::users::directory::UserDetail;
use serde_json::json;

impl Muster {
    /// Adds a local user: made by an administrator, never changed by a provider.
    pub async fn create_local_user(
        &self,
        env: EnvironmentId,
        user_name: &str,
        display_name: Option<&str>,
        email: Option<&str>,
        org: Option<OrgId>,
        actor: &Actor,
    ) -> CoreResult<UserDetail> {
        let user_name = user_name.trim();
        if user_name.is_empty() || user_name.chars().count() > 256 {
            return Err(CoreError::Invalid(
                "a userName must have 1 to 256 characters".into(),
            ));
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        if tx.find_user_by_name(env, &key(user_name)).await?.is_some() {
            return Err(CoreError::Conflict(format!(
                "the userName '{user_name}' is already in use"
            )));
        }
        let org = match org {
            Some(o) => tx
                .find_org(env, o)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("no organization with id {o}")))?,
            None => self.root_org(&mut tx, env).await?,
        };
        let mut resource = serde_json::Map::new();
        resource.insert("schemas".into(), json!([muster_scim::schema::USER_SCHEMA]));
        resource.insert("userName".into(), json!(user_name));
        if let Some(d) = display_name.map(str::trim).filter(|d| !d.is_empty()) {
            resource.insert("displayName".into(), json!(d));
        }
        if let Some(e) = email.map(str::trim).filter(|e| !e.is_empty()) {
            resource.insert(
                "emails".into(),
                json!([{"value": e, "type": "work", "primary": true}]),
            );
        }
        resource.insert("active".into(), json!(true));
        let user = UserRecord {
            environment_id: env,
            id: UserId::new(),
            provider_id: None,
            user_name: user_name.into(),
            external_id: None,
            display_name: display_name
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            scim_active: true,
            status: UserStatus::Active,
            org_id: org.id,
            legal_hold: false,
            changed_outside: false,
            resource: resource.into(),
            version: 1,
            created_at: now,
            updated_at: now,
            removed_at: None,
            deactivate_at: None,
        };
        tx.insert_user(&user).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                CoreError::Conflict(format!("the userName '{user_name}' is already in use"))
            }
            other => other.into(),
        })?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::UserCreated,
                ("user", user.id.to_string(), &user.user_name),
                json!({"org": org.name, "local": true}),
            )],
        )
        .await?;
        let detail = self.detail_in(&mut tx, env, user.id).await?;
        tx.commit().await?;
        Ok(detail)
    }

    /// Changes a local user's display name and email address (empty removes them). Provisioned
    /// users are refused: their provider owns those attributes.
    pub async fn update_local_user(
        &self,
        env: EnvironmentId,
        id: UserId,
        display_name: &str,
        email: &str,
        actor: &Actor,
    ) -> CoreResult<UserDetail> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut u = tx
            .find_user(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no user with id {id}")))?;
        if u.provider_id.is_some() {
            return Err(CoreError::Invalid(
                "this user is provisioned: its provider owns its name and email".into(),
            ));
        }
        let (display_name, email) = (display_name.trim(), email.trim());
        if display_name.chars().count() > 256 || email.chars().count() > 256 {
            return Err(CoreError::Invalid(
                "a display name or an email has at most 256 characters".into(),
            ));
        }
        let before = (
            u.resource.get("displayName").cloned(),
            u.resource.get("emails").cloned(),
        );
        let mut resource = std::mem::take(&mut u.resource).into_map();
        if display_name.is_empty() {
            resource.remove("displayName");
        } else {
            resource.insert("displayName".into(), json!(display_name));
        }
        if email.is_empty() {
            resource.remove("emails");
        } else {
            resource.insert(
                "emails".into(),
                json!([{"value": email, "type": "work", "primary": true}]),
            );
        }
        u.resource = resource.into();
        u.display_name = (!display_name.is_empty()).then(|| display_name.to_string());
        let after = (
            u.resource.get("displayName").cloned(),
            u.resource.get("emails").cloned(),
        );
        let mut changes = Vec::new();
        if before.0 != after.0 {
            changes.push(json!({"attribute": "displayName", "before": before.0, "after": after.0}));
        }
        if before.1 != after.1 {
            changes.push(json!({"attribute": "emails", "before": before.1, "after": after.1}));
        }
        if !changes.is_empty() {
            let expected = u.version;
            u.version += 1;
            u.updated_at = now;
            if !tx.update_user(&u, expected).await? {
                return Err(CoreError::Conflict(
                    "the user changed meanwhile: reload and try again".into(),
                ));
            }
            self.record(
                &mut tx,
                &[admin_entry(
                    env,
                    now,
                    actor,
                    Event::UserUpdated,
                    ("user", u.id.to_string(), &u.user_name),
                    json!({"changes": changes}),
                )],
            )
            .await?;
        }
        let detail = self.detail_in(&mut tx, env, u.id).await?;
        tx.commit().await?;
        Ok(detail)
    }
}
