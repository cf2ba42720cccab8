"""frontdesk's benchmarks: one script each, run from the repository root (see README.md)."""
