"""Prefect flows: the entrypoints prefect.yaml deploys (`k3sc-dispatch`, `k3sc-agent`)."""
