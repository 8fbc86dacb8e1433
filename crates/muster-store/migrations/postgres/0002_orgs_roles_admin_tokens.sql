-- Roles, default roles of organizations, user roles, and administrator API tokens.

create table role (
    role_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    name text not null,
    name_key text not null,
    description text not null,
    builtin boolean not null default false,
    created_at bigint not null
);
create unique index role_name_key_uq on role (environment_id, name_key);

-- Whether an organization sets its own default roles; otherwise it inherits its parent's.
alter table org add column own_default_roles boolean not null default false;

create table org_default_role (
    org_id uuid not null references org (org_id),
    role_id uuid not null references role (role_id),
    environment_id uuid not null,
    primary key (org_id, role_id)
);
create index org_default_role_role_idx on org_default_role (role_id);

-- Roles a user holds explicitly: set by an administrator, or by role mapping. A user with none
-- holds the effective default roles of their organization.
create table user_role (
    user_id uuid not null references user_account (user_id),
    role_id uuid not null references role (role_id),
    environment_id uuid not null,
    source text not null check (source in ('admin', 'mapping')),
    primary key (user_id, role_id)
);
create index user_role_role_idx on user_role (role_id);

create table admin_token (
    admin_token_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    label text not null,
    prefix text not null,
    token_hash bytea not null,
    created_at bigint not null,
    expires_at bigint,
    revoked_at bigint,
    last_used_at bigint
);
create unique index admin_token_hash_uq on admin_token (token_hash);

create index org_parent_idx on org (environment_id, parent_id);
create index user_account_status_idx on user_account (environment_id, status, created_at, user_id);
create index user_account_env_created_idx on user_account (environment_id, created_at, user_id);

-- Sync log queries by action and by outcome, newest first.
create index sync_log_action_idx on sync_log (environment_id, action, at, sync_log_id);
create index sync_log_outcome_idx on sync_log (environment_id, outcome, at, sync_log_id);
