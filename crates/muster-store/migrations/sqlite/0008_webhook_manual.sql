-- Deliveries an administrator asks for outside an endpoint's order (docs/webhooks.md): one kept
-- event sent again (`seq`), or a test event (`seq` null). Each is sent once, ahead of the
-- endpoint's next batch, and its attempt goes to the delivery log.
create table webhook_manual (
    manual_id integer primary key autoincrement,
    webhook_id blob not null references webhook_endpoint (webhook_id) on delete cascade,
    environment_id blob not null,
    seq integer,
    requested_at integer not null
);
create index webhook_manual_webhook_idx on webhook_manual (webhook_id, manual_id);

-- What an attempt sent: the endpoint's feed (`feed`), one event again (`redeliver`), or a test
-- event (`test`).
alter table webhook_delivery add column kind text not null default 'feed';
create index webhook_delivery_attempted_idx on webhook_delivery (attempted_at);
