-- Webhook endpoints (docs/webhooks.md): where events are delivered, each with its own cursor in
-- the feed, its signing secret (kept, not hashed: every delivery is signed with it), and a lease
-- so that one instance at a time delivers to it.
create table webhook_endpoint (
    webhook_id blob primary key,
    environment_id blob not null references environment (environment_id),
    url text not null,
    description text not null,
    event_types text not null,
    secret text not null,
    enabled integer not null,
    failing integer not null,
    after_seq integer not null,
    attempts integer not null,
    first_failure_at integer,
    next_attempt_at integer not null,
    lease_until integer,
    created_at integer not null,
    updated_at integer not null
);
create index webhook_endpoint_due_idx on webhook_endpoint (next_attempt_at);

-- Every delivery attempt: when, which events, what came back.
create table webhook_delivery (
    delivery_id integer primary key autoincrement,
    webhook_id blob not null references webhook_endpoint (webhook_id) on delete cascade,
    environment_id blob not null,
    attempted_at integer not null,
    first_seq integer not null,
    last_seq integer not null,
    status_code integer,
    latency_ms integer not null,
    response text not null,
    error text
);
create index webhook_delivery_webhook_idx on webhook_delivery (webhook_id, delivery_id);
