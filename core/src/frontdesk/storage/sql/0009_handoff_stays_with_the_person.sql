-- frontdesk 0009: a conversation handed off to a person stays with the person.
--
-- Until now, once a session was handed_off the conversation's next message made
-- frontdesk_receive create a new active session, and the agent answered again in the
-- middle of the person's conversation. Now:
--
-- - frontdesk_receive: when the conversation has no active session and its newest session
--   is handed_off, the message is recorded on that session (deduplicated by message id as
--   before), not pending, and starts no run, whatever the double-texting policy (so never
--   conversation_busy either).
-- - frontdesk_commit: a handed-off session takes one kind of write, one that sets its
--   status: 'active' hands it back to the agent (refused with session_already_active when
--   the conversation has another active session), 'closed' ends it (the next message then
--   starts a new session). Any write that takes a session out of 'active' also ends its
--   run and clears its pending messages: a run cannot complete on it any more, and what
--   was waiting is now the person's (or nobody's, when closed).
-- - frontdesk_complete: marks its inputs answered before the commit, which may clear the
--   rest.
--
-- The newest session of a conversation is found through the index below (a long-lived
-- conversation may have had many sessions). Sessions already closed or handed off lose
-- the run and pending messages they kept, as the new rule would have left them: otherwise
-- a session handed back would answer those old messages, and retention would keep them.

create index if not exists agent_sessions_by_conversation_created
    on public.agent_sessions (workspace_id, conversation_id, agent_id, created_at desc, id desc);

update public.agent_turns t set pending = false
from public.agent_sessions s
where s.id = t.session_id and t.pending and s.status <> 'active';
update public.agent_sessions set run_expires_at = null, run_inputs = '{}'
where status <> 'active' and run_expires_at is not null;


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
    v_new_turns integer;
    v_tokens bigint := 0;
    v_turns jsonb;
    v_was text;
    v_other uuid;
begin
    -- Defence in depth (0002): refuse malformed input before touching anything.
    perform public.frontdesk_check_commit(p_expected_version, p_current_mode,
        p_mode_allowed_from, p_status, p_state, p_state_ops, p_turns);
    v_new_turns := coalesce(jsonb_array_length(p_turns), 0);  -- an array: checked above
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
    v_was := v_row.status;
    -- A handed-off session takes only a write that sets its status: active (handed back
    -- to the agent) or closed. A closed one takes nothing.
    if v_row.status <> 'active'
       and not (v_row.status = 'handed_off' and coalesce(p_status in ('active', 'closed'), false))
    then
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

    -- Handing a session back: the partial unique index refuses a second active session of
    -- the conversation (also one created concurrently); say which one is active.
    if v_was = 'handed_off' and p_status = 'active' then
        begin
            update public.agent_sessions set status = 'active' where id = p_session_id;
        exception when unique_violation then
            select id into v_other from public.agent_sessions
            where workspace_id = v_row.workspace_id
              and conversation_id = v_row.conversation_id
              and agent_id = v_row.agent_id
              and status = 'active';
            perform public.frontdesk_raise('409', 'session_already_active',
                'the conversation already has an active session with this agent',
                jsonb_build_object('existing_session_id', v_other,
                                   'conversation_id', v_row.conversation_id,
                                   'agent_id', v_row.agent_id));
        end;
    end if;

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

    -- A session that stops being active keeps no run and no message waiting for one.
    if v_was = 'active' and v_row.status <> 'active' then
        update public.agent_sessions set run_expires_at = null, run_inputs = '{}'
        where id = p_session_id;
        update public.agent_turns set pending = false
        where session_id = p_session_id and pending;
    end if;

    return jsonb_build_object('session', public.frontdesk_session_json(v_row), 'turns', v_turns);
end;
$$;


-- Complete run p_token (as in 0003): mark the run's inputs answered, apply the change (as
-- frontdesk_commit), end the run and start the next one over what arrived meanwhile.
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

    -- The inputs first: a commit that closes or hands off the session clears what is
    -- pending. A refused commit raises, and the whole call writes nothing.
    update public.agent_turns
    set pending = false,
        intent_detected = coalesce(p_inputs_intent, intent_detected),
        confidence = coalesce(p_inputs_confidence, confidence)
    where session_id = p_session_id and pending and turn_number = any (v_row.run_inputs);
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


-- Record a message on a handed-off session (locked by the caller) for the person it was
-- handed to: a user turn with its message id, not pending (no run answers it), one write.
-- Returns the receipt, with no run.
create or replace function public.frontdesk_receive_held(
    p_row public.agent_sessions,
    p_message_id text,
    p_content text,
    p_received_at timestamptz,
    p_idempotency_key text,
    p_workspace_id text,
    p_conversation_id text,
    p_agent_id text
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_result jsonb;
    v_now timestamptz;
    v_turn public.agent_turns;
    v_row public.agent_sessions;
begin
    -- Under the lock, look again: a concurrent delivery of this message has committed.
    v_result := public.frontdesk_find_message(
        p_workspace_id, p_conversation_id, p_agent_id, p_message_id, p_idempotency_key);
    if v_result is not null then
        return v_result;
    end if;
    perform public.frontdesk_check_commit(null, null, null, null, null, '[]'::jsonb,
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', p_content)));
    v_now := greatest(clock_timestamp(), p_row.updated_at);
    insert into public.agent_turns
        (session_id, turn_number, role, content, created_at, message_id, pending)
    values
        (p_row.id, p_row.turn_count + 1, 'user', p_content, v_now, p_message_id, false)
    returning * into v_turn;
    update public.agent_sessions set
        version = version + 1,
        turn_count = turn_count + 1,
        updated_at = v_now,
        last_activity_at = coalesce(p_received_at, v_now)
    where id = p_row.id
    returning * into v_row;
    v_result := jsonb_build_object(
        'session', public.frontdesk_session_json(v_row),
        'turn', public.frontdesk_turn_json(v_turn),
        'duplicate', false,
        'run', null);
    perform public.frontdesk_remember(v_row.id, p_idempotency_key, 'receive', v_result);
    return v_result;
end;
$$;

-- Record an inbound message and decide whether the caller runs now, in one transaction
-- (as in 0005, and now holding a handed-off conversation's messages for its person).
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
    p_state jsonb default '{}'::jsonb,
    p_agent_version text default null
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

    -- A conversation handed off to a person: no session is active and the newest one is
    -- handed_off. The message is recorded there, for the person, and starts no run.
    perform 1 from public.agent_sessions
    where workspace_id = p_workspace_id
      and conversation_id = p_conversation_id
      and agent_id = p_agent_id
      and status = 'active';
    if not found then
        select * into v_row from public.agent_sessions
        where workspace_id = p_workspace_id
          and conversation_id = p_conversation_id
          and agent_id = p_agent_id
        order by created_at desc, id desc
        limit 1
        for update;
        -- The lock waited for any write to that session (a hand-back): its status is
        -- current. A session created meanwhile is active: then it takes the message.
        if found and v_row.status = 'handed_off' and not exists (
            select 1 from public.agent_sessions
            where workspace_id = p_workspace_id
              and conversation_id = p_conversation_id
              and agent_id = p_agent_id
              and status = 'active')
        then
            return public.frontdesk_receive_held(
                v_row, p_message_id, p_content, p_received_at, p_idempotency_key,
                p_workspace_id, p_conversation_id, p_agent_id);
        end if;
        v_row := null;
    end if;

    -- The conversation's active session, created if there is none, locked: deliveries of
    -- one conversation are serialised from here on.
    for attempt in 1..3 loop
        perform public.frontdesk_create_session(
            p_session_id, p_workspace_id, p_agent_id, p_conversation_id, p_contact_id,
            p_current_mode, p_state, true, p_agent_version);
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


select public.frontdesk_secure();
