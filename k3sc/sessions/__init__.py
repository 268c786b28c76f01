"""Local agent sessions: Claude Code and Codex usage read from their own files on this machine.

The pure rules (dedup, pricing, 5-hour blocks, process classification, session mapping) sit in
their own modules with table tests; `index` reads transcripts incrementally, `processes` and
`registry` look at the running system, and `snapshot` joins them into one `Snapshot` that the
`k3sc sessions` command and its Textual view render.
"""
