-- frontdesk 0002: defence in depth: frontdesk_commit refuses malformed input.
--
-- frontdesk checks every value before it sends it (frontdesk.validation), so for its own
-- requests these checks never fire. They guard the database against every other caller (an
-- older client, another tool with the service key, a bug): a malformed state operation,
-- such as `merge_captured_data` whose `data` is an array, would otherwise be merged into
-- the state document (turning `captured_data` into `[{}, 1, 2]`) and leave the session
-- unreadable. Each refusal raises PT422 with kind `invalid_input` and, in `detail`, the
-- `field` (named as frontdesk names it: `state_ops[0].data`, `turns[1].turn_number`) and
-- the `problem`; the Supabase backend raises it as `ValidationError`. Nothing is written.
--
-- The checks live in `frontdesk_check_commit`, called as the first statement of
-- `frontdesk_commit` (below, otherwise as in 0001). A later migration that replaces
-- `frontdesk_commit` keeps that one `perform public.frontdesk_check_commit(...)` line.


-- Refuse one input value: PT422, kind invalid_input, detail {"field", "problem"}.
create or replace function public.frontdesk_invalid(field text, problem text)
returns void
language plpgsql
set search_path = ''
as $$
begin
    perform public.frontdesk_raise('422', 'invalid_input', 'invalid ' || field || ': ' || problem,
        jsonb_build_object('field', field, 'problem', problem));
end;
$$;


-- A JSON integer from p_min to 2147483647 (an `integer` column), or JSON null / absent.
create or replace function public.frontdesk_check_int(field text, value jsonb, p_min integer)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_number numeric;
begin
    if value is null or jsonb_typeof(value) = 'null' then
        return;
    end if;
    if jsonb_typeof(value) <> 'number' then
        perform public.frontdesk_invalid(field, 'must be an integer, got ' || jsonb_typeof(value));
    end if;
    v_number := (value #>> '{}')::numeric;
    if v_number <> trunc(v_number) or v_number < p_min or v_number > 2147483647 then
        perform public.frontdesk_invalid(field,
            format('must be an integer from %s to 2147483647, got %s', p_min, v_number));
    end if;
end;
$$;


-- A JSON string, or JSON null / absent when p_nullable.
create or replace function public.frontdesk_check_string(field text, value jsonb, p_nullable boolean)
returns void
language plpgsql
set search_path = ''
as $$
begin
    if (value is null or jsonb_typeof(value) = 'null') and p_nullable then
        return;
    end if;
    if jsonb_typeof(value) is distinct from 'string' then
        perform public.frontdesk_invalid(field,
            'must be a string, got ' || coalesce(jsonb_typeof(value), 'nothing'));
    end if;
end;
$$;


-- A JSON object whose values are all strings (captured data).
create or replace function public.frontdesk_check_text_map(field text, value jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_key text;
begin
    if jsonb_typeof(value) is distinct from 'object' then
        perform public.frontdesk_invalid(field,
            'must be an object of strings, got ' || coalesce(jsonb_typeof(value), 'nothing'));
    end if;
    select e.key into v_key from jsonb_each(value) e where jsonb_typeof(e.value) <> 'string'
    order by e.key limit 1;
    if found then
        perform public.frontdesk_invalid(format('%s[%L]', field, v_key),
            'must be a string, got ' || jsonb_typeof(value -> v_key));
    end if;
end;
$$;


-- A JSON object, of anything (the agent-specific data).
create or replace function public.frontdesk_check_object(field text, value jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
    if jsonb_typeof(value) is distinct from 'object' then
        perform public.frontdesk_invalid(field,
            'must be an object, got ' || coalesce(jsonb_typeof(value), 'nothing'));
    end if;
end;
$$;


-- Every input of frontdesk_commit, checked against the shapes frontdesk sends.
create or replace function public.frontdesk_check_commit(
    p_expected_version integer,
    p_current_mode text,
    p_mode_allowed_from jsonb,
    p_status text,
    p_state jsonb,
    p_state_ops jsonb,
    p_turns jsonb
)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_item jsonb;
    v_index integer;
    v_field text;
begin
    if p_expected_version is not null and p_expected_version < 1 then
        perform public.frontdesk_invalid('expected_version',
            format('must be an integer from 1 to 2147483647, got %s', p_expected_version));
    end if;
    if p_current_mode is not null and btrim(p_current_mode) = '' then
        perform public.frontdesk_invalid('current_mode', 'must be a non-empty string');
    end if;
    if p_status is not null and p_status not in ('active', 'closed', 'handed_off') then
        perform public.frontdesk_invalid('status',
            format('must be one of active, closed, handed_off; got %L', p_status));
    end if;
    if p_mode_allowed_from is not null then
        perform public.frontdesk_check_object('mode_allowed_from', p_mode_allowed_from);
    end if;

    if p_state is not null then
        perform public.frontdesk_check_object('state', p_state);
        if p_state ? 'captured_data' then
            perform public.frontdesk_check_text_map('state.captured_data', p_state -> 'captured_data');
        end if;
        if p_state ? 'data' then
            perform public.frontdesk_check_object('state.data', p_state -> 'data');
        end if;
        if p_state ? 'templates_sent' then
            if jsonb_typeof(p_state -> 'templates_sent') <> 'array' then
                perform public.frontdesk_invalid('state.templates_sent', 'must be an array');
            end if;
            for v_item, v_index in
                select value, ordinality - 1 from jsonb_array_elements(p_state -> 'templates_sent')
                    with ordinality
            loop
                perform public.frontdesk_check_string(
                    format('state.templates_sent[%s]', v_index), v_item, false);
            end loop;
        end if;
        if p_state ? 'intents_seen' then
            if jsonb_typeof(p_state -> 'intents_seen') <> 'array' then
                perform public.frontdesk_invalid('state.intents_seen', 'must be an array');
            end if;
            for v_item, v_index in
                select value, ordinality - 1 from jsonb_array_elements(p_state -> 'intents_seen')
                    with ordinality
            loop
                v_field := format('state.intents_seen[%s]', v_index);
                perform public.frontdesk_check_object(v_field, v_item);
                perform public.frontdesk_check_string(v_field || '.intent', v_item -> 'intent', false);
                perform public.frontdesk_check_int(v_field || '.order', v_item -> 'order', 1);
                perform public.frontdesk_check_string(v_field || '.seen_at', v_item -> 'seen_at', false);
            end loop;
        end if;
    end if;

    if p_state_ops is not null and jsonb_typeof(p_state_ops) <> 'array' then
        perform public.frontdesk_invalid('state_ops',
            'must be an array, got ' || jsonb_typeof(p_state_ops));
    end if;
    for v_item, v_index in
        select value, ordinality - 1
        from jsonb_array_elements(coalesce(p_state_ops, '[]'::jsonb)) with ordinality
    loop
        v_field := format('state_ops[%s]', v_index);
        perform public.frontdesk_check_object(v_field, v_item);
        case v_item ->> 'op'
        when 'append_intent' then
            perform public.frontdesk_check_string(v_field || '.intent', v_item -> 'intent', false);
        when 'append_template' then
            perform public.frontdesk_check_string(v_field || '.name', v_item -> 'name', false);
        when 'merge_captured_data' then
            perform public.frontdesk_check_text_map(v_field || '.data', v_item -> 'data');
        when 'merge_data' then
            perform public.frontdesk_check_object(v_field || '.data', v_item -> 'data');
        else
            perform public.frontdesk_invalid(v_field || '.op', format(
                'must be one of append_intent, append_template, merge_captured_data, '
                'merge_data; got %s', coalesce((v_item -> 'op')::text, 'nothing')));
        end case;
    end loop;

    if p_turns is not null and jsonb_typeof(p_turns) <> 'array' then
        perform public.frontdesk_invalid('turns', 'must be an array, got ' || jsonb_typeof(p_turns));
    end if;
    for v_item, v_index in
        select value, ordinality - 1
        from jsonb_array_elements(coalesce(p_turns, '[]'::jsonb)) with ordinality
    loop
        v_field := format('turns[%s]', v_index);
        perform public.frontdesk_check_object(v_field, v_item);
        if (v_item ->> 'role') is null
           or (v_item ->> 'role') not in ('user', 'assistant', 'system', 'tool') then
            perform public.frontdesk_invalid(v_field || '.role', format(
                'must be one of user, assistant, system, tool; got %s',
                coalesce((v_item -> 'role')::text, 'nothing')));
        end if;
        perform public.frontdesk_check_string(v_field || '.content', v_item -> 'content', false);
        perform public.frontdesk_check_string(
            v_field || '.intent_detected', v_item -> 'intent_detected', true);
        perform public.frontdesk_check_int(v_field || '.turn_number', v_item -> 'turn_number', 1);
        perform public.frontdesk_check_int(v_field || '.tokens_used', v_item -> 'tokens_used', 0);
        if jsonb_typeof(v_item -> 'confidence') is not null
           and jsonb_typeof(v_item -> 'confidence') <> 'null'
           and (jsonb_typeof(v_item -> 'confidence') <> 'number'
                or (v_item ->> 'confidence')::numeric not between 0 and 1) then
            perform public.frontdesk_invalid(v_field || '.confidence',
                'must be a number from 0 to 1, got ' || (v_item -> 'confidence')::text);
        end if;
        if jsonb_typeof(v_item -> 'tools_called') is not null
           and jsonb_typeof(v_item -> 'tools_called') not in ('array', 'null') then
            perform public.frontdesk_invalid(v_field || '.tools_called',
                'must be an array, got ' || jsonb_typeof(v_item -> 'tools_called'));
        end if;
    end loop;
end;
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
    v_new_turns integer;
    v_tokens bigint := 0;
    v_turns jsonb;
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


-- Lock down the functions added or replaced here, as every migration does (see 0001).
select public.frontdesk_secure();
