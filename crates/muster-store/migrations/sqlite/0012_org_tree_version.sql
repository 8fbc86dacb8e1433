-- A token that changes whenever an environment's organizations, their default roles or its roles
-- change, so that Muster can keep the tree it read and read it again only when the token moved
-- (`MappingStore::rules_and_org_tree`). The triggers set it, so no write can forget to. A new
-- random value rather than a counter: a counter bumped by a change that rolled back (a request's
-- savepoint in a group commit, which the requests after it in the same transaction saw) would be
-- bumped again to the same value by the next change, over a different tree. SQLite has one writer,
-- so the row is no point of contention here.
alter table environment add column tree_version integer not null default 0;

create trigger org_tree_insert after insert on org begin
    update environment set tree_version = random() where environment_id = new.environment_id;
end;
create trigger org_tree_update after update on org begin
    update environment set tree_version = random() where environment_id = new.environment_id;
end;
create trigger org_tree_delete after delete on org begin
    update environment set tree_version = random() where environment_id = old.environment_id;
end;
create trigger org_default_role_tree_insert after insert on org_default_role begin
    update environment set tree_version = random() where environment_id = new.environment_id;
end;
create trigger org_default_role_tree_update after update on org_default_role begin
    update environment set tree_version = random() where environment_id = new.environment_id;
end;
create trigger org_default_role_tree_delete after delete on org_default_role begin
    update environment set tree_version = random() where environment_id = old.environment_id;
end;
create trigger role_tree_insert after insert on role begin
    update environment set tree_version = random() where environment_id = new.environment_id;
end;
create trigger role_tree_update after update on role begin
    update environment set tree_version = random() where environment_id = new.environment_id;
end;
create trigger role_tree_delete after delete on role begin
    update environment set tree_version = random() where environment_id = old.environment_id;
end;
