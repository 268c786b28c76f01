"""Which signals stop a long-running k3sc process (`k3sc up`, `k3sc webhook`) the way Ctrl-C does.

SIGTERM is what supervisors, Docker and `kill` send; SIGHUP comes when the terminal closes. Both
stop k3sc as Ctrl-C does, with a clean exit 0. SIGINT is handled even when inherited as ignored
(a background job of a script), so every way of asking stops the same; a SIGHUP inherited as
ignored stays ignored, because that is what `nohup` asks for.
"""

from __future__ import annotations

import signal


def stop_signals() -> list[signal.Signals]:
    wanted = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        wanted.append(signal.SIGHUP)
    return wanted
