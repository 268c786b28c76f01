"""k3sc's Prefect adapter: the only code (besides flows and tasks) that talks to Prefect.

`api` is a small REST client on httpx (no `import prefect` on the CLI's paths); `runs` reads and
submits agent runs, whose identity lives in their tags; `dispatch_state` is the dispatcher's memory
in Prefect Variables; `events` turns GitHub activity into Prefect events; `deploy` and `stack` put
k3sc onto a server and run the local processes of the embedded default.
"""
