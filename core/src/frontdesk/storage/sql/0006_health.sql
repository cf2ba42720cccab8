-- What `frontdesk db check` reads, now with the frontdesk functions the calling role may
-- execute, so that it can name the ones a database lacks. 0001's fixed `schema_version`
-- could not tell a database that stopped at 0001 from a current one: on a Supabase project
-- migrated by pasting `frontdesk db sql` there is no record of applied migrations, but the
-- functions themselves are always there to be counted.
create or replace function public.frontdesk_health()
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select jsonb_build_object(
        'functions', coalesce((
            select jsonb_agg(distinct f.proname::text order by f.proname::text)
            from pg_catalog.pg_proc f
            join pg_catalog.pg_namespace n on n.oid = f.pronamespace
            where n.nspname = 'public' and f.proname like 'frontdesk\_%'
              and pg_catalog.has_function_privilege(f.oid, 'EXECUTE')), '[]'::jsonb),
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


select public.frontdesk_secure();
