"""Prefect tasks: thin wrappers that add retries, names and logging around calls into k3sc."""
