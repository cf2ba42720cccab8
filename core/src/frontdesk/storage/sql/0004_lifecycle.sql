-- frontdesk 0004: the session lifecycle. Listing (keyset pagination), deleting, purging by
-- inactivity, erasing a contact, and the agent version each session records.
--
-- Listing pages on (last_activity_at, id), newest first: each page starts after the last
-- row of the previous one with a row comparison that the indexes below answer directly,
-- so a page deep in the listing costs what the first one costs (OFFSET would read and
-- throw away every row before it). There is one index per filter, each ending in
-- (last_activity_at, id), so every filter is an index range scan in listing order.
--
-- Deleting a session deletes its turns (the foreign key cascades). A delete takes the
-- session's row lock, as every write does: a write that comes after it finds no row.

alter table public.agent_sessions add column if not exists agent_version text;

create index if not exists agent_sessions_by_activity
    on public.agent_sessions (workspace_id, last_activity_at, id);
create index if not exists agent_sessions_by_agent_activity
    on public.agent_sessions (workspace_id, agent_id, last_activity_at, id);
create index if not exists agent_sessions_by_status_activity
    on public.agent_sessions (workspace_id, status, last_activity_at, id);
create index if not exists agent_sessions_by_mode_activity
    on public.agent_sessions (workspace_id, current_mode, last_activity_at, id);
create index if not exists agent_sessions_by_contact_activity
    on public.agent_sessions (workspace_id, contact_id, last_activity_at, id);
create index if not exists agent_sessions_by_conversation_activity
    on public.agent_sessions (workspace_id, conversation_id, last_activity_at, id);
-- Superseded by the one above (same leading columns).
drop index if exists public.agent_sessions_by_conversation;


-- The JSON shape of a session, now with the agent version that made it.
create or replace function public.frontdesk_session_json(s public.agent_sessions)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'id', s.id,
        'workspace_id', s.workspace_id,
        'agent_id', s.agent_id,
        'conversation_id', s.conversation_id,
        'contact_id', s.contact_id,
        'version', s.version,
        'status', s.status,
        'current_mode', s.current_mode,
        'state', s.state,
        'created_at', s.created_at,
        'updated_at', s.updated_at,
        'last_activity_at', s.last_activity_at,
        'agent_version', s.agent_version
    )
$$;


-- Create a session (as in 0001), recording the agent version. The old signature goes, or
-- PostgREST could not choose between the two.
drop function if exists public.frontdesk_create_session(
    uuid, text, text, text, text, text, jsonb, boolean);

create or replace function public.frontdesk_create_session(
    p_id uuid,
    p_workspace_id text,
    p_agent_id text,
    p_conversation_id text,
    p_contact_id text,
    p_current_mode text,
    p_state jsonb default '{}'::jsonb,
    p_return_existing boolean default false,
    p_agent_version text default null
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.agent_sessions;
begin
    for attempt in 1..3 loop
        insert into public.agent_sessions
            (id, workspace_id, agent_id, conversation_id, contact_id, current_mode, state,
             agent_version)
        values
            (p_id, p_workspace_id, p_agent_id, p_conversation_id, p_contact_id,
             p_current_mode, coalesce(p_state, '{}'::jsonb), p_agent_version)
        on conflict do nothing
        returning * into v_row;
        if found then
            return jsonb_build_object(
                'session', public.frontdesk_session_json(v_row), 'created', true);
        end if;

        select * into v_row from public.agent_sessions
        where workspace_id = p_workspace_id
          and conversation_id = p_conversation_id
          and agent_id = p_agent_id
          and status = 'active';
        if found then
            if v_row.id = p_id or p_return_existing then
                return jsonb_build_object(
                    'session', public.frontdesk_session_json(v_row),
                    'created', v_row.id = p_id);
            end if;
            perform public.frontdesk_raise('409', 'session_already_active',
                'the conversation already has an active session with this agent',
                jsonb_build_object('existing_session_id', v_row.id));
        end if;

        if exists (select 1 from public.agent_sessions where id = p_id) then
            perform public.frontdesk_raise('409', 'session_id_taken',
                'a session with this id exists already', '{}'::jsonb);
        end if;
        -- The active session was closed between our insert and our read: try again.
    end loop;
    perform public.frontdesk_raise('409', 'session_already_active',
        'the conversation''s active session kept changing; retry', '{}'::jsonb);
    return null;
end;
$$;


-- One page of a workspace's sessions, newest activity first, after (p_after_activity,
-- p_after_id) when given. Filters left NULL do not apply. The statement is built from the
-- filters that are set (values are always bound, never spliced in), so each shape gets a
-- plan that uses its index; a generic plan with "p_x is null or ..." would not.
create or replace function public.frontdesk_list_sessions(
    p_workspace_id text,
    p_limit integer,
    p_agent_id text default null,
    p_status text default null,
    p_mode text default null,
    p_contact_id text default null,
    p_conversation_id text default null,
    p_updated_after timestamptz default null,
    p_updated_before timestamptz default null,
    p_after_activity timestamptz default null,
    p_after_id uuid default null
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
    v_where text := 's.workspace_id = $1';
    v_items jsonb;
begin
    if p_agent_id is not null then v_where := v_where || ' and s.agent_id = $3'; end if;
    if p_status is not null then v_where := v_where || ' and s.status = $4'; end if;
    if p_mode is not null then v_where := v_where || ' and s.current_mode = $5'; end if;
    if p_contact_id is not null then v_where := v_where || ' and s.contact_id = $6'; end if;
    if p_conversation_id is not null then
        v_where := v_where || ' and s.conversation_id = $7';
    end if;
    if p_updated_after is not null then
        v_where := v_where || ' and s.last_activity_at > $8';
    end if;
    if p_updated_before is not null then
        v_where := v_where || ' and s.last_activity_at < $9';
    end if;
    if p_after_activity is not null then
        v_where := v_where || ' and (s.last_activity_at, s.id) < ($10, $11)';
    end if;
    -- Each item is built inline: a per-row call of a function with its own search_path
    -- cannot be inlined, and costs more than finding the page.
    execute format(
        'select coalesce(jsonb_agg(jsonb_build_object('
        '    ''id'', p.id, ''workspace_id'', p.workspace_id, ''agent_id'', p.agent_id,'
        '    ''conversation_id'', p.conversation_id, ''contact_id'', p.contact_id,'
        '    ''version'', p.version, ''status'', p.status, ''current_mode'', p.current_mode,'
        '    ''state'', p.state, ''created_at'', p.created_at, ''updated_at'', p.updated_at,'
        '    ''last_activity_at'', p.last_activity_at, ''agent_version'', p.agent_version,'
        '    ''turn_count'', p.turn_count, ''tokens_used'', p.tokens_used)'
        '    order by p.last_activity_at desc, p.id desc), ''[]''::jsonb)'
        ' from (select s.* from public.agent_sessions s where %s'
        '       order by s.last_activity_at desc, s.id desc limit $2) p',
        v_where)
    into v_items
    using p_workspace_id, p_limit, p_agent_id, p_status, p_mode, p_contact_id,
          p_conversation_id, p_updated_after, p_updated_before, p_after_activity, p_after_id;
    return v_items;
end;
$$;


-- Delete a session; its turns go with it. True if there was one.
create or replace function public.frontdesk_delete_session(p_workspace_id text, p_session_id uuid)
returns boolean
language plpgsql
security invoker
set search_path = ''
as $$
begin
    delete from public.agent_sessions where id = p_session_id and workspace_id = p_workspace_id;
    return found;
end;
$$;


-- Delete up to p_limit sessions idle for p_inactive_seconds (by the database's clock),
-- oldest first, optionally only those with p_status; return how many. A session being
-- written right now (its row locked) is skipped rather than waited for: each batch is
-- short, and the next one picks up what this one skipped.
create or replace function public.frontdesk_purge_sessions(
    p_workspace_id text,
    p_inactive_seconds double precision,
    p_status text default null,
    p_limit integer default 500
)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_cutoff timestamptz := now() - make_interval(secs => p_inactive_seconds);
    v_count integer;
begin
    if p_status is null then
        delete from public.agent_sessions s using (
            select id from public.agent_sessions
            where workspace_id = p_workspace_id and last_activity_at < v_cutoff
            order by last_activity_at, id
            limit p_limit
            for update skip locked
        ) doomed
        where s.id = doomed.id;
    else
        delete from public.agent_sessions s using (
            select id from public.agent_sessions
            where workspace_id = p_workspace_id and status = p_status
              and last_activity_at < v_cutoff
            order by last_activity_at, id
            limit p_limit
            for update skip locked
        ) doomed
        where s.id = doomed.id;
    end if;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;


-- Delete every session of a contact in the workspace, with their turns.
-- Returns {"sessions": n, "turns": n}.
create or replace function public.frontdesk_erase_contact(p_workspace_id text, p_contact_id text)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_sessions integer;
    v_turns bigint;
begin
    with gone as (
        delete from public.agent_sessions
        where workspace_id = p_workspace_id and contact_id = p_contact_id
        returning turn_count
    )
    select count(*), coalesce(sum(turn_count), 0) into v_sessions, v_turns from gone;
    return jsonb_build_object('sessions', v_sessions, 'turns', v_turns);
end;
$$;


-- Move a session to the installed version of its agent: mode, state and agent version,
-- in one versioned commit (the same checks as frontdesk_commit). Returns the session.
create or replace function public.frontdesk_migrate_session(
    p_workspace_id text,
    p_session_id uuid,
    p_expected_version integer,
    p_current_mode text,
    p_state jsonb,
    p_agent_version text default null
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.agent_sessions;
begin
    select * into v_row from public.agent_sessions
    where id = p_session_id and workspace_id = p_workspace_id
    for update;
    if not found then
        perform public.frontdesk_raise('404', 'session_not_found',
            'no such session in this workspace', '{}'::jsonb);
    end if;
    if v_row.status <> 'active' then
        perform public.frontdesk_raise('409', 'session_closed',
            'the session accepts no more writes', jsonb_build_object('status', v_row.status));
    end if;
    if v_row.version <> p_expected_version then
        perform public.frontdesk_raise('409', 'version_conflict',
            'the session changed since it was read',
            jsonb_build_object('current_version', v_row.version));
    end if;
    if p_state is null or jsonb_typeof(p_state) <> 'object' then
        raise exception using errcode = '22023', message = 'p_state must be a JSON object';
    end if;
    update public.agent_sessions set
        version = version + 1,
        current_mode = p_current_mode,
        state = p_state,
        agent_version = p_agent_version,
        updated_at = greatest(clock_timestamp(), updated_at)
    where id = p_session_id
    returning * into v_row;
    return public.frontdesk_session_json(v_row);
end;
$$;


-- Row-level security, and EXECUTE for service_role only, on what this migration added.
select public.frontdesk_secure();
