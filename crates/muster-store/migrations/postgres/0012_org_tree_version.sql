-- SQLite's version 12 adds the token of an environment's organization tree, which lets Muster
-- keep the tree between the users it creates. PostgreSQL reads the tree every time: a token that
-- every change to the tree moves would be one row that all those changes update (queueing them
-- behind each other, and able to deadlock two), and numbers taken from a sequence do not follow
-- the order in which changes commit. Nothing changes here.
select 1;
