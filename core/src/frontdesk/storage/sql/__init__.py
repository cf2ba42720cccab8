"""The SQL migrations the Supabase backend needs, numbered, applied in order."""
