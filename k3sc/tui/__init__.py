"""Terminal dashboards on Textual (`k3sc sessions`, `k3sc top`).

Imported only by the commands that open them, so `k3sc --help` never loads Textual.
"""
