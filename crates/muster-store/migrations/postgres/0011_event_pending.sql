-- Events committed but not yet numbered (docs/events.md, "Order"). A write transaction adds its
-- events here without waiting for any lock; once it has committed, the sequencer moves them into
-- `event`, numbered after the last seq, one sequencer at a time across processes (an advisory
-- lock). Writers used to number their own events under event_seq's row lock, held through
-- COMMIT, which put every writer of the database in one line.
create table event_pending (
    pending_id bigint generated always as identity primary key,
    event_id uuid not null,
    environment_id uuid not null references environment (environment_id),
    type text not null,
    occurred_at bigint not null,
    provider_id uuid,
    actor text not null,
    data text not null
);
