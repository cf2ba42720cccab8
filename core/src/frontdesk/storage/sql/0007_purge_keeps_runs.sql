-- frontdesk 0007: retention never deletes a session the message pipeline is working on.
--
-- frontdesk_purge_sessions (0004) deleted every idle session, including one whose run was
-- still live (its worker's frontdesk_complete then found no session) or whose messages
-- were still waiting for an answer. It now skips a session with an unexpired run or a
-- pending user turn, as the in-memory and SQLite backends do.

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
    v_now timestamptz := now();
    v_cutoff timestamptz := v_now - make_interval(secs => p_inactive_seconds);
    v_count integer;
begin
    delete from public.agent_sessions s using (
        select c.id from public.agent_sessions c
        where c.workspace_id = p_workspace_id
          and (p_status is null or c.status = p_status)
          and c.last_activity_at < v_cutoff
          and (c.run_expires_at is null or c.run_expires_at <= v_now)
          and not exists (
              select 1 from public.agent_turns t where t.session_id = c.id and t.pending)
        order by c.last_activity_at, c.id
        limit p_limit
        for update skip locked
    ) doomed
    where s.id = doomed.id;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;


select public.frontdesk_secure();
