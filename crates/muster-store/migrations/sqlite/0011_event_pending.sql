-- PostgreSQL's version 11 adds the table its sequencer numbers events from. SQLite has a single
-- writer, which numbers events inside the transaction that writes them: nothing changes here.
select 1;
