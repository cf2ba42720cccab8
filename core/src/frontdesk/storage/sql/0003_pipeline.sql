-- frontdesk 0003: the message pipeline (receive / complete) and idempotent writes.
--
-- Upgrades a database at 0001 (and 0002) in place: new columns have defaults, existing
-- sessions and turns are kept as they are (no run in flight, no message ids, no pending
-- messages).
--
-- Per session, the row keeps its run bookkeeping: `run_token` (the last fencing token
-- handed out), `run_expires_at` (set while a run holds the session: live until then,
-- abandoned after) and `run_inputs` (the turn numbers that run answers). User turns
-- recorded by `frontdesk_receive` carry their channel `message_id` and stay `pending`
-- until a completed run answers them. Expiry is judged by the database's clock
-- (clock_timestamp()), never a worker's. The rules mirror frontdesk.storage.runs.
--
-- Idempotency: a write that names a key stores its result in `agent_idempotency`, keyed
-- by (session, key), in the same transaction; a repeat of the key returns that result and
-- writes nothing. Records live as long as their session (ON DELETE CASCADE).

alter table public.agent_sessions
    add column if not exists run_token bigint not null default 0 check (run_token >= 0),
    add column if not exists run_expires_at timestamptz,
    add column if not exists run_inputs integer[] not null default '{}';

alter table public.agent_turns
    add column if not exists message_id text,
    add column if not exists pending boolean not null default false;

-- A message id is recorded once per session (and, through frontdesk_receive's lookup, once
-- per conversation); the second index finds a message id across a conversation's sessions.
create unique index if not exists agent_turns_message_once
    on public.agent_turns (session_id, message_id) where message_id is not null;
create index if not exists agent_turns_by_message
    on public.agent_turns (message_id) where message_id is not null;
create index if not exists agent_turns_pending
    on public.agent_turns (session_id, turn_number) where pending;
-- resume_abandoned's scan: a workspace's sessions whose run expires soonest.
create index if not exists agent_sessions_run_expiry
    on public.agent_sessions (workspace_id, run_expires_at) where run_expires_at is not null;

create table if not exists public.agent_idempotency (
    session_id uuid not null references public.agent_sessions (id) on delete cascade,
    key        text not null check (key <> ''),
    operation  text not null,
    result     jsonb not null,
    created_at timestamptz not null default now(),
    primary key (session_id, key)
);


-- The JSON shape of a turn, now with its message id.
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
        'created_at', t.created_at,
        'message_id', t.message_id
    )
$$;


-- The run holding session s: its token, the session, its inputs, its history (the last
-- p_history_turns turns that are not waiting for an answer) and its expiry.
create or replace function public.frontdesk_run_json(s public.agent_sessions, p_history_turns integer)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'token', s.run_token,
        'session', public.frontdesk_session_json(s),
        'expires_at', s.run_expires_at,
        'inputs', coalesce((
            select jsonb_agg(public.frontdesk_turn_json(t) order by t.turn_number)
            from public.agent_turns t
            where t.session_id = s.id and t.turn_number = any (s.run_inputs)), '[]'::jsonb),
        'history', coalesce((
            select jsonb_agg(public.frontdesk_turn_json(h) order by h.turn_number)
            from (select * from public.agent_turns t
                  where t.session_id = s.id and not t.pending
                  order by t.turn_number desc
                  limit greatest(p_history_turns, 0)) h), '[]'::jsonb)
    )
$$;


-- The result a write with this key already returned on this session, or null. A key used
-- for another kind of operation is refused: keys are per write, not per session.
create or replace function public.frontdesk_replay(p_session_id uuid, p_key text, p_operation text)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_record public.agent_idempotency;
begin
    if p_key is null then
        return null;
    end if;
    select * into v_record from public.agent_idempotency
    where session_id = p_session_id and key = p_key;
    if not found then
        return null;
    end if;
    if v_record.operation <> p_operation then
        perform public.frontdesk_raise('409', 'idempotency_key_reused',
            format('idempotency key %s was used for a different operation (%s) on this session; '
                   'use a new key for each write', p_key, v_record.operation),
            '{}'::jsonb);
    end if;
    return v_record.result;
end;
$$;


create or replace function public.frontdesk_remember(
    p_session_id uuid, p_key text, p_operation text, p_result jsonb
)
returns void
language sql
set search_path = ''
as $$
    insert into public.agent_idempotency (session_id, key, operation, result)
    select p_session_id, p_key, p_operation, p_result
    where p_key is not null
$$;


-- Start the next run of a locked session over its pending messages (the oldest under
-- 'enqueue', all of them otherwise), or end the run when none is pending.
create or replace function public.frontdesk_start_run(
    p_session_id uuid, p_policy text, p_timeout double precision, p_now timestamptz
)
returns public.agent_sessions
language plpgsql
set search_path = ''
as $$
declare
    v_inputs integer[];
    v_row public.agent_sessions;
begin
    select coalesce(array_agg(p.turn_number order by p.turn_number), '{}') into v_inputs
    from (select turn_number from public.agent_turns
          where session_id = p_session_id and pending
          order by turn_number
          limit case when p_policy = 'enqueue' then 1 end) p;
    if cardinality(v_inputs) = 0 then
        update public.agent_sessions set run_expires_at = null, run_inputs = '{}'
        where id = p_session_id
        returning * into v_row;
    else
        update public.agent_sessions set
            run_token = run_token + 1,
            run_expires_at = p_now + make_interval(secs => p_timeout),
            run_inputs = v_inputs
        where id = p_session_id
        returning * into v_row;
    end if;
    return v_row;
end;
$$;


-- A message already recorded in the conversation: the original receipt when this is the
-- retry of the receive that recorded it (same key), else a duplicate receipt. Null if none.
create or replace function public.frontdesk_find_message(
    p_workspace_id text, p_conversation_id text, p_agent_id text, p_message_id text,
    p_idempotency_key text
)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_turn public.agent_turns;
    v_session public.agent_sessions;
    v_stored jsonb;
begin
    select t.* into v_turn
    from public.agent_turns t
    join public.agent_sessions s on s.id = t.session_id
    where t.message_id = p_message_id
      and s.workspace_id = p_workspace_id
      and s.conversation_id = p_conversation_id
      and s.agent_id = p_agent_id
    limit 1;
    if not found then
        return null;
    end if;
    v_stored := public.frontdesk_replay(v_turn.session_id, p_idempotency_key, 'receive');
    if v_stored is not null then
        return v_stored;
    end if;
    select * into v_session from public.agent_sessions where id = v_turn.session_id;
    return jsonb_build_object(
        'session', public.frontdesk_session_json(v_session),
        'turn', public.frontdesk_turn_json(v_turn),
        'duplicate', true,
        'run', null);
end;
$$;


-- Record an inbound message and decide whether the caller runs now, in one transaction.
-- Returns {"session", "turn", "duplicate", "run"} (run: null or frontdesk_run_json).
create or replace function public.frontdesk_receive(
    p_workspace_id text,
    p_session_id uuid,
    p_agent_id text,
    p_conversation_id text,
    p_contact_id text,
    p_current_mode text,
    p_message_id text,
    p_content text,
    p_policy text,
    p_timeout double precision,
    p_history_turns integer,
    p_received_at timestamptz default null,
    p_idempotency_key text default null,
    p_state jsonb default '{}'::jsonb
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_result jsonb;
    v_row public.agent_sessions;
    v_now timestamptz;
    v_live boolean;
    v_commit jsonb;
    v_turn public.agent_turns;
begin
    -- Most redeliveries are found here, before anything is created or locked.
    v_result := public.frontdesk_find_message(
        p_workspace_id, p_conversation_id, p_agent_id, p_message_id, p_idempotency_key);
    if v_result is not null then
        return v_result;
    end if;

    -- The conversation's active session, created if there is none, locked: deliveries of
    -- one conversation are serialised from here on.
    for attempt in 1..3 loop
        perform public.frontdesk_create_session(
            p_session_id, p_workspace_id, p_agent_id, p_conversation_id, p_contact_id,
            p_current_mode, p_state, true);
        select * into v_row from public.agent_sessions
        where workspace_id = p_workspace_id
          and conversation_id = p_conversation_id
          and agent_id = p_agent_id
          and status = 'active'
        for update;
        exit when found;
    end loop;
    if v_row.id is null then
        perform public.frontdesk_raise('409', 'session_already_active',
            'the conversation''s active session kept changing; retry', '{}'::jsonb);
    end if;

    -- Under the lock, look again: a concurrent delivery of this message has committed.
    v_result := public.frontdesk_find_message(
        p_workspace_id, p_conversation_id, p_agent_id, p_message_id, p_idempotency_key);
    if v_result is not null then
        return v_result;
    end if;

    v_now := greatest(clock_timestamp(), v_row.updated_at);
    v_live := v_row.run_expires_at is not null and v_now < v_row.run_expires_at;
    if v_live and p_policy = 'reject' then
        perform public.frontdesk_raise('409', 'conversation_busy',
            'a run holds the conversation and the policy is reject',
            jsonb_build_object('session_id', v_row.id));
    end if;

    v_commit := public.frontdesk_commit(
        p_workspace_id => p_workspace_id,
        p_session_id => v_row.id,
        p_last_activity_at => p_received_at,
        p_turns => jsonb_build_array(jsonb_build_object('role', 'user', 'content', p_content)));
    update public.agent_turns set message_id = p_message_id, pending = true
    where session_id = v_row.id
      and turn_number = (v_commit -> 'turns' -> 0 ->> 'turn_number')::integer
    returning * into v_turn;

    if v_live and p_policy <> 'interrupt' then
        select * into v_row from public.agent_sessions where id = v_row.id;
        v_result := jsonb_build_object('run', null);
    else
        v_row := public.frontdesk_start_run(v_row.id, p_policy, p_timeout, v_now);
        v_result := jsonb_build_object('run', public.frontdesk_run_json(v_row, p_history_turns));
    end if;
    v_result := v_result || jsonb_build_object(
        'session', public.frontdesk_session_json(v_row),
        'turn', public.frontdesk_turn_json(v_turn),
        'duplicate', false);
    perform public.frontdesk_remember(v_row.id, p_idempotency_key, 'receive', v_result);
    return v_result;
end;
$$;


-- Complete run p_token: apply the change (as frontdesk_commit), mark the run's inputs
-- answered, end the run and start the next one over what arrived meanwhile.
-- Returns {"session", "turns", "next_run"}.
create or replace function public.frontdesk_complete(
    p_workspace_id text,
    p_session_id uuid,
    p_token bigint,
    p_policy text,
    p_timeout double precision,
    p_history_turns integer,
    p_idempotency_key text default null,
    p_expected_version integer default null,
    p_current_mode text default null,
    p_mode_allowed_from jsonb default null,
    p_status text default null,
    p_last_activity_at timestamptz default null,
    p_state jsonb default null,
    p_state_ops jsonb default '[]'::jsonb,
    p_turns jsonb default '[]'::jsonb,
    p_inputs_intent text default null,
    p_inputs_confidence double precision default null
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.agent_sessions;
    v_result jsonb;
    v_commit jsonb;
    v_next jsonb := null;
begin
    select * into v_row from public.agent_sessions
    where id = p_session_id and workspace_id = p_workspace_id
    for update;
    if not found then
        perform public.frontdesk_raise('404', 'session_not_found',
            'no such session in this workspace', '{}'::jsonb);
    end if;
    v_result := public.frontdesk_replay(p_session_id, p_idempotency_key, 'complete');
    if v_result is not null then
        return v_result;
    end if;
    if v_row.run_expires_at is null or v_row.run_token <> p_token then
        perform public.frontdesk_raise('409', 'run_superseded',
            'the run is no longer the current one',
            jsonb_build_object('current_token', v_row.run_token));
    end if;

    v_commit := public.frontdesk_commit(
        p_workspace_id => p_workspace_id,
        p_session_id => p_session_id,
        p_expected_version => p_expected_version,
        p_current_mode => p_current_mode,
        p_mode_allowed_from => p_mode_allowed_from,
        p_status => p_status,
        p_last_activity_at => p_last_activity_at,
        p_state => p_state,
        p_state_ops => p_state_ops,
        p_turns => p_turns);
    update public.agent_turns
    set pending = false,
        intent_detected = coalesce(p_inputs_intent, intent_detected),
        confidence = coalesce(p_inputs_confidence, confidence)
    where session_id = p_session_id and pending and turn_number = any (v_row.run_inputs);

    select * into v_row from public.agent_sessions where id = p_session_id;
    if v_row.status = 'active' then
        v_row := public.frontdesk_start_run(p_session_id, p_policy, p_timeout,
                                            greatest(clock_timestamp(), v_row.updated_at));
        if v_row.run_expires_at is not null then
            v_next := public.frontdesk_run_json(v_row, p_history_turns);
        end if;
    else
        update public.agent_sessions set run_expires_at = null, run_inputs = '{}'
        where id = p_session_id
        returning * into v_row;
    end if;
    v_result := jsonb_build_object(
        'session', public.frontdesk_session_json(v_row),
        'turns', v_commit -> 'turns',
        'next_run', v_next);
    perform public.frontdesk_remember(p_session_id, p_idempotency_key, 'complete', v_result);
    return v_result;
end;
$$;


-- frontdesk_commit with an idempotency key: a repeat of the key returns the original result.
create or replace function public.frontdesk_commit_once(
    p_idempotency_key text,
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
    v_result jsonb;
begin
    perform 1 from public.agent_sessions
    where id = p_session_id and workspace_id = p_workspace_id
    for update;
    if found then
        v_result := public.frontdesk_replay(p_session_id, p_idempotency_key, 'commit');
        if v_result is not null then
            return v_result;
        end if;
    end if;
    v_result := public.frontdesk_commit(
        p_workspace_id => p_workspace_id,
        p_session_id => p_session_id,
        p_expected_version => p_expected_version,
        p_current_mode => p_current_mode,
        p_mode_allowed_from => p_mode_allowed_from,
        p_status => p_status,
        p_last_activity_at => p_last_activity_at,
        p_state => p_state,
        p_state_ops => p_state_ops,
        p_turns => p_turns);
    perform public.frontdesk_remember(p_session_id, p_idempotency_key, 'commit', v_result);
    return v_result;
end;
$$;


-- Push a live (or expired, not taken over) run's expiry; the session's version is unchanged.
create or replace function public.frontdesk_extend_run(
    p_workspace_id text, p_session_id uuid, p_token bigint, p_lease_seconds double precision
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
    if v_row.run_expires_at is null or v_row.run_token <> p_token then
        perform public.frontdesk_raise('409', 'run_superseded',
            'the run is no longer the current one',
            jsonb_build_object('current_token', v_row.run_token));
    end if;
    update public.agent_sessions
    set run_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds)
    where id = p_session_id
    returning * into v_row;
    return jsonb_build_object('expires_at', v_row.run_expires_at);
end;
$$;


-- Claim up to p_limit of the workspace's sessions whose run expired with unanswered
-- messages. p_policies: {"agent_id": {"double_texting", "timeout", "history_turns"}}.
-- Sessions another claimer holds locked are skipped, not waited for. Returns [run, ...].
create or replace function public.frontdesk_resume_abandoned(
    p_workspace_id text, p_policies jsonb, p_limit integer
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_now timestamptz := clock_timestamp();
    v_row public.agent_sessions;
    v_policy jsonb;
    v_runs jsonb := '[]'::jsonb;
begin
    for v_row in
        select * from public.agent_sessions s
        where s.workspace_id = p_workspace_id
          and s.status = 'active'
          and s.run_expires_at is not null
          and s.run_expires_at <= v_now
          and p_policies ? s.agent_id
          and exists (select 1 from public.agent_turns t where t.session_id = s.id and t.pending)
        order by s.run_expires_at, s.id
        limit greatest(p_limit, 0)
        for update skip locked
    loop
        v_policy := p_policies -> v_row.agent_id;
        v_row := public.frontdesk_start_run(v_row.id, v_policy ->> 'double_texting',
                                            (v_policy ->> 'timeout')::double precision, v_now);
        v_runs := v_runs || jsonb_build_array(public.frontdesk_run_json(
            v_row, (v_policy ->> 'history_turns')::integer));
    end loop;
    return v_runs;
end;
$$;


-- Row-level security on the new table; EXECUTE on the new functions for service_role only
-- (where Supabase's roles exist): see frontdesk_secure() in 0001.
select public.frontdesk_secure();
