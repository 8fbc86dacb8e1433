-- Console sign-in with the company's identity provider (docs/console.md): administrators made
-- just in time from an ID token are known by issuer and subject.
alter table admin_account add column oidc_subject text;
create unique index admin_account_oidc_subject_uq on admin_account (environment_id, oidc_subject) where oidc_subject is not null;

-- Sign-ins under way: the state's hash, with the nonce and PKCE verifier they were started
-- with. Each is taken once, at the callback, so a replayed callback finds nothing.
create table oidc_login (
    state_hash text primary key,
    environment_id uuid not null,
    nonce text not null,
    verifier text not null,
    created_at bigint not null
);
