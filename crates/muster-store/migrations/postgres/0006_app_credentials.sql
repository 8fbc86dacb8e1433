-- Application credentials (docs/api.md, "Application credentials") are API tokens with scopes:
-- `scopes` lists what they may read (comma-separated); null is an administrator token.
alter table admin_token add column scopes text;
