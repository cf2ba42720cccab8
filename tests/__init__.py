"""The project's own tests (a package, so that `tests.support` is importable)."""
