"""The GitHub webhook receiver: signed deliveries in, "go and look" Prefect events out.

`app` answers GitHub (verify, inbox, 202), `inbox` keeps deliveries durably and dedupes them,
`forwarding` sends them to Prefect and watches failed automation actions, `serving` runs it
(`k3sc webhook`, and `k3sc up` as a child process).
"""
