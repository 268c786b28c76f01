"""Terminal dashboards on Textual (`k3sc sessions`, `k3sc top`); imported only by the commands that open them."""
