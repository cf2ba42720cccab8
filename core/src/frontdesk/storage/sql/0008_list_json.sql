-- frontdesk 0008: listing pages are built as json, not jsonb.
--
-- A page is built once and sent as it is, never queried or stored, so nothing is gained by
-- jsonb's parsed form, and building it costs: for a page of 50 sessions the server spent
-- about three times as long assembling jsonb (each nested value converted and re-sorted
-- into jsonb's binary layout) as finding the rows. json keeps each value's text as it is,
-- and the page reads the same: the same keys, values and order. A function's return type
-- cannot be changed in place, so it is dropped and made again (grants restored below).

drop function if exists public.frontdesk_list_sessions(
    text, integer, text, text, text, text, text, timestamptz, timestamptz, timestamptz, uuid
);

-- One page of a workspace's sessions, newest activity first, after (p_after_activity,
-- p_after_id) when given. Filters left NULL do not apply. The statement is built from the
-- filters that are set (values are always bound, never spliced in), so each shape gets a
-- plan that uses its index; a generic plan with "p_x is null or ..." would not.
create function public.frontdesk_list_sessions(
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
returns json
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
    v_where text := 's.workspace_id = $1';
    v_items json;
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
        'select coalesce(json_agg(json_build_object('
        '    ''id'', p.id, ''workspace_id'', p.workspace_id, ''agent_id'', p.agent_id,'
        '    ''conversation_id'', p.conversation_id, ''contact_id'', p.contact_id,'
        '    ''version'', p.version, ''status'', p.status, ''current_mode'', p.current_mode,'
        '    ''state'', p.state, ''created_at'', p.created_at, ''updated_at'', p.updated_at,'
        '    ''last_activity_at'', p.last_activity_at, ''agent_version'', p.agent_version,'
        '    ''turn_count'', p.turn_count, ''tokens_used'', p.tokens_used)'
        '    order by p.last_activity_at desc, p.id desc), ''[]''::json)'
        ' from (select s.* from public.agent_sessions s where %s'
        '       order by s.last_activity_at desc, s.id desc limit $2) p',
        v_where)
    into v_items
    using p_workspace_id, p_limit, p_agent_id, p_status, p_mode, p_contact_id,
          p_conversation_id, p_updated_after, p_updated_before, p_after_activity, p_after_id;
    return v_items;
end;
$$;


select public.frontdesk_secure();
