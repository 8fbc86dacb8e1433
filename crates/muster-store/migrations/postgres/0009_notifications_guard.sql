-- The mass-deactivation guard (docs/notifications.md), per provider: when the provider turns
-- off more than `percent` of its active users and more than `min_users` within
-- `window_secs`, every deactivation from it is held from `held_since` until an administrator
-- releases the hold or restores the users. No row: the defaults, on.
create table provider_guard (
    provider_id uuid primary key references provider (provider_id),
    environment_id uuid not null,
    enabled boolean not null,
    percent bigint not null,
    min_users bigint not null,
    window_secs bigint not null,
    held_since bigint,
    held_turned_off bigint not null default 0
);

-- Administrators' email and which reports they want: daily, errors (only when there were
-- errors) or never.
alter table admin_account add column email text;
alter table admin_account add column report text not null default 'never';
update admin_account set report = 'daily' where role = 'customer_cloud_admin';

-- Mail waiting to be sent, sent, or given up on: one row per recipient. `kind` and
-- `payload` say what to write (rendered when sent); a lease keeps one instance on a message.
create table mail_outbox (
    mail_id bigint generated always as identity primary key,
    environment_id uuid not null,
    recipient text not null,
    kind text not null,
    payload text not null,
    created_at bigint not null,
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    lease_until bigint,
    sent_at bigint,
    failed_at bigint,
    last_error text
);
create index mail_outbox_due_idx on mail_outbox (next_attempt_at) where sent_at is null and failed_at is null;

-- When each periodic notice last went out, so that several instances send it once: the daily
-- report per environment (`scope` the environment), error emails per provider.
create table notice_state (
    kind text not null,
    scope text not null,
    last_at bigint not null,
    primary key (kind, scope)
);
