#!/bin/sh
# The agent image's entrypoint: make the per-attempt directories, then become the command.
#
# The root filesystem is read-only in a pod; HOME and /tmp are fresh emptyDirs, so the
# directories the tools expect inside HOME do not exist yet (Codex refuses a missing CODEX_HOME).
# A path that cannot be written means the pod lacks its volume: say which, exit 2.
set -eu

for dir in "${HOME:-}" "${PREFECT_HOME:-}" "${CLAUDE_CONFIG_DIR:-}" "${CODEX_HOME:-}" \
    "${K3SC_HOME:-}" "${TMPDIR:-/tmp}"; do
    [ -n "$dir" ] || continue
    if ! mkdir -p "$dir" 2>/dev/null || [ ! -w "$dir" ]; then
        echo "error: $dir is not writable by uid $(id -u): mount a writable volume (an emptyDir) there" >&2
        exit 2
    fi
done

[ "$#" -gt 0 ] || set -- k3sc --help
exec "$@"
