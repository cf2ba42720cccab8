-- frontdesk 0001: sessions and turns, and the functions the Supabase backend calls.
--
-- Every operation of the backend is one of these functions, called with one HTTP request
-- (PostgREST runs each request in one transaction), so each is atomic. The commit function
-- locks the session row, checks the expected version, and writes fields, state and turns
-- together. Errors carry a PTnnn SQLSTATE (PostgREST answers with status nnn) and, in
-- `detail`, a JSON object whose `kind` the backend maps to a frontdesk error.
--
-- Security: row-level security is on, with no policy, so the anon and authenticated roles
-- see nothing; the functions are `security invoker` and only service_role may run them.

create table if not exists public.agent_sessions (
    id               uuid primary key,
    workspace_id     text not null check (workspace_id <> ''),
    agent_id         text not null check (agent_id <> ''),
    conversation_id  text not null check (conversation_id <> ''),
    contact_id       text not null check (contact_id <> ''),
    version          integer not null default 1 check (version >= 1),
    status           text not null default 'active'
                     check (status in ('active', 'closed', 'handed_off')),
    current_mode     text not null,
    state            jsonb not null default '{}'::jsonb check (jsonb_typeof(state) = 'object'),
    -- Running totals, kept in the same transaction as the turns they count.
    turn_count       integer not null default 0 check (turn_count >= 0),
    tokens_used      bigint not null default 0 check (tokens_used >= 0),
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    last_activity_at timestamptz not null default now()
);

-- At most one active session per (workspace, conversation, agent); also the index behind
-- find-active-by-conversation.
create unique index if not exists agent_sessions_one_active
    on public.agent_sessions (workspace_id, conversation_id, agent_id)
    where status = 'active';

-- Listing a workspace's sessions of a conversation (history, dashboards).
create index if not exists agent_sessions_by_conversation
    on public.agent_sessions (workspace_id, conversation_id, created_at);

create table if not exists public.agent_turns (
    session_id      uuid not null references public.agent_sessions (id) on delete cascade,
    turn_number     integer not null check (turn_number >= 1),
    role            text not null check (role in ('user', 'assistant', 'system', 'tool')),
    content         text not null,
    intent_detected text,
    confidence      double precision check (confidence is null or confidence between 0 and 1),
    tools_called    jsonb not null default '[]'::jsonb check (jsonb_typeof(tools_called) = 'array'),
    tokens_used     integer not null default 0 check (tokens_used >= 0),
    created_at      timestamptz not null default now(),
    primary key (session_id, turn_number)
);

-- Row-level security and privileges: see frontdesk_secure() at the end of this file.


-- The JSON shape of a session, as frontdesk.models.Session reads it.
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
        'last_activity_at', s.last_activity_at
    )
$$;


create or replace function public.frontdesk_turn_json(t public.agent_turns)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'session_id', t.session_id,
        'turn_number', t.turn_number,
        'role', t.role,
        'content', t.content,
        'intent_detected', t.intent_detected,
        'confidence', t.confidence,
        'tools_called', t.tools_called,
        'tokens_used', t.tokens_used,
        'created_at', t.created_at
    )
$$;


-- Raise a frontdesk error: PTnnn makes PostgREST answer with status nnn, and `detail`
-- carries the machine-readable JSON the backend maps (never the message text).
create or replace function public.frontdesk_raise(status text, kind text, message text, detail jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
    raise exception using
        errcode = 'PT' || status,
        message = message,
        detail = (jsonb_build_object('kind', kind) || detail)::text,
        hint = 'frontdesk';
end;
$$;


-- Create a session, or find the conversation's active one.
-- Returns {"session": ..., "created": bool}. Two concurrent creators end with one session:
-- the partial unique index makes the second insert a no-op, and it then reads the first.
-- Calling it again with the same id (the retry of a create whose answer was lost) returns
-- that session as created.
create or replace function public.frontdesk_create_session(
    p_id uuid,
    p_workspace_id text,
    p_agent_id text,
    p_conversation_id text,
    p_contact_id text,
    p_current_mode text,
    p_state jsonb default '{}'::jsonb,
    p_return_existing boolean default false
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
            (id, workspace_id, agent_id, conversation_id, contact_id, current_mode, state)
        values
            (p_id, p_workspace_id, p_agent_id, p_conversation_id, p_contact_id,
             p_current_mode, coalesce(p_state, '{}'::jsonb))
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


create or replace function public.frontdesk_get_session(p_workspace_id text, p_session_id uuid)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select public.frontdesk_session_json(s)
    from public.agent_sessions s
    where s.id = p_session_id and s.workspace_id = p_workspace_id
$$;


create or replace function public.frontdesk_find_active_session(
    p_workspace_id text, p_conversation_id text, p_agent_id text
)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select public.frontdesk_session_json(s)
    from public.agent_sessions s
    where s.workspace_id = p_workspace_id
      and s.conversation_id = p_conversation_id
      and s.agent_id = p_agent_id
      and s.status = 'active'
$$;


-- Apply one atomic write. See frontdesk.storage.base.Commit for the meaning of each part.
-- p_state_ops: [{"op": "append_intent", "intent": ...} | {"op": "append_template", "name": ...}
--              | {"op": "merge_captured_data", "data": {...}} | {"op": "merge_data", "data": {...}}]
-- p_turns: [{"role", "content", "turn_number"?, "intent_detected"?, "confidence"?,
--            "tools_called"?, "tokens_used"?}]
-- Returns {"session": ..., "turns": [...]}.
create or replace function public.frontdesk_commit(
    p_workspace_id text,
    p_session_id uuid,
    p_expected_version integer default null,
    p_current_mode text default null,
    p_mode_allowed_from jsonb default null,
    p_status text default null,
    p_last_activity_at timestamptz default null,
    p_state jsonb default null,
    p_state_ops jsonb default '[]'::jsonb,
    p_turns jsonb default '[]'::jsonb
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.agent_sessions;
    v_now timestamptz;
    v_state jsonb;
    v_op jsonb;
    v_intents jsonb;
    v_turn jsonb;
    v_index integer := 0;
    v_new_turns integer := coalesce(jsonb_array_length(p_turns), 0);
    v_tokens bigint := 0;
    v_turns jsonb;
begin
    -- The row lock serialises writers of one session: versions and turn numbers follow.
    select * into v_row from public.agent_sessions
    where id = p_session_id and workspace_id = p_workspace_id
    for update;
    if not found then
        perform public.frontdesk_raise('404', 'session_not_found',
            'no such session in this workspace', '{}'::jsonb);
    end if;
    -- Stamped after the lock, never before the last write: a session's timestamps, its
    -- turns' and its intents' follow the order of the writes (now() is the transaction's
    -- start, which can be earlier than the write the lock made us wait for).
    v_now := greatest(clock_timestamp(), v_row.updated_at);
    if v_row.status <> 'active' then
        perform public.frontdesk_raise('409', 'session_closed',
            'the session accepts no more writes', jsonb_build_object('status', v_row.status));
    end if;
    if p_expected_version is not null and v_row.version <> p_expected_version then
        perform public.frontdesk_raise('409', 'version_conflict',
            'the session changed since it was read',
            jsonb_build_object('current_version', v_row.version));
    end if;
    if p_current_mode is not null and p_mode_allowed_from is not null
       and not coalesce((p_mode_allowed_from -> v_row.agent_id) ? v_row.current_mode, false) then
        perform public.frontdesk_raise('422', 'invalid_transition',
            'the agent''s state machine does not allow this move',
            jsonb_build_object('agent_id', v_row.agent_id, 'current_mode', v_row.current_mode,
                               'requested_mode', p_current_mode));
    end if;
    for v_turn in select value from jsonb_array_elements(coalesce(p_turns, '[]'::jsonb)) loop
        v_index := v_index + 1;
        if v_turn ? 'turn_number' and jsonb_typeof(v_turn -> 'turn_number') = 'number'
           and (v_turn ->> 'turn_number')::integer <> v_row.turn_count + v_index then
            perform public.frontdesk_raise('409', 'turn_number_conflict',
                'that turn number is not the next one',
                jsonb_build_object('turn_number', (v_turn ->> 'turn_number')::integer,
                                   'next_turn_number', v_row.turn_count + v_index));
        end if;
        v_tokens := v_tokens + coalesce((v_turn ->> 'tokens_used')::bigint, 0);
    end loop;

    v_state := coalesce(p_state, v_row.state);
    for v_op in select value from jsonb_array_elements(coalesce(p_state_ops, '[]'::jsonb)) loop
        case v_op ->> 'op'
        when 'append_intent' then
            v_intents := coalesce(v_state -> 'intents_seen', '[]'::jsonb);
            v_state := jsonb_set(v_state, '{intents_seen}', v_intents || jsonb_build_array(
                jsonb_build_object('intent', v_op ->> 'intent',
                                   'order', jsonb_array_length(v_intents) + 1,
                                   'seen_at', v_now)));
        when 'append_template' then
            v_state := jsonb_set(v_state, '{templates_sent}',
                coalesce(v_state -> 'templates_sent', '[]'::jsonb)
                || jsonb_build_array(v_op ->> 'name'));
        when 'merge_captured_data' then
            v_state := jsonb_set(v_state, '{captured_data}',
                coalesce(v_state -> 'captured_data', '{}'::jsonb) || (v_op -> 'data'));
        when 'merge_data' then
            v_state := jsonb_set(v_state, '{data}',
                coalesce(v_state -> 'data', '{}'::jsonb) || (v_op -> 'data'));
        else
            raise exception using errcode = '22023',
                message = format('unknown state operation %L', v_op ->> 'op');
        end case;
    end loop;

    with new_turns as (
        insert into public.agent_turns
            (session_id, turn_number, role, content, intent_detected, confidence,
             tools_called, tokens_used, created_at)
        select p_session_id,
               v_row.turn_count + t.ordinality,
               t.value ->> 'role',
               t.value ->> 'content',
               t.value ->> 'intent_detected',
               (t.value ->> 'confidence')::double precision,
               coalesce(t.value -> 'tools_called', '[]'::jsonb),
               coalesce((t.value ->> 'tokens_used')::integer, 0),
               v_now
        from jsonb_array_elements(coalesce(p_turns, '[]'::jsonb)) with ordinality as t
        returning *
    )
    select coalesce(jsonb_agg(public.frontdesk_turn_json(n) order by n.turn_number), '[]'::jsonb)
    into v_turns
    from new_turns n;

    update public.agent_sessions set
        version = version + 1,
        status = coalesce(p_status, status),
        current_mode = coalesce(p_current_mode, current_mode),
        state = v_state,
        turn_count = turn_count + v_new_turns,
        tokens_used = tokens_used + v_tokens,
        updated_at = v_now,
        last_activity_at = coalesce(p_last_activity_at,
            case when v_new_turns > 0 then v_now else last_activity_at end)
    where id = p_session_id
    returning * into v_row;

    return jsonb_build_object('session', public.frontdesk_session_json(v_row), 'turns', v_turns);
end;
$$;


-- The session's turns in order; with p_limit, the last p_limit of them.
create or replace function public.frontdesk_list_turns(
    p_workspace_id text, p_session_id uuid, p_limit integer default null
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
    v_turns jsonb;
begin
    if not exists (select 1 from public.agent_sessions
                   where id = p_session_id and workspace_id = p_workspace_id) then
        perform public.frontdesk_raise('404', 'session_not_found',
            'no such session in this workspace', '{}'::jsonb);
    end if;
    select coalesce(jsonb_agg(public.frontdesk_turn_json(t) order by t.turn_number), '[]'::jsonb)
    into v_turns
    from (
        select * from public.agent_turns
        where session_id = p_session_id
        order by turn_number desc
        limit p_limit
    ) t;
    return v_turns;
end;
$$;


-- Count and token total of a session's turns, from the running totals on its row.
create or replace function public.frontdesk_turn_stats(p_workspace_id text, p_session_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
    v_row public.agent_sessions;
begin
    select * into v_row from public.agent_sessions
    where id = p_session_id and workspace_id = p_workspace_id;
    if not found then
        perform public.frontdesk_raise('404', 'session_not_found',
            'no such session in this workspace', '{}'::jsonb);
    end if;
    return jsonb_build_object('count', v_row.turn_count, 'tokens_used', v_row.tokens_used);
end;
$$;


-- What `frontdesk db check` reports: row-level security on both tables, and every privilege
-- Supabase's API roles anon and authenticated hold on a frontdesk table or function (there
-- should be none).
create or replace function public.frontdesk_health()
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select jsonb_build_object(
        'schema_version', 1,
        'rls', (select jsonb_object_agg(c.relname, c.relrowsecurity)
                from pg_catalog.pg_class c
                join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                where n.nspname = 'public' and c.relname in ('agent_sessions', 'agent_turns')),
        'exposed', coalesce((
            select jsonb_agg(r.rolname || ': ' || x.privilege || ' on ' || x.object
                             order by r.rolname, x.object, x.privilege)
            from pg_catalog.pg_roles r
            cross join lateral (
                select c.relname::text as object, p.privilege
                from pg_catalog.pg_class c
                join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                        'REFERENCES', 'TRIGGER']) as p(privilege)
                where n.nspname = 'public' and c.relkind in ('r', 'p')
                  and (c.relname like 'agent\_%' or c.relname like 'frontdesk\_%')
                  and pg_catalog.has_table_privilege(r.oid, c.oid, p.privilege)
                union all
                select f.proname::text || '()', 'EXECUTE'
                from pg_catalog.pg_proc f
                join pg_catalog.pg_namespace n on n.oid = f.pronamespace
                where n.nspname = 'public' and f.proname like 'frontdesk\_%'
                  and pg_catalog.has_function_privilege(r.oid, f.oid, 'EXECUTE')
            ) x
            where r.rolname in ('anon', 'authenticated')), '[]'::jsonb)
    )
$$;


-- Lock down every frontdesk object: tables named agent_* or frontdesk_*, functions named
-- frontdesk_*, in schema public. Every migration ends by calling it, so the objects it adds
-- are covered too, and calling it again changes nothing.
-- - Tables: row-level security on, with no policy; no privilege for PUBLIC. Where Supabase's
--   API roles exist, anon and authenticated get nothing (Supabase's default privileges
--   grant them ALL on new tables, TRUNCATE included) and service_role gets what the
--   functions need.
-- - Functions: EXECUTE revoked from PUBLIC (and anon, authenticated); granted to
--   service_role where it exists.
-- On a plain PostgreSQL without those roles, the role that ran the migrations owns
-- everything and uses it as it is; grant other roles what they need yourself.
create or replace function public.frontdesk_secure()
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_object record;
    v_role text;
    v_api_roles text[] := array(
        select rolname::text from pg_catalog.pg_roles
        where rolname in ('anon', 'authenticated') order by rolname);
    v_service boolean := exists (
        select 1 from pg_catalog.pg_roles where rolname = 'service_role');
begin
    for v_object in
        select c.oid::regclass::text as name, c.relkind, c.relname
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public'
          and c.relkind in ('r', 'p', 'S')
          and (c.relname like 'agent\_%' or c.relname like 'frontdesk\_%')
    loop
        if v_object.relkind = 'S' then
            execute format('revoke all on sequence %s from public', v_object.name);
        else
            execute format('alter table %s enable row level security', v_object.name);
            execute format('revoke all on table %s from public', v_object.name);
        end if;
        foreach v_role in array v_api_roles loop
            execute format('revoke all on %s %s from %I',
                case when v_object.relkind = 'S' then 'sequence' else 'table' end,
                v_object.name, v_role);
        end loop;
        if v_service then
            if v_object.relkind = 'S' then
                execute format('grant usage, select on sequence %s to service_role',
                    v_object.name);
            elsif v_object.relname = 'frontdesk_migrations' then
                execute format('grant select on table %s to service_role', v_object.name);
            else
                execute format('grant select, insert, update, delete on table %s to service_role',
                    v_object.name);
            end if;
        end if;
    end loop;

    for v_object in
        select p.oid::regprocedure::text as name, p.proname
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.proname like 'frontdesk\_%'
    loop
        execute format('revoke execute on function %s from public', v_object.name);
        foreach v_role in array v_api_roles loop
            execute format('revoke execute on function %s from %I', v_object.name, v_role);
        end loop;
        if v_service and v_object.proname <> 'frontdesk_secure' then
            execute format('grant execute on function %s to service_role', v_object.name);
        end if;
    end loop;
end;
$$;

select public.frontdesk_secure();
