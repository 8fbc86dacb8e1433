-- Organization mapping and role mapping (PRODUCT.md "Organization mapping", "Role mapping").

-- Each provider's organization mapping method. No row: new users go to the root organization.
create table org_mapping (
    provider_id uuid primary key references provider (provider_id),
    environment_id uuid not null references environment (environment_id),
    method text not null check (method in ('single', 'c42_org_name', 'attribute', 'groups')),
    -- single: the organization new users go to.
    org_id uuid references org (org_id),
    -- attribute: the SCIM attribute path whose value names the organization.
    attribute text,
    -- c42_org_name, attribute: where organizations the mapping creates go (null: the root).
    parent_org_id uuid references org (org_id),
    -- c42_org_name, attribute, groups: where users the mapping cannot place go (null: the root).
    unmapped_org_id uuid references org (org_id),
    updated_at bigint not null
);

-- Method "groups": entries mapping one or more SCIM groups to an organization, in priority
-- order (1 first).
create table group_org_mapping (
    group_org_mapping_id uuid primary key,
    environment_id uuid not null references environment (environment_id),
    provider_id uuid not null references provider (provider_id),
    org_id uuid not null references org (org_id),
    priority bigint not null,
    created_at bigint not null
);
create index group_org_mapping_provider_idx on group_org_mapping (environment_id, provider_id, priority);

-- A group belongs to at most one entry.
create table group_org_mapping_group (
    group_id uuid primary key references scim_group (group_id) on delete cascade,
    group_org_mapping_id uuid not null references group_org_mapping (group_org_mapping_id) on delete cascade,
    environment_id uuid not null
);
create index group_org_mapping_group_entry_idx on group_org_mapping_group (group_org_mapping_id);

-- Role mapping: a group's roles. A group's rows are its one role mapping.
create table role_mapping (
    group_id uuid not null references scim_group (group_id) on delete cascade,
    role_id uuid not null references role (role_id),
    environment_id uuid not null,
    provider_id uuid not null references provider (provider_id),
    primary key (group_id, role_id)
);
create index role_mapping_role_idx on role_mapping (role_id);
create index role_mapping_provider_idx on role_mapping (environment_id, provider_id);
