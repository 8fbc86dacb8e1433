-- Organization mapping and role mapping (PRODUCT.md "Organization mapping", "Role mapping").

-- Each provider's organization mapping method. No row: new users go to the root organization.
create table org_mapping (
    provider_id blob primary key references provider (provider_id),
    environment_id blob not null references environment (environment_id),
    method text not null check (method in ('single', 'c42_org_name', 'attribute', 'groups')),
    -- single: the organization new users go to.
    org_id blob references org (org_id),
    -- attribute: the SCIM attribute path whose value names the organization.
    attribute text,
    -- c42_org_name, attribute: where organizations the mapping creates go (null: the root).
    parent_org_id blob references org (org_id),
    -- c42_org_name, attribute, groups: where users the mapping cannot place go (null: the root).
    unmapped_org_id blob references org (org_id),
    updated_at integer not null
);

-- Method "groups": entries mapping one or more SCIM groups to an organization, in priority
-- order (1 first).
create table group_org_mapping (
    group_org_mapping_id blob primary key,
    environment_id blob not null references environment (environment_id),
    provider_id blob not null references provider (provider_id),
    org_id blob not null references org (org_id),
    priority integer not null,
    created_at integer not null
);
create index group_org_mapping_provider_idx on group_org_mapping (environment_id, provider_id, priority);

-- A group belongs to at most one entry.
create table group_org_mapping_group (
    group_id blob primary key references scim_group (group_id) on delete cascade,
    group_org_mapping_id blob not null references group_org_mapping (group_org_mapping_id) on delete cascade,
    environment_id blob not null
) without rowid;
create index group_org_mapping_group_entry_idx on group_org_mapping_group (group_org_mapping_id);

-- Role mapping: a group's roles. A group's rows are its one role mapping.
create table role_mapping (
    group_id blob not null references scim_group (group_id) on delete cascade,
    role_id blob not null references role (role_id),
    environment_id blob not null,
    provider_id blob not null references provider (provider_id),
    primary key (group_id, role_id)
) without rowid;
create index role_mapping_role_idx on role_mapping (role_id);
create index role_mapping_provider_idx on role_mapping (environment_id, provider_id);
