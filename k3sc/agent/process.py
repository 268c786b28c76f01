"""Run the agent CLI as a child process: stream its output live, redact it, stop it on time.

Separate from the flow because the hard parts are process mechanics: the agent runs in its
own process group so a timeout, a cancellation or the agent's own exit takes every
grandchild (test runners, language servers, shells) with it; output is split into lines as it
arrives, never buffered to the end, and secrets are replaced before any line leaves here.
A custom protocol is used rather than `Process.wait()`, because on Python 3.11 `wait()` only
returns once every holder of the pipe has closed it, which a stray grandchild can delay forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from k3sc.errors import AgentError

MAX_LINE_BYTES = 1024 * 1024  # longer lines are cut into pieces of this size
TAIL_LINES = 40
DEFAULT_GRACE_S = 10.0
# After a stop request's SIGINT, how long the agent may wrap up (Claude ends its turn and prints
# its result) before SIGTERM.
DEFAULT_INTERRUPT_GRACE_S = 30.0
# After the agent exits, how long its output may still drain before the pipe is closed on it.
_DRAIN_S = 5.0
# Lines of a multi-line secret (e.g. an auth.json) shorter than this are too generic to redact.
_MIN_SECRET_PIECE = 8


@dataclass(frozen=True)
class ProcessResult:
    """How the agent process ended.

    `exit_code` is None when k3sc had to kill it (timeout); a negative code means another
    signal ended it. `stopped` is True when the caller's stop request ended it (then
    `exit_code` is whatever the agent exited with after the interrupt). `tail` holds the last
    redacted lines, for error messages.
    """

    exit_code: int | None
    timed_out: bool
    duration_s: float
    lines: int
    tail: tuple[str, ...]
    stopped: bool = False


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    # A plain seconds value, not asyncio.timeout(): the expiry does not cancel, it starts
    # the SIGTERM → grace → SIGKILL sequence and is reported in the result.
    timeout: float,  # noqa: ASYNC109
    on_line: Callable[[str], None],
    secrets: Sequence[str] = (),
    grace: float = DEFAULT_GRACE_S,
    stop: asyncio.Event | None = None,
    interrupt_grace: float = DEFAULT_INTERRUPT_GRACE_S,
    spare_leader: bool = False,
) -> ProcessResult:
    """Run `argv` in `cwd` with exactly `env`, feeding each redacted output line to `on_line`.

    Args:
        argv: the command; `argv[0]` is looked up on `env["PATH"]`.
        cwd: working directory (the workspace).
        env: the complete environment; nothing is inherited.
        timeout: seconds until the process group gets SIGTERM, then SIGKILL after `grace`.
        on_line: called in the event loop for every line of stdout and stderr (merged), in
            order of arrival, already redacted; an exception here stops the process.
        secrets: values replaced by `***` in every line (and in `tail`).
        grace: seconds between SIGTERM and SIGKILL.
        stop: set it (e.g. from `on_line`, when a budget is spent) to stop the agent: SIGINT to
            its group, `interrupt_grace` seconds to wrap up, then SIGTERM, `grace`, SIGKILL.
        interrupt_grace: seconds between the stop's SIGINT and SIGTERM.
        spare_leader: SIGINT and SIGTERM go to the group's members but not to `argv[0]`'s own
            process (a sandbox launcher such as bwrap, which would die at once and take the
            agent with it before it could wrap up); SIGKILL still takes the whole group.

    Returns:
        A `ProcessResult`.

    Raises:
        AgentError: the executable or the working directory does not exist or cannot be run.
    """
    if not argv:
        raise AgentError("the agent command is empty")
    redact = _redactor(secrets)
    loop = asyncio.get_running_loop()
    protocol = _LineProtocol(redact, on_line)
    started = loop.time()
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
            preexec_fn=_restore_sigint if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else None,
        )
    except FileNotFoundError as exc:
        if exc.filename == str(cwd) or not await asyncio.to_thread(cwd.is_dir):
            raise AgentError(f"working directory {cwd} does not exist") from None
        raise AgentError(
            f"agent command {argv[0]!r} not found (PATH={env.get('PATH', '')!r}); "
            "install it or set agent.command in the k3sc config"
        ) from None
    except PermissionError:
        raise AgentError(f"agent command {argv[0]!r} is not executable") from None

    pgid = transport.get_pid()
    timed_out = stopped = False
    stop = stop or asyncio.Event()
    try:
        deadline = loop.time() + timeout
        ending = await _first_of(
            {"exited": protocol.exited, "failed": protocol.failed, "stop": stop}, timeout
        )
        soft = (
            functools.partial(_signal_members, pgid)
            if spare_leader
            else functools.partial(_signal_group, pgid)
        )
        if ending == "stop":
            stopped = True
            soft(signal.SIGINT)
            # The stop's grace never runs past the run's own timeout.
            wrap_up = max(min(interrupt_grace, deadline - loop.time()), 0.0)
            ending = await _first_of({"exited": protocol.exited, "failed": protocol.failed}, wrap_up)
        if ending is None:
            timed_out = not stopped
            soft(signal.SIGTERM)
            if await _first_of({"exited": protocol.exited, "failed": protocol.failed}, grace) is None:
                _signal_group(pgid, signal.SIGKILL)
        if protocol.failed.is_set():
            raise protocol.error or AgentError("output handling failed")
        await protocol.exited.wait()
        # The agent is gone; whatever it left running in its group goes too, and the pipe
        # closes once they are dead (a process that escaped the group is cut off by close()).
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(protocol.closed.wait(), _DRAIN_S)
        protocol.flush()
        if protocol.failed.is_set():
            raise protocol.error or AgentError("output handling failed")
    except BaseException:
        # Cancelled, or on_line raised: nothing of the agent may survive its run.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(protocol.exited.wait(), _DRAIN_S)
        raise
    finally:
        transport.close()
    code = transport.get_returncode()
    return ProcessResult(
        exit_code=None if timed_out else code,
        timed_out=timed_out,
        duration_s=loop.time() - started,
        lines=protocol.count,
        tail=tuple(protocol.tail),
        stopped=stopped,
    )


async def _first_of(events: dict[str, asyncio.Event], seconds: float) -> str | None:
    """Wait until one of `events` is set or `seconds` pass; the first set one's name, else None."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events.values()}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    # Fixed order: an exit beats a failure beats a stop that arrived at the same moment.
    return next((name for name, event in events.items() if event.is_set()), None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # ESRCH: the group is already empty. EPERM: a member changed uid; nothing more we can do.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _restore_sigint() -> None:
    # Run in the child between fork and exec, only when this process ignores SIGINT (started as a
    # background job, `nohup`): an ignored signal stays ignored across exec, and the agent would
    # then never see the interrupt that asks it to wrap up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_members(pgid: int, sig: signal.Signals) -> None:
    """`sig` to every process in group `pgid` except its leader (Linux: read from /proc)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                # Fields after the parenthesised command: state, ppid, pgrp, ...
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), sig)


def _redactor(secrets: Sequence[str]) -> Callable[[str], str]:
    pieces: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        pieces.add(secret)
        # A multi-line secret never appears whole in one line; its distinctive lines might.
        if "\n" in secret:
            pieces.update(p.strip() for p in secret.splitlines() if len(p.strip()) >= _MIN_SECRET_PIECE)
    # Longest first, so a secret containing another is replaced whole.
    ordered = sorted(pieces, key=len, reverse=True)

    def redact(line: str) -> str:
        for piece in ordered:
            if piece in line:
                line = line.replace(piece, "***")
        return line

    return redact


class _LineProtocol(asyncio.SubprocessProtocol):
    """Splits the merged output into lines as bytes arrive and records how the process ends."""

    def __init__(self, redact: Callable[[str], str], on_line: Callable[[str], None]) -> None:
        self._redact = redact
        self._on_line = on_line
        self._buffer = bytearray()
        self.count = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()
        self.failed = asyncio.Event()
        self.error: BaseException | None = None

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.failed.is_set():
            return
        self._buffer += data
        try:
            while True:
                cut, skip = self._buffer.find(b"\n"), 1
                if cut < 0 and len(self._buffer) < MAX_LINE_BYTES:
                    break
                if cut < 0 or cut > MAX_LINE_BYTES:
                    cut, skip = MAX_LINE_BYTES, 0  # an overlong line: emit it in pieces
                raw = bytes(self._buffer[:cut])
                del self._buffer[: cut + skip]
                self._emit(raw)
        except Exception as exc:
            # Raising here would only reach the loop's exception handler; hand it to run().
            self.error = exc
            self.failed.set()

    def flush(self) -> None:
        """Emit a last line that had no newline."""
        if self._buffer and not self.failed.is_set():
            raw, self._buffer = bytes(self._buffer), bytearray()
            try:
                self._emit(raw)
            except Exception as exc:
                self.error = exc
                self.failed.set()

    def _emit(self, raw: bytes) -> None:
        line = self._redact(raw.removesuffix(b"\r").decode("utf-8", errors="replace"))
        self.count += 1
        self.tail.append(line)
        self._on_line(line)

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        # Called once the process has exited and every pipe is closed.
        self.exited.set()
        self.closed.set()
