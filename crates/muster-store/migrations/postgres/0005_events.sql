-- The event feed (docs/events.md): one row per change, written in the transaction that makes
-- the change. `seq` is handed out from event_seq's one row as the last statement before COMMIT:
-- the row lock serialises those tails, so events become visible in seq order and a reader that
-- has seen seq N never later sees a smaller one appear.
create table event_seq (
    only_row boolean primary key default true check (only_row),
    last_seq bigint not null
);
insert into event_seq (only_row, last_seq) values (true, 0);

-- Everything up to pruned_through was deleted by retention: a cursor before it is stale.
create table event_horizon (
    only_row boolean primary key default true check (only_row),
    pruned_through bigint not null
);
insert into event_horizon (only_row, pruned_through) values (true, 0);

create table event (
    seq bigint primary key,
    event_id uuid not null,
    environment_id uuid not null references environment (environment_id),
    type text not null,
    occurred_at bigint not null,
    provider_id uuid,
    actor text not null,
    data text not null
);
-- No other index: events are appended in seq order (on SQLite seq is the rowid), read by seq
-- range and pruned from the oldest, so each event costs one b-tree insert on the writer.
