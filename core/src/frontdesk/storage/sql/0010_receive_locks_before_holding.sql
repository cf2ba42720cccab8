-- frontdesk 0010: a message arriving during a hand-off is held for the person.
--
-- frontdesk_receive (0009) read "is a session active?" without a lock. A delivery racing
-- with the commit that hands the conversation off saw the session still active, went on
-- to get-or-create the active session, waited on the unique index for the hand-off to
-- commit, and then created a new active session beside the handed-off one: the agent took
-- the conversation back. It now locks the active session first, as the in-memory and
-- SQLite backends serialise the same decision.

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
    -- The active session is locked before anything is decided: a hand-off being committed
    -- right now holds its row, and once it commits the row is no longer active, so this
    -- finds none and the message is held below. Without the lock, the stale read "active"
    -- led to the create path, whose insert then succeeded beside the handed-off session.
    select * into v_row from public.agent_sessions
    where workspace_id = p_workspace_id
      and conversation_id = p_conversation_id
      and agent_id = p_agent_id
      and status = 'active'
    for update;
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
