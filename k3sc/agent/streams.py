"""Read an agent's output stream: a readable log, token usage and a verdict on how it ended.

Claude Code (`--output-format stream-json`) and Codex (`exec --json`) print one JSON event per
line; wrappers and older CLIs print text. This module turns either into concise log lines,
the run's usage, and a `Verdict` read from the run's error positions (API-error events, the result
event, the plain-text tail), so the flow can tell a usage-limit hit (which can exit 0 with
`subtype: success`) from a real success or failure.
Pure: it is fed lines and does no I/O, and the clock comes in as an argument.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from k3sc.agent import limits
from k3sc.usage import LimitHit, Usage, Window, window_of

BASH_DETAIL_MAX = 120
USAGE_MARKER = "[usage] "
SECURITY_MARKER = "[security] "

_TOOL_RESULT_PREVIEW = 200
_REASON_MAX = 240
# Only the last plain-text lines are read as error messages: a CLI's fatal error is at the
# end, while earlier text may be tool output that merely mentions a limit.
_PLAIN_ERROR_LINES = 20
_CLAUDE_EVENTS = frozenset({"system", "assistant", "user", "result", "rate_limit_event", "stream_event"})
_RECONNECTING = re.compile(r"Reconnecting\.\.\. \d+/\d+")
_PATH_TOOLS = frozenset({"Read", "Edit", "MultiEdit", "Write"})
_DETAIL_KEYS = ("file_path", "notebook_path", "pattern", "url", "query", "description", "path")

Tokens = tuple[int, int, int, int]  # input, output, cache creation, cache read


class Verdict(StrEnum):
    """How an agent run ended, judged from its stream and exit code (not yet from GitHub)."""

    SUCCESS_CLAIMED = "success_claimed"  # the agent says it finished; the outcome check decides
    USAGE_LIMIT = "usage_limit"  # subscription/account quota exhausted: wait for resets_at
    AUTH = "auth"  # credentials or billing refused: no retry helps
    TRANSIENT = "transient"  # server throttling or outage: an ordinary retry may help
    BUDGET_STOPPED = "budget_stopped"  # max turns / max budget / k3sc's own timeout
    AGENT_FAILED = "agent_failed"  # the agent errored or exited non-zero
    UNKNOWN = "unknown"  # nothing conclusive (no exit code, no final result)


@dataclass(frozen=True)
class StreamSummary:
    """Everything the flow needs from the stream once the agent has exited."""

    verdict: Verdict
    reason: str
    usage: Usage | None = None
    resets_at: datetime | None = None
    security_events: tuple[str, ...] = ()
    session_id: str | None = None
    window: Window | None = None  # set for USAGE_LIMIT only

    def limit_hit(self, family: str, account: str | None = None) -> LimitHit | None:
        """The usage-limit hit this run ended at, for the dispatcher; None for any other ending."""
        if self.verdict is not Verdict.USAGE_LIMIT:
            return None
        return LimitHit(family, account, self.resets_at, self.window or Window.UNKNOWN, self.reason)


class StreamReader:
    """Fed the agent's output line by line; renders each line and remembers what matters.

    One reader per agent run. `feed` is cheap enough to call from the line callback.
    """

    def __init__(self) -> None:
        self._security: list[str] = []
        self._session_id: str | None = None
        self._error_texts: list[str] = []  # from error positions only (see limits)
        self._plain_tail: deque[str] = deque(maxlen=_PLAIN_ERROR_LINES)
        self._usage_line: dict[str, Any] | None = None
        # Claude
        self._assistant_usage: dict[str, Tokens] = {}
        self._models: list[str] = []
        self._assistant_error: str | None = None
        self._rate_limit: dict[str, Any] = {}
        self._resets_epoch: float | None = None
        self._retries_exhausted = False
        self._result: dict[str, Any] | None = None
        # Codex
        self._codex_usage: dict[str, Any] | None = None
        self._codex_turns = 0
        self._codex_failed: str | None = None

    # ------------------------------------------------------------------ feeding

    def feed(self, line: str) -> str | None:
        """Take one output line; return its rendering for the log, or None to leave it out."""
        if USAGE_MARKER in line:
            self._read_usage_line(line)
        stripped = line.strip()
        event: Any = None
        if stripped.startswith("{"):
            try:
                event = json.loads(stripped)
            except ValueError:
                event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._collect_security(line)
            if stripped:
                # Plain output (stderr, wrappers, text-mode CLIs) is where old-style limits show.
                self._plain_tail.append(stripped)
            return line
        if event["type"] in _CLAUDE_EVENTS:
            return self._claude(event["type"], event)
        return self._codex(event["type"], event)

    def _collect_security(self, text: str) -> None:
        # Hooks and the gh wrapper print `[security] ...`; under Claude or Codex that output
        # arrives inside a tool result, so tool results are searched too (not tool inputs,
        # which are the model's own words and may merely quote the marker).
        for line in text.splitlines():
            if SECURITY_MARKER in line:
                self._security.append(line.split(SECURITY_MARKER, 1)[1].strip())

    def _read_usage_line(self, line: str) -> None:
        # The marker may follow other text on the same line (`[result] exit [usage] {...}`).
        try:
            data = json.loads(line.rsplit(USAGE_MARKER, 1)[1])
        except ValueError:
            return
        if isinstance(data, dict) and _int(data, "total_tokens") > 0:
            self._usage_line = data

    # ------------------------------------------------------------------ Claude

    def _claude(self, kind: str, event: dict[str, Any]) -> str | None:
        self._session_id = _str(event.get("session_id")) or self._session_id
        if kind == "system":
            return self._system(event)
        if kind == "assistant":
            return self._assistant(event)
        if kind == "user":
            blocks = _tool_result_blocks(event)
            for block in blocks:
                self._collect_security(_block_text(block))
            return "\n".join(_render_tool_result(b) for b in blocks) or None
        if kind == "rate_limit_event":
            info = event.get("rate_limit_info")
            if not isinstance(info, dict):
                return None
            self._rate_limit = info
            if isinstance(info.get("resetsAt"), (int, float)):
                self._resets_epoch = float(info["resetsAt"])
            status = _str(info.get("status")) or "unknown"
            return None if status == "allowed" else f"[rate-limit] {status} {_str(info.get('rateLimitType'))}"
        if kind == "result":
            self._result = event
            return _render_result(event)
        return None  # stream_event: partial deltas, covered by the assistant message

    def _system(self, event: dict[str, Any]) -> str | None:
        subtype = event.get("subtype")
        if subtype == "init":
            return f"[init] model {_str(event.get('model')) or '?'}, session {self._session_id or '?'}"
        if subtype == "api_retry":
            attempt, most = _int(event, "attempt"), _int(event, "max_retries")
            self._retries_exhausted = bool(most) and attempt >= most
            return f"[retry] API error {event.get('error_status') or '?'}, attempt {attempt}/{most or '?'}"
        return None

    def _assistant(self, event: dict[str, Any]) -> str | None:
        message = event.get("message")
        message = message if isinstance(message, dict) else {}
        error = _str(event.get("error")) or _str(message.get("error"))
        model = _str(message.get("model"))
        texts: list[str] = []
        rendered: list[str] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and _str(block.get("text")):
                texts.append(block["text"])
                rendered.append(block["text"])
            elif block.get("type") == "tool_use":
                rendered.append(render_tool(_str(block.get("name")) or "?", block.get("input")))
        if model == "<synthetic>" or error or event.get("isApiErrorMessage"):
            # An API error dressed as an assistant message: its text is the CLI's, not the model's.
            self._assistant_error = error or self._assistant_error
            self._error_texts.extend(texts)
            return f"[error] {error or 'api error'}: {' '.join(texts)}"
        usage = message.get("usage")
        if isinstance(usage, dict):
            key = _str(message.get("id")) or f"no-id-{len(self._assistant_usage)}"
            tokens = _claude_tokens(usage)
            # Streaming repeats one message id with growing usage: keep the largest, count once.
            if sum(tokens) > sum(self._assistant_usage.get(key, (0, 0, 0, 0))):
                self._assistant_usage[key] = tokens
        if model and model not in self._models:
            self._models.append(model)
        return "\n".join(rendered) or None

    # ------------------------------------------------------------------ Codex

    def _codex(self, kind: str, event: dict[str, Any]) -> str | None:
        if kind == "thread.started":
            self._session_id = _str(event.get("thread_id")) or self._session_id
            return None
        if kind == "turn.completed":
            self._codex_turns += 1
            if isinstance(event.get("usage"), dict):
                self._codex_usage = event["usage"]  # the thread's running total: the last one wins
            # A turn that completed after an `error` event means the CLI recovered from it.
            self._codex_failed = None
            return None
        if kind in ("turn.failed", "error"):
            error = event.get("error")
            text = _str(error.get("message")) if isinstance(error, dict) else _str(event.get("message"))
            if kind == "error" and _RECONNECTING.match(text):
                # Codex reports each reconnect as an `error`; only what follows decides the run.
                return f"[retry] {text}"
            self._codex_failed = text or kind
            self._error_texts.append(text)
            return f"[error] {text or kind}"
        if kind == "event_msg":
            return self._codex_rollout(event.get("payload"))
        item = event.get("item")
        if kind not in ("item.started", "item.completed") or not isinstance(item, dict):
            return None
        return self._codex_item(item, started=kind == "item.started")

    def _codex_rollout(self, payload: Any) -> str | None:
        # A Codex session rollout file (`~/.codex/sessions/...jsonl`): `token_count` events carry
        # the thread's running total, like `turn.completed` does on `exec --json`.
        if not isinstance(payload, dict) or payload.get("type") != "token_count":
            return None
        info = payload.get("info")
        total = info.get("total_token_usage") if isinstance(info, dict) else None
        if isinstance(total, dict):
            self._codex_usage = total
            model = _str(info.get("model")) if isinstance(info, dict) else ""
            if model and model not in self._models:
                self._models.append(model)
        return None

    def _codex_item(self, item: dict[str, Any], *, started: bool) -> str | None:
        item_type = item.get("type")
        if item_type == "command_execution":
            if started:
                return render_tool("Bash", {"command": item.get("command")})
            self._collect_security(_str(item.get("aggregated_output")))
            code = item.get("exit_code")
            return f"[tool] exit {code}" if isinstance(code, int) and code != 0 else None
        if started:
            return None  # everything else is shown once, when complete
        if item_type == "agent_message":
            return _str(item.get("text")) or None
        if item_type == "file_change":
            paths = [_str(c.get("path")) for c in item.get("changes") or [] if isinstance(c, dict)]
            return f"[tool] Edit: {', '.join(p for p in paths if p)}"
        if item_type == "mcp_tool_call":
            return f"[tool] {_str(item.get('server'))}.{_str(item.get('tool'))}"
        if item_type == "web_search":
            return f"[tool] WebSearch: {_str(item.get('query'))}"
        if item_type == "error":
            self._error_texts.append(_str(item.get("message")))
            return f"[error] {_str(item.get('message'))}"
        return None

    # ------------------------------------------------------------------ summary

    def summary(
        self, *, exit_code: int | None = None, timed_out: bool = False, now: datetime | None = None
    ) -> StreamSummary:
        """Judge the run from everything fed so far.

        Args:
            exit_code: the process's exit code; None if unknown or k3sc killed it.
            timed_out: k3sc stopped the run at its timeout.
            now: an aware "now", to place reset times given as clock text ("resets 4pm
                (Asia/Tokyo)"); None leaves such times unknown.
        """
        verdict, reason, resets_at = self._classify(exit_code, timed_out, now)
        window = None
        if verdict is Verdict.USAGE_LIMIT:
            # An `allowed` event names the window that still had room, not the one that ran out.
            warned = self._rate_limit.get("status") in ("rejected", "allowed_warning")
            window = window_of(_str(self._rate_limit.get("rateLimitType")) if warned else None, reason)
        return StreamSummary(
            verdict=verdict,
            reason=_one_line(reason),
            usage=self.usage(),
            resets_at=resets_at,
            security_events=tuple(self._security),
            session_id=self._session_id,
            window=window,
        )

    def usage(self) -> Usage | None:
        """The best figure seen: Claude's result, a `[usage]` line, Codex's total, then sums."""
        result = self._result or {}
        cost = _float(result.get("total_cost_usd"))
        turns = _int(result, "num_turns") or None
        models = tuple(m for m in self._models if m != "<synthetic>")
        per_model = result.get("modelUsage")
        if isinstance(per_model, dict) and per_model:
            # Covers every model the run used (subagents, the small fast model), unlike `usage`.
            entries = [v for v in per_model.values() if isinstance(v, dict)]
            keys = ("inputTokens", "cacheCreationInputTokens", "cacheReadInputTokens", "outputTokens")
            tokens = _sum([_claude_tokens(r, *keys) for r in entries])
            if cost is None:
                cost = sum(_float(r.get("costUSD")) or 0.0 for r in entries)
            return Usage.of(tokens, cost=cost, models=tuple(map(str, per_model)), turns=turns)
        if isinstance(result.get("usage"), dict):
            tokens = _claude_tokens(result["usage"])
            if found := Usage.of(tokens, cost=cost, models=models, turns=turns):
                return found
        if (line := self._usage_line) is not None:
            listed = line.get("models")
            return Usage.of(
                _claude_tokens(line, "input_tokens", "cache_creation_tokens", "cache_read_tokens"),
                cost=_float(line.get("cost_usd")),
                models=tuple(map(str, listed)) if isinstance(listed, list) else (),
                turns=_int(line, "turns") or None,
            )
        if (codex := self._codex_usage) is not None:
            cached = _int(codex, "cached_input_tokens")
            # OpenAI counts cached tokens inside input_tokens; split them out like Claude does.
            tokens = (max(_int(codex, "input_tokens") - cached, 0), _int(codex, "output_tokens"), 0, cached)
            return Usage.of(tokens, cost=None, models=tuple(self._models), turns=self._codex_turns or None)
        if self._assistant_usage:
            rows = list(self._assistant_usage.values())
            return Usage.of(_sum(rows), cost=cost, models=models, turns=turns or len(rows))
        return None

    def _classify(
        self, exit_code: int | None, timed_out: bool, now: datetime | None
    ) -> tuple[Verdict, str, datetime | None]:
        result = self._result
        subtype = _str(result.get("subtype")) if result else ""
        is_error = bool(result.get("is_error")) if result else False
        status = _int(result, "api_error_status") if result else 0
        # `subtype: success` alone means nothing: a usage-limit hit reports it with is_error.
        clean = result is not None and subtype == "success" and result.get("is_error") is False
        texts = [*self._error_texts, *self._plain_tail]
        if result and is_error and _str(result.get("result")):
            texts.insert(0, result["result"])
        # The CLI repeats its limit text in the synthetic message and the result: say it once.
        errors = " | ".join(dict.fromkeys(t for t in texts if t))
        error = self._assistant_error

        # 1. Quota. A clean finish after a rejection means overage or another window
        #    carried the run, so that is not a limit hit.
        if not clean and self._rate_limit.get("status") == "rejected":
            window = _str(self._rate_limit.get("rateLimitType")) or "unknown window"
            resets = limits.from_epoch(self._resets_epoch)
            return Verdict.USAGE_LIMIT, f"usage limit ({window}) rejected the run{_until(resets)}", resets
        if not clean and error == "rate_limit" and self._resets_epoch is not None:
            resets = limits.from_epoch(self._resets_epoch)
            return Verdict.USAGE_LIMIT, f"usage limit hit{_until(resets)}", resets
        if not clean and (match := limits.QUOTA.search(errors)):
            return (
                Verdict.USAGE_LIMIT,
                f"usage limit: {errors[match.start() :]}",
                limits.resets_from_text(errors, now),
            )
        # 2. Transient: throttled or failing servers, without a quota rejection.
        if not clean and (status in (429, 529) or 500 <= status < 600):
            return Verdict.TRANSIENT, f"API error {status} (no usage-limit rejection){_colon(errors)}", None
        if not clean and error in limits.TRANSIENT_ERRORS:
            return Verdict.TRANSIENT, f"API error {error}{_colon(errors)}", None
        if not clean and self._retries_exhausted:
            return Verdict.TRANSIENT, f"API retries exhausted{_colon(errors)}", None
        if not clean and (match := limits.TRANSIENT.search(errors)):
            return Verdict.TRANSIENT, errors[match.start() :], None
        # 3. Auth: the account itself was refused; no retry helps.
        if error in limits.AUTH_ERRORS:
            return Verdict.AUTH, f"{error}{_colon(errors)}", None
        if not clean and status in (401, 403):
            return Verdict.AUTH, f"API error {status}{_colon(errors)}", None
        if not clean and (match := limits.AUTH.search(errors)):
            return Verdict.AUTH, errors[match.start() :], None
        # 4. Budget: a cap stopped the run (the CLI's own, or k3sc's timeout).
        if subtype in limits.BUDGET_SUBTYPES:
            return Verdict.BUDGET_STOPPED, f"stopped by the CLI: {subtype}", None
        if timed_out:
            return Verdict.BUDGET_STOPPED, "stopped by k3sc: the run exceeded agent.timeout", None
        if not clean and (match := limits.BUDGET.search(errors)):
            return Verdict.BUDGET_STOPPED, errors[match.start() :], None
        # 5. Failure: a non-zero exit or an error result, whatever the stream claimed earlier.
        if exit_code is not None and exit_code != 0:
            how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
            return Verdict.AGENT_FAILED, f"agent {how}{_colon(errors)}", None
        if result is not None and not clean:
            return Verdict.AGENT_FAILED, f"agent result {subtype or '?'}{_colon(errors)}", None
        if self._codex_failed is not None:
            return Verdict.AGENT_FAILED, f"codex: {self._codex_failed}", None
        if error is not None and not clean:
            return Verdict.AGENT_FAILED, f"API error {error}{_colon(errors)}", None
        # 6. The agent claims success; the hand-off still checks that the PR or review exists.
        if clean and result is not None:
            return (
                Verdict.SUCCESS_CLAIMED,
                f"agent finished ({_str(result.get('terminal_reason')) or subtype})",
                None,
            )
        if exit_code == 0:
            return Verdict.SUCCESS_CLAIMED, "agent exited with code 0", None
        return Verdict.UNKNOWN, "no exit code and no final result in the stream", None


# ---------------------------------------------------------------------- rendering


def render_tool(name: str, tool_input: Any) -> str:
    """`[tool] Name: detail` - Bash: first command line (≤120 chars); files: path; Grep: pattern."""
    args = tool_input if isinstance(tool_input, dict) else {}
    if name == "Bash":
        lines = _str(args.get("command")).strip().splitlines()
        detail = lines[0] if lines else ""
        if len(detail) > BASH_DETAIL_MAX:
            detail = detail[: BASH_DETAIL_MAX - 1] + "…"
    elif name in _PATH_TOOLS:
        detail = _str(args.get("file_path"))
    else:
        detail = next((_str(args[k]) for k in _DETAIL_KEYS if _str(args.get(k))), "")
    return f"[tool] {name}: {detail}" if detail else f"[tool] {name}"


def _tool_result_blocks(event: dict[str, Any]) -> list[dict[str, Any]]:
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _block_text(block: dict[str, Any]) -> str:
    body = block.get("content")
    if isinstance(body, list):
        return "\n".join(_str(b.get("text")) for b in body if isinstance(b, dict))
    return _str(body)


def _render_tool_result(block: dict[str, Any]) -> str:
    lines = _block_text(block).strip().splitlines()
    first = lines[0][:_TOOL_RESULT_PREVIEW] if lines else "(no output)"
    more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    return f"{'[tool error]' if block.get('is_error') else '  ↳'} {first}{more}"


def _render_result(event: dict[str, Any]) -> str:
    parts = [f"[result] {_str(event.get('subtype')) or '?'}"]
    if event.get("is_error"):
        parts.append("is_error")
    if event.get("api_error_status"):
        parts.append(f"api_error_status={event['api_error_status']}")
    if isinstance(event.get("num_turns"), int):
        parts.append(f"turns={event['num_turns']}")
    if (cost := _float(event.get("total_cost_usd"))) is not None:
        parts.append(f"cost=${cost:.4f}")
    if (duration := _float(event.get("duration_ms"))) is not None:
        parts.append(f"duration={duration / 1000:.0f}s")
    text = _str(event.get("result"))
    line = " ".join(parts)
    return f"{line}: {_one_line(text)}" if event.get("is_error") and text else line


# ---------------------------------------------------------------------- small helpers


def _claude_tokens(
    data: dict[str, Any],
    inp: str = "input_tokens",
    create: str = "cache_creation_input_tokens",
    read: str = "cache_read_input_tokens",
    out: str = "output_tokens",
) -> Tokens:
    return (_int(data, inp), _int(data, out), _int(data, create), _int(data, read))


def _sum(rows: list[Tokens]) -> Tokens:
    return (
        sum(r[0] for r in rows),
        sum(r[1] for r in rows),
        sum(r[2] for r in rows),
        sum(r[3] for r in rows),
    )


def _until(when: datetime | None) -> str:
    return f" until {when:%Y-%m-%d %H:%M}Z" if when else ""


def _colon(text: str) -> str:
    return f": {text}" if text else ""


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_MAX else line[: _REASON_MAX - 1] + "…"


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
