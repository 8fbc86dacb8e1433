-- The event feed (docs/events.md): one row per change, written in the transaction that makes
-- the change. `seq` is handed out from event_seq's one row at commit; SQLite's single writer
-- already makes that commit order.
create table event_seq (
    only_row integer primary key check (only_row = 1),
    last_seq integer not null
);
insert into event_seq (only_row, last_seq) values (1, 0);

-- Everything up to pruned_through was deleted by retention: a cursor before it is stale.
create table event_horizon (
    only_row integer primary key check (only_row = 1),
    pruned_through integer not null
);
insert into event_horizon (only_row, pruned_through) values (1, 0);

create table event (
    seq integer primary key,
    event_id blob not null,
    environment_id blob not null references environment (environment_id),
    type text not null,
    occurred_at integer not null,
    provider_id blob,
    actor text not null,
    data text not null
);
-- No other index: events are appended in seq order (on SQLite seq is the rowid), read by seq
-- range and pruned from the oldest, so each event costs one b-tree insert on the writer.
