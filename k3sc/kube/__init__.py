"""The only code that talks to Kubernetes, plus the pure builders of what k3sc sends it.

`jobs` turns the k3sc config into the agent work pool's base job template and a dispatch into
per-run job variables (pure); `manifests` finds and renders `k8s/`; `client` applies, deletes
and reads through kubernetes_asyncio (imported only there, inside the calls that need it).
"""
