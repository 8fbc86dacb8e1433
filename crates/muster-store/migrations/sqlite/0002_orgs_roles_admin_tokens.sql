-- Roles, default roles of organizations, user roles, and administrator API tokens.

create table role (
    role_id blob primary key,
    environment_id blob not null references environment (environment_id),
    name text not null,
    name_key text not null,
    description text not null,
    builtin integer not null default 0,
    created_at integer not null
);
create unique index role_name_key_uq on role (environment_id, name_key);

-- Whether an organization sets its own default roles; otherwise it inherits its parent's.
alter table org add column own_default_roles integer not null default 0;

create table org_default_role (
    org_id blob not null references org (org_id),
    role_id blob not null references role (role_id),
    environment_id blob not null,
    primary key (org_id, role_id)
) without rowid;
create index org_default_role_role_idx on org_default_role (role_id);

-- Roles a user holds explicitly: set by an administrator, or by role mapping. A user with none
-- holds the effective default roles of their organization.
create table user_role (
    user_id blob not null references user_account (user_id),
    role_id blob not null references role (role_id),
    environment_id blob not null,
    source text not null check (source in ('admin', 'mapping')),
    primary key (user_id, role_id)
) without rowid;
create index user_role_role_idx on user_role (role_id);

create table admin_token (
    admin_token_id blob primary key,
    environment_id blob not null references environment (environment_id),
    label text not null,
    prefix text not null,
    token_hash blob not null,
    created_at integer not null,
    expires_at integer,
    revoked_at integer,
    last_used_at integer
);
create unique index admin_token_hash_uq on admin_token (token_hash);

create index org_parent_idx on org (environment_id, parent_id);
create index user_account_status_idx on user_account (environment_id, status, created_at, user_id);
create index user_account_env_created_idx on user_account (environment_id, created_at, user_id);

-- Sync log queries by action and by outcome, newest first.
create index sync_log_action_idx on sync_log (environment_id, action, at, sync_log_id);
create index sync_log_outcome_idx on sync_log (environment_id, outcome, at, sync_log_id);
