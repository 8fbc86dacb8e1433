-- The name a person is shown as (the SCIM displayName, else name.formatted, else the given and
-- family names: `UserRecord::full_name`), lower-cased, so that administrators' user searches find
-- "Smith" for a user an identity provider sent only as name.givenName and name.familyName (Okta's
-- default). Muster writes it with every user; this fills it for the users already here.
alter table user_account add column shown_name_key text not null default '';

update user_account set shown_name_key = lower(coalesce(
    nullif(btrim(display_name), ''),
    nullif(btrim(resource::jsonb #>> '{name,formatted}'), ''),
    btrim(coalesce(btrim(resource::jsonb #>> '{name,givenName}'), '') || ' '
        || coalesce(btrim(resource::jsonb #>> '{name,familyName}'), ''))
));
