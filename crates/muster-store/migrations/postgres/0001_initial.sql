-- Muster's first schema (PostgreSQL). Ids are UUIDs stored as uuid; times are microseconds
-- since the Unix epoch (UTC). Every row carries its environment, and every unique constraint
-- includes it.

create table environment (
    environment_id uuid primary key,
    slug text not null unique,
    name text not null,
    created_at bigint not null
);

create table org (
    org_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    parent_id uuid references org (org_id),
    name text not null,
    name_key text not null,
    status text not null check (status in ('active', 'deactivated')),
    created_at bigint not null,
    updated_at bigint not null
);
create unique index org_root_uq on org (environment_id) where parent_id is null;
create unique index org_name_key_uq on org (environment_id, parent_id, name_key);

create table provider (
    provider_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    name text not null,
    name_key text not null,
    deactivation_delay_secs bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    last_sync_at bigint
);
create unique index provider_name_key_uq on provider (environment_id, name_key);

create table provider_token (
    provider_token_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    provider_id uuid not null references provider (provider_id),
    label text not null,
    prefix text not null,
    token_hash bytea not null,
    created_at bigint not null,
    expires_at bigint,
    revoked_at bigint,
    last_used_at bigint
);
create unique index provider_token_hash_uq on provider_token (token_hash);
create index provider_token_provider_idx on provider_token (environment_id, provider_id, created_at);

create table user_account (
    user_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    provider_id uuid references provider (provider_id),
    user_name text not null,
    user_name_key text not null,
    external_id text,
    display_name text,
    scim_active boolean not null,
    status text not null check (status in ('active', 'blocked', 'deactivated')),
    org_id uuid not null references org (org_id),
    legal_hold boolean not null default false,
    changed_outside boolean not null default false,
    resource text not null,
    version bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    removed_at bigint,
    deactivate_at bigint
);
create unique index user_account_user_name_key_uq on user_account (environment_id, user_name_key);
create index user_account_provider_idx on user_account (environment_id, provider_id, created_at, user_id) where removed_at is null;
create index user_account_external_id_idx on user_account (environment_id, provider_id, external_id, created_at);
create index user_account_org_idx on user_account (environment_id, org_id);
create index user_account_modified_idx on user_account (environment_id, provider_id, updated_at);
create index user_account_deactivate_at_idx on user_account (deactivate_at) where deactivate_at is not null;

create table scim_group (
    group_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    provider_id uuid not null references provider (provider_id),
    display_name text not null,
    display_name_key text not null,
    external_id text,
    resource text not null,
    version bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
create unique index scim_group_display_name_key_uq on scim_group (environment_id, provider_id, display_name_key);
create index scim_group_provider_idx on scim_group (environment_id, provider_id, created_at, group_id);
create index scim_group_modified_idx on scim_group (environment_id, provider_id, updated_at);
create index scim_group_external_id_idx on scim_group (environment_id, provider_id, external_id, created_at);

-- Each user's email addresses, lower-cased, so that `emails.value eq` filters use an index.
create table user_email (
    user_id uuid not null references user_account (user_id) on delete cascade,
    environment_id uuid not null,
    value_key text not null,
    primary key (user_id, value_key)
);
create index user_email_value_idx on user_email (environment_id, value_key, user_id);

-- One row per membership: adding or removing a member touches one row, whatever the group's size.
create table group_member (
    group_id uuid not null references scim_group (group_id) on delete cascade,
    user_id uuid not null references user_account (user_id),
    environment_id uuid not null,
    created_at bigint not null,
    primary key (group_id, user_id)
);
create index group_member_user_idx on group_member (user_id, group_id);

create table sync_log (
    sync_log_id bigint generated always as identity primary key,
    environment_id uuid not null references environment (environment_id),
    at bigint not null,
    provider_id uuid,
    actor_kind text not null,
    actor_id text,
    actor_name text,
    action text not null,
    subject_kind text,
    subject_id text,
    subject_name text,
    details text not null,
    outcome text not null check (outcome in ('success', 'error')),
    message text
);
create index sync_log_at_idx on sync_log (environment_id, at, sync_log_id);
create index sync_log_provider_idx on sync_log (environment_id, provider_id, at, sync_log_id);
create index sync_log_subject_idx on sync_log (environment_id, subject_id, at, sync_log_id);
