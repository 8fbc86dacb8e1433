//! The event feed (docs/events.md): every change to the directory as an event, written in the
//! change's transaction ([`outbox`]), numbered in commit order by the store, and read by
//! applications through a cursor ([`feed`]).

pub mod feed;
pub mod kind;
pub mod outbox;
