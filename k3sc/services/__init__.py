"""Application services behind the CLI: each command calls one of these, which call the adapters."""
