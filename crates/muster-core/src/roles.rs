//! The role catalog: the product's standard roles and those administrators add. A role that a
//! mapping uses cannot silently vanish: deleting it is refused.

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::ids::EnvironmentId;
use crate::ids::RoleId;
use crate::model::Actor;
use crate::model::Role;
use crate::muster::Muster;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use serde_json::json;

impl Muster {
    /// The role catalog.
    pub async fn list_roles(&self, env: EnvironmentId) -> CoreResult<Vec<Role>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_roles(env).await?)
    }

    /// Adds a role to the catalog.
    pub async fn create_role(
        &self,
        env: EnvironmentId,
        name: &str,
        description: &str,
        actor: &Actor,
    ) -> CoreResult<Role> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(CoreError::Invalid(
                "a role's name must have 1 to 100 characters".into(),
            ));
        }
        let now = self.now();
        let role = Role {
            environment_id: env,
            id: RoleId::new(),
            name: name.into(),
            description: description.trim().into(),
            builtin: false,
            created_at: now,
        };
        let mut tx = self.store.write().await?;
        tx.insert_role(&role).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                CoreError::Conflict(format!("a role named '{name}' already exists"))
            }
            other => other.into(),
        })?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::RoleCreated,
                ("role", role.id.to_string(), &role.name),
                json!({}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(role)
    }

    /// Renames a role added to the catalog, and sets its description. The standard roles keep
    /// their names (applications know them by it). Users and mappings keep the role: it is the
    /// same role under its new name.
    pub async fn rename_role(
        &self,
        env: EnvironmentId,
        id: RoleId,
        name: &str,
        description: Option<&str>,
        actor: &Actor,
    ) -> CoreResult<Role> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(CoreError::Invalid(
                "a role's name must have 1 to 100 characters".into(),
            ));
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut role = tx
            .list_roles(env)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| CoreError::NotFound(format!("no role with id {id}")))?;
        if role.builtin && role.name != name {
            return Err(CoreError::Invalid(format!(
                "'{}' is one of the standard roles and keeps its name",
                role.name
            )));
        }
        let before = role.name.clone();
        role.name = name.into();
        if let Some(d) = description {
            role.description = d.trim().into();
        }
        tx.update_role(&role).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                CoreError::Conflict(format!("a role named '{name}' already exists"))
            }
            other => other.into(),
        })?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::RoleRenamed,
                ("role", role.id.to_string(), &role.name),
                json!({"before": before, "after": role.name}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(role)
    }

    /// Deletes a role; refused while a user, an organization or a role mapping still uses it,
    /// and for the standard roles.
    pub async fn delete_role(
        &self,
        env: EnvironmentId,
        id: RoleId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let role = tx
            .list_roles(env)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| CoreError::NotFound(format!("no role with id {id}")))?;
        if role.builtin {
            return Err(CoreError::Invalid(format!(
                "'{}' is one of the standard roles and cannot be deleted",
                role.name
            )));
        }
        let (users, orgs) = tx.role_usage(env, id).await?;
        let groups = tx.role_mapping_groups(env, id).await?;
        if !groups.is_empty() {
            return Err(CoreError::Conflict(format!(
                "'{}' is given by the role mapping of {} SCIM group(s) ({}): remove it from those mappings first",
                role.name,
                groups.len(),
                groups.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if users > 0 || orgs > 0 {
            return Err(CoreError::Conflict(format!(
                "'{}' is still in use ({users} user(s) hold it, {orgs} organization(s) give it by default): remove it from them first",
                role.name
            )));
        }
        tx.delete_role(env, id).await?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::RoleDeleted,
                ("role", id.to_string(), &role.name),
                json!({}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
