"""Test infrastructure shared by the test suites: PostgreSQL, the PostgREST gateway."""
