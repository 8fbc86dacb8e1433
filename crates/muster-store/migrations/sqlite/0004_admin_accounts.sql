-- Administrators who sign in to the console with a password, and their sessions.

create table admin_account (
    admin_id blob primary key,
    environment_id blob not null references environment (environment_id),
    username text not null,
    username_key text not null,
    -- PHC string: argon2id with its parameters and salt.
    password_hash text not null,
    role text not null check (role in ('customer_cloud_admin', 'identity_management_admin', 'audit_log_viewer')),
    created_at integer not null,
    last_sign_in_at integer,
    -- Consecutive failed sign-ins, and until when sign-in is refused because of them.
    failed_sign_ins integer not null default 0,
    locked_until integer
);
create unique index admin_account_username_uq on admin_account (environment_id, username_key);

-- A console session: the SHA-256 of its cookie secret, its CSRF token, and its clock.
create table admin_session (
    session_id blob primary key,
    environment_id blob not null references environment (environment_id),
    admin_id blob not null references admin_account (admin_id),
    token_hash blob not null,
    csrf_token text not null,
    created_at integer not null,
    last_seen_at integer not null,
    expires_at integer not null,
    revoked_at integer
);
create unique index admin_session_token_uq on admin_session (token_hash);
create index admin_session_admin_idx on admin_session (admin_id);
