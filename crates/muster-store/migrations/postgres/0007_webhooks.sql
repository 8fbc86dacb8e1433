-- Webhook endpoints (docs/webhooks.md): where events are delivered, each with its own cursor in
-- the feed, its signing secret (kept, not hashed: every delivery is signed with it), and a lease
-- so that one instance at a time delivers to it.
create table webhook_endpoint (
    webhook_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    url text not null,
    description text not null,
    event_types text not null,
    secret text not null,
    enabled boolean not null,
    failing boolean not null,
    after_seq bigint not null,
    attempts bigint not null,
    first_failure_at bigint,
    next_attempt_at bigint not null,
    lease_until bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index webhook_endpoint_due_idx on webhook_endpoint (next_attempt_at);

-- Every delivery attempt: when, which events, what came back.
create table webhook_delivery (
    delivery_id bigint generated always as identity primary key,
    webhook_id uuid not null references webhook_endpoint (webhook_id) on delete cascade,
    environment_id uuid not null,
    attempted_at bigint not null,
    first_seq bigint not null,
    last_seq bigint not null,
    status_code bigint,
    latency_ms bigint not null,
    response text not null,
    error text
);
create index webhook_delivery_webhook_idx on webhook_delivery (webhook_id, delivery_id);
