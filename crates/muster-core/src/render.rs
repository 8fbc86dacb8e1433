//! Users and groups rendered as SCIM resources (RFC 7643 §4): what of a user or a group goes on
//! the wire; how (URLs, `meta`) is `muster_scim::render`'s.

use crate::groups::GroupView;
use crate::model::ProviderCtx;
use crate::muster::Muster;
use crate::users::UserView;
use muster_scim::render::group_of_user;
use muster_scim::render::resource;
use muster_scim::render::user_member;
use muster_scim::render::write_stored;
use muster_scim::render::Meta;
use muster_scim::schema::GROUP_RESOURCE;
use muster_scim::schema::USER_RESOURCE;
use serde_json::Map;
use serde_json::Value;

impl Muster {
    /// Renders a user as its SCIM resource (RFC 7643 §4.1), with `meta` and, if loaded, `groups`.
    /// It takes the view: its stored attributes move into the resource rather than being copied.
    pub fn render_user(&self, ctx: &ProviderCtx, v: UserView) -> Map<String, Value> {
        let (groups, meta) = user_extras(ctx, &v);
        let groups = groups.map(|g| ("groups", g));
        let stored = v.user.resource.into_map();
        resource(&USER_RESOURCE, &ctx.base_url, stored, &[], groups, meta)
    }

    /// Writes a user's SCIM resource to `out` as [`Muster::render_user`] with the default
    /// projection would send it, copying the stored attributes rather than parsing them. Returns
    /// `false`, having written nothing, when the stored text cannot be copied (see
    /// [`write_stored`]).
    pub fn write_user_json(&self, ctx: &ProviderCtx, v: &UserView, out: &mut Vec<u8>) -> bool {
        let (groups, meta) = user_extras(ctx, v);
        let groups = groups.as_deref().map(|g| ("groups", g));
        write_stored(
            out,
            &USER_RESOURCE,
            &ctx.base_url,
            &v.user.resource,
            groups,
            &meta,
        )
    }

    /// Renders a group as its SCIM resource (RFC 7643 §4.2), with `members` if loaded.
    pub fn render_group(&self, ctx: &ProviderCtx, v: &GroupView) -> Map<String, Value> {
        let g = &v.group;
        let members = v.members.as_ref().map(|members| {
            let list = members
                .iter()
                .map(|m| user_member(&ctx.base_url, &m.to_string()))
                .collect();
            ("members", list)
        });
        let meta = Meta {
            id: g.id.to_string(),
            created: g.created_at.to_rfc3339(),
            last_modified: g.updated_at.to_rfc3339(),
            version: g.version,
        };
        resource(
            &GROUP_RESOURCE,
            &ctx.base_url,
            g.resource.clone(),
            &["members"],
            members,
            meta,
        )
    }
}

/// What a user's resource has besides its stored attributes: its `groups`, if loaded, and `meta`.
fn user_extras(ctx: &ProviderCtx, v: &UserView) -> (Option<Vec<Value>>, Meta) {
    let u = &v.user;
    let groups = v.groups.as_ref().map(|groups| {
        groups
            .iter()
            .map(|g| group_of_user(&ctx.base_url, &g.group_id.to_string(), &g.display))
            .collect()
    });
    let meta = Meta {
        id: u.id.to_string(),
        created: u.created_at.to_rfc3339(),
        last_modified: u.updated_at.to_rfc3339(),
        version: u.version,
    };
    (groups, meta)
}
