"""Table tests for reading agent streams: rendering, usage, security events and the verdict.

Fixture lines are built from the documented event fields of Claude's stream-json and Codex's
`exec --json` output, and the Go k3sc's `[usage]`/`[security]` line formats.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from k3sc.agent import limits, streams
from k3sc.agent.streams import StreamReader, StreamSummary, Usage, Verdict
from k3sc.usage import LimitHit, Window

NOW = datetime(2026, 5, 1, 5, 0, tzinfo=UTC)  # 14:00 in Tokyo, 06:00 in Lisbon
RESETS_EPOCH = 1777626000  # 2026-05-01 09:00 UTC
MODEL = "claude-sonnet-4-6"


def line(**event: Any) -> str:
    return json.dumps(event)


def init() -> str:
    return line(
        type="system", subtype="init", session_id="sess-1", model=MODEL, apiKeySource="none", tools=[]
    )


def rate_limit(status: str, resets: int | None = RESETS_EPOCH, window: str = "five_hour") -> str:
    info: dict[str, Any] = {"status": status, "rateLimitType": window}
    if resets is not None:
        info["resetsAt"] = resets
    return line(type="rate_limit_event", rate_limit_info=info, session_id="sess-1")


def usage(inp: int = 10, out: int = 5, create: int = 100, read: int = 1000) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": create,
        "cache_read_input_tokens": read,
    }


def assistant(
    *content: dict[str, Any],
    msg_id: str = "msg_1",
    model: str = MODEL,
    used: dict[str, int] | None = None,
    **top: Any,
) -> str:
    message = {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": list(content)}
    if used is not None:
        message["usage"] = used
    return line(type="assistant", message=message, parent_tool_use_id=None, session_id="sess-1", **top)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool(name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_1", "name": name, "input": tool_input}


def tool_result(content: Any, is_error: bool = False) -> str:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": content, "is_error": is_error}
    return line(type="user", message={"role": "user", "content": [block]}, session_id="sess-1")


def synthetic(message: str, error: str | None = None) -> str:
    """The CLI's own message in assistant dress; older CLIs set neither `error` nor the flag."""
    flags: dict[str, Any] = {"error": error, "isApiErrorMessage": True} if error else {}
    return assistant(
        text(message), msg_id="synthetic-1", model="<synthetic>", used=usage(0, 0, 0, 0), **flags
    )


def result(subtype: str = "success", is_error: bool = False, **extra: Any) -> str:
    fields: dict[str, Any] = {
        "duration_ms": 12_000,
        "num_turns": 3,
        "result": "done",
        "session_id": "sess-1",
        "total_cost_usd": 0.25,
        "usage": usage(),
        "terminal_reason": "completed",
    }
    fields.update(extra)
    return line(type="result", subtype=subtype, is_error=is_error, **fields)


def codex(kind: str, **fields: Any) -> str:
    return line(type=kind, **fields)


def codex_usage(inp: int, cached: int, out: int) -> str:
    return codex(
        "turn.completed", usage={"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out}
    )


def read_all(lines: list[str]) -> StreamReader:
    reader = StreamReader()
    for each in lines:
        reader.feed(each)
    return reader


# --------------------------------------------------------------------------- verdict

LIMIT_TEXT = "You've hit your limit · resets 4pm (Asia/Tokyo)"
TOKYO_4PM = datetime(2026, 5, 1, 7, 0, tzinfo=UTC) + limits.TEXT_RESET_MARGIN
AT_EPOCH = datetime.fromtimestamp(RESETS_EPOCH, UTC)
SUBSCRIPTION_LIMIT = [
    init(),
    rate_limit("rejected"),
    synthetic(LIMIT_TEXT, "rate_limit"),
    result(is_error=True, api_error_status=429, result=LIMIT_TEXT, terminal_reason="api_error", total_cost_usd=0,
           usage=usage(0, 0, 0, 0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "exit_code", "timed_out", "verdict", "resets_at"),
    [
        # ---- quota
        pytest.param(
            SUBSCRIPTION_LIMIT, 0, False, Verdict.USAGE_LIMIT, AT_EPOCH,
            id="subscription limit exiting 0 with subtype success is a usage limit",
        ),
        pytest.param(
            [init(), rate_limit("allowed_warning"), synthetic("API Error: 429", "rate_limit"),
             result(is_error=True, api_error_status=429)],
            1, False, Verdict.USAGE_LIMIT, AT_EPOCH,
            id="rate_limit error with a unified resetsAt is a usage limit",
        ),
        pytest.param(
            [init(), synthetic(LIMIT_TEXT, "rate_limit"), result(is_error=True, result=LIMIT_TEXT)],
            0, False, Verdict.USAGE_LIMIT, TOKYO_4PM,
            id="limit text without an event resets at the named local time",
        ),
        pytest.param(
            [init(), synthetic("You've hit your session limit · resets 3:50pm (Asia/Tokyo)", "rate_limit"),
             result(is_error=True)],
            0, False, Verdict.USAGE_LIMIT,
            datetime(2026, 5, 1, 6, 50, tzinfo=UTC) + limits.TEXT_RESET_MARGIN,
            id="session limit text",
        ),
        pytest.param(
            ["Claude AI usage limit reached|1777626000"], 1, False, Verdict.USAGE_LIMIT, AT_EPOCH,
            id="old CLI text carries the reset epoch",
        ),
        pytest.param(
            [init(), synthetic("You're out of extra usage · resets 4pm (Asia/Tokyo)", "rate_limit"),
             result(is_error=True)],
            0, False, Verdict.USAGE_LIMIT, TOKYO_4PM,
            id="out of extra usage",
        ),
        pytest.param(
            [codex("thread.started", thread_id="th-1"),
             codex("turn.failed", error={"message": "You've hit your usage limit. Visit https://chatgpt.com/codex/"
                   "settings/usage to purchase more credits or try again at Apr 28th, 2026 10:03 PM."})],
            1, False, Verdict.USAGE_LIMIT,
            datetime(2026, 4, 28, 22, 3, tzinfo=UTC) + limits.TEXT_RESET_MARGIN,
            id="codex usage limit with a try-again time",
        ),
        pytest.param(
            [init(), synthetic("Weekly limit reached ∙ resets 5am"),
             result(is_error=True, result="Weekly limit reached ∙ resets 5am")],
            0, False, Verdict.USAGE_LIMIT, datetime(2026, 5, 2, 5, 0, tzinfo=UTC) + limits.TEXT_RESET_MARGIN,
            id="weekly limit wording without a zone resets at the next 5am of the clock's zone",
        ),
        pytest.param(
            [codex("thread.started", thread_id="th-1"),
             codex("error", message="You've hit your usage limit. To get more access now, send a request to "
                   "your admin or try again at 9:01 AM."),
             codex("turn.failed", error={"message": "You've hit your usage limit. To get more access now, "
                   "send a request to your admin or try again at 9:01 AM."})],
            0, False, Verdict.USAGE_LIMIT, datetime(2026, 5, 1, 9, 1, tzinfo=UTC) + limits.TEXT_RESET_MARGIN,
            id="codex usage limit with only a clock time resets at its next occurrence",
        ),
        pytest.param(
            [codex("thread.started", thread_id="th-1"), codex("error", message="Reconnecting... 1/5"),
             codex("error", message="Reconnecting... 2/5"), codex_usage(100, 20, 10)],
            0, False, Verdict.SUCCESS_CLAIMED, None,
            id="codex reconnect errors followed by a completed turn are not fatal",
        ),
        pytest.param(
            [init(), rate_limit("rejected"), assistant(text("working"), used=usage()), result()],
            0, False, Verdict.SUCCESS_CLAIMED, None,
            id="a clean finish after a rejection (overage) is not a limit",
        ),
        # ---- transient
        pytest.param(
            [init(), synthetic("API Error: 429 rate_limit_error", "rate_limit"),
             result(is_error=True, api_error_status=429)],
            0, False, Verdict.TRANSIENT, None,
            id="a bare 429 without unified info is transient",
        ),
        pytest.param(
            [init(), synthetic("API Error: 529 overloaded_error", "server_error"),
             result(is_error=True, api_error_status=529)],
            0, False, Verdict.TRANSIENT, None,
            id="529 overloaded is transient",
        ),
        pytest.param(
            [init(), line(type="system", subtype="api_retry", attempt=10, max_retries=10, retry_delay_ms=500,
                          error_status=500, session_id="sess-1")],
            1, False, Verdict.TRANSIENT, None,
            id="exhausted API retries are transient",
        ),
        pytest.param(
            ["API Error: Server is temporarily limiting requests (not your usage limit)"], 1, False,
            Verdict.TRANSIENT, None,
            id="server throttling that says it is not your usage limit",
        ),
        # ---- auth
        pytest.param(
            [init(), synthetic("Invalid API key · Fix external API key", "authentication_failed"),
             result(is_error=True)],
            0, False, Verdict.AUTH, None,
            id="authentication_failed",
        ),
        pytest.param(
            [init(), synthetic("Your organization does not allow OAuth", "oauth_org_not_allowed"),
             result(is_error=True, api_error_status=403)],
            0, False, Verdict.AUTH, None,
            id="subtype success with is_error and 403 oauth_org_not_allowed",
        ),
        pytest.param(
            [codex("error", message="Quota exceeded. Check your plan and billing details.")],
            1, False, Verdict.AUTH, None,
            id="codex billing quota is auth, not a usage window",
        ),
        # ---- budget
        pytest.param(
            [init(), result("error_max_budget_usd")], 0, False, Verdict.BUDGET_STOPPED, None,
            id="error_max_budget_usd",
        ),
        pytest.param(
            [init(), result("error_max_turns", terminal_reason="max_turns")], 0, False, Verdict.BUDGET_STOPPED, None,
            id="error_max_turns",
        ),
        pytest.param(
            [codex("turn.failed", error={"message": "shared rollout token budget exhausted"})],
            1, False, Verdict.BUDGET_STOPPED, None,
            id="codex rollout budget exhausted",
        ),
        pytest.param(
            [init(), assistant(text("still working"), used=usage())], None, True, Verdict.BUDGET_STOPPED, None,
            id="k3sc's own timeout",
        ),
        # ---- failed
        pytest.param(
            [init(), result("error_during_execution", is_error=True)], 1, False, Verdict.AGENT_FAILED, None,
            id="error_during_execution",
        ),
        pytest.param(
            [init(), result()], 2, False, Verdict.AGENT_FAILED, None,
            id="a non-zero exit after a success result fails",
        ),
        pytest.param([init()], -9, False, Verdict.AGENT_FAILED, None, id="killed by a signal"),
        pytest.param(
            [codex("turn.failed", error={"message": "stream disconnected"})], 0, False, Verdict.AGENT_FAILED, None,
            id="codex turn failed",
        ),
        pytest.param(
            [init(), assistant(text(LIMIT_TEXT), tool("Bash", command=f"echo '{LIMIT_TEXT}'"), used=usage())],
            1, False, Verdict.AGENT_FAILED, None,
            id="the model quoting a limit message is not a limit",
        ),
        # ---- success / unknown
        pytest.param(
            [init(), assistant(text("done"), used=usage()), result()], 0, False, Verdict.SUCCESS_CLAIMED, None,
            id="a clean result claims success",
        ),
        pytest.param(
            [codex("thread.started", thread_id="th-1"), codex_usage(100, 20, 10)], 0, False,
            Verdict.SUCCESS_CLAIMED, None,
            id="codex completing its turns claims success",
        ),
        pytest.param(["plain output", "all done"], 0, False, Verdict.SUCCESS_CLAIMED, None, id="exit 0 without a stream"),
        pytest.param([init()], None, False, Verdict.UNKNOWN, None, id="no exit code and no result"),
    ],
)  # fmt: skip
def test_verdict(
    lines: list[str], exit_code: int | None, timed_out: bool, verdict: Verdict, resets_at: datetime | None
) -> None:
    summary = read_all(lines).summary(exit_code=exit_code, timed_out=timed_out, now=NOW)
    assert (summary.verdict, summary.resets_at) == (verdict, resets_at), summary.reason


def test_usage_limit_summary_is_complete() -> None:
    reader = read_all([*SUBSCRIPTION_LIMIT, "[security] push to 'main' blocked (only 'issue-5' allowed)"])
    assert reader.summary(exit_code=0, now=NOW) == StreamSummary(
        verdict=Verdict.USAGE_LIMIT,
        reason="usage limit (five_hour) rejected the run until 2026-05-01 09:00Z",
        usage=None,
        resets_at=AT_EPOCH,
        security_events=("push to 'main' blocked (only 'issue-5' allowed)",),
        session_id="sess-1",
        window=Window.FIVE_HOUR,
    )


def test_a_limit_summary_becomes_the_dispatchers_limit_hit() -> None:
    summary = read_all(SUBSCRIPTION_LIMIT).summary(exit_code=0, now=NOW)
    assert summary.limit_hit("claude") == LimitHit(
        "claude",
        None,
        AT_EPOCH,
        Window.FIVE_HOUR,
        "usage limit (five_hour) rejected the run until 2026-05-01 09:00Z",
    )
    clean = read_all([init(), result()]).summary(exit_code=0, now=NOW)
    assert clean.limit_hit("claude") is None


@pytest.mark.parametrize(
    ("lines", "window"),
    [
        pytest.param(SUBSCRIPTION_LIMIT, Window.FIVE_HOUR, id="the rejected event names the window"),
        pytest.param(
            [init(), rate_limit("allowed", window="five_hour"), synthetic("Weekly limit reached ∙ resets 5am"),
             result(is_error=True, result="Weekly limit reached ∙ resets 5am")],
            Window.WEEKLY,
            id="an allowed event does not name the window that ran out; the wording does",
        ),
        pytest.param(
            [init(), rate_limit("rejected", window="seven_day_opus"), synthetic("limit", "rate_limit"),
             result(is_error=True, api_error_status=429)],
            Window.OPUS,
            id="seven_day_opus is the opus window",
        ),
    ],
)  # fmt: skip
def test_limit_window(lines: list[str], window: Window) -> None:
    assert read_all(lines).summary(exit_code=0, now=NOW).window == window


def test_text_reset_times_need_a_clock() -> None:
    summary = read_all([init(), synthetic(LIMIT_TEXT, "rate_limit"), result(is_error=True)]).summary(
        exit_code=0
    )
    assert (summary.verdict, summary.resets_at) == (Verdict.USAGE_LIMIT, None)


@pytest.mark.parametrize(
    ("message", "now", "expected"),
    [
        pytest.param(LIMIT_TEXT, NOW, datetime(2026, 5, 1, 7, 0, tzinfo=UTC), id="later today in its zone"),
        pytest.param(
            LIMIT_TEXT, datetime(2026, 5, 1, 8, 0, tzinfo=UTC), datetime(2026, 5, 2, 7, 0, tzinfo=UTC),
            id="already past today means tomorrow",
        ),
        pytest.param(
            "You've hit your weekly limit · resets May 3, 4pm (Europe/Lisbon)", NOW,
            datetime(2026, 5, 3, 15, 0, tzinfo=UTC), id="a date and a zone with summer time",
        ),
        pytest.param(
            "You've hit your weekly limit · resets Jan 2 at 9am (UTC)", datetime(2026, 12, 30, tzinfo=UTC),
            datetime(2027, 1, 2, 9, 0, tzinfo=UTC), id="a date early next year",
        ),
        pytest.param("Claude AI usage limit reached|1777626000000", None, AT_EPOCH, id="epoch in milliseconds"),
        pytest.param("You've hit your limit · resets 4pm (Mars/Olympus)", NOW, None, id="an unknown zone"),
        pytest.param("You've hit your limit · resets 13pm (UTC)", NOW, None, id="an impossible hour"),
        pytest.param("You've hit your limit", NOW, None, id="no time at all"),
    ],
)  # fmt: skip
def test_resets_from_text(message: str, now: datetime | None, expected: datetime | None) -> None:
    margin = limits.TEXT_RESET_MARGIN if expected is not None and "|" not in message else timedelta(0)
    assert limits.resets_from_text(message, now) == (expected + margin if expected else None)


# --------------------------------------------------------------------------- usage


def test_claude_assistant_usage_is_deduplicated_by_message_id_keeping_the_largest() -> None:
    reader = read_all(
        [
            init(),
            assistant(text("part"), msg_id="msg_1", used=usage(10, 1, 100, 0)),
            assistant(text("part, more"), msg_id="msg_1", used=usage(10, 40, 100, 0)),
            assistant(tool("Read", file_path="a.py"), msg_id="msg_2", used=usage(5, 5, 0, 200)),
            assistant(text("sub"), msg_id="msg_3", model="claude-haiku-4-5", used=usage(1, 1, 0, 0)),
        ]
    )
    assert reader.usage() == Usage(16, 46, 100, 200, 362, None, (MODEL, "claude-haiku-4-5"), 3)


def test_claude_result_model_usage_wins_and_covers_every_model() -> None:
    model_usage = {
        MODEL: {"inputTokens": 100, "outputTokens": 50, "cacheCreationInputTokens": 10, "cacheReadInputTokens": 1000,
                "costUSD": 0.5},
        "claude-haiku-4-5": {"inputTokens": 20, "outputTokens": 5, "cacheCreationInputTokens": 0,
                             "cacheReadInputTokens": 0, "costUSD": 0.01},
    }  # fmt: skip
    reader = read_all(
        [
            init(),
            assistant(text("x"), used=usage(1, 1, 1, 1)),
            result(modelUsage=model_usage, total_cost_usd=0.51),
        ]
    )
    assert reader.usage() == Usage(120, 55, 10, 1000, 1185, 0.51, (MODEL, "claude-haiku-4-5"), 3)


def test_claude_result_usage_without_model_usage() -> None:
    reader = read_all([init(), assistant(text("x"), used=usage(1, 1, 1, 1)), result()])
    assert reader.usage() == Usage(10, 5, 100, 1000, 1115, 0.25, (MODEL,), 3)


def test_usage_line_of_the_original_format_is_read_mid_line_and_the_last_valid_one_wins() -> None:
    first = {"input_tokens": 1, "output_tokens": 1, "cache_creation_tokens": 0, "cache_read_tokens": 0,
             "total_tokens": 2, "models": ["a"]}  # fmt: skip
    last = {"input_tokens": 100, "output_tokens": 20, "cache_creation_tokens": 30, "cache_read_tokens": 400,
            "total_tokens": 550, "cache_hit_rate": 0.757, "output_ratio": 0.036, "models": [MODEL], "entries": 7}  # fmt: skip
    reader = read_all(
        [
            f"[usage] {json.dumps(first)}",
            f"[result] exit [usage] {json.dumps(last)}",
            "[usage] {not json",
            '[usage] {"total_tokens": 0}',
        ]
    )
    assert reader.usage() == Usage(100, 20, 30, 400, 550, None, (MODEL,), None)


def test_codex_usage_is_the_last_running_total_with_cached_tokens_split_out() -> None:
    reader = read_all(
        [
            codex("thread.started", thread_id="th-1"),
            codex_usage(1000, 200, 50),
            codex_usage(3000, 2500, 120),
        ]
    )
    assert reader.usage() == Usage(500, 120, 0, 2500, 3120, None, (), 2)
    assert reader.summary(exit_code=0).session_id == "th-1"


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([], id="nothing"),
        pytest.param(SUBSCRIPTION_LIMIT, id="a usage-limit hit used nothing"),
        pytest.param(["just text"], id="plain text"),
    ],
)
def test_no_usage(lines: list[str]) -> None:
    assert read_all(lines).usage() is None


def test_usage_as_dict_has_the_original_keys() -> None:
    assert Usage(1, 2, 3, 4, 10, 0.5, ("m",), 2).as_dict() == {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_tokens": 3,
        "cache_read_tokens": 4,
        "total_tokens": 10,
        "cost_usd": 0.5,
        "models": ["m"],
        "turns": 2,
    }


# --------------------------------------------------------------------------- rendering

LONG_COMMAND = "pytest -q " + "tests/test_x.py " * 20 + "\necho second line"


@pytest.mark.parametrize(
    ("raw", "rendered"),
    [
        pytest.param("plain text line", "plain text line", id="non-JSON verbatim"),
        pytest.param('{"not": "an event"}', '{"not": "an event"}', id="JSON without a type verbatim"),
        pytest.param("{broken json", "{broken json", id="broken JSON verbatim"),
        pytest.param(init(), "[init] model claude-sonnet-4-6, session sess-1", id="init"),
        pytest.param(assistant(text("Let me look.")), "Let me look.", id="assistant text"),
        pytest.param(
            assistant(tool("Bash", command=LONG_COMMAND)),
            "[tool] Bash: " + LONG_COMMAND.splitlines()[0][:119] + "…",
            id="Bash: first line, 120 chars",
        ),
        pytest.param(assistant(tool("Read", file_path="src/a.py")), "[tool] Read: src/a.py", id="Read: path"),
        pytest.param(
            assistant(tool("Edit", file_path="b.py", old_string="x", new_string="y")), "[tool] Edit: b.py",
            id="Edit: path",
        ),
        pytest.param(assistant(tool("Write", file_path="c.md", content="...")), "[tool] Write: c.md", id="Write"),
        pytest.param(assistant(tool("Grep", pattern="def main", path="src")), "[tool] Grep: def main", id="Grep"),
        pytest.param(assistant(tool("TodoWrite", todos=[])), "[tool] TodoWrite", id="a tool without detail"),
        pytest.param(
            assistant(text("Running tests."), tool("Bash", command="pytest")), "Running tests.\n[tool] Bash: pytest",
            id="text and a tool call in one message",
        ),
        pytest.param(tool_result("ok\nline 2\nline 3"), "  ↳ ok (+2 lines)", id="tool result, abbreviated"),
        pytest.param(
            tool_result([{"type": "text", "text": "boom"}], is_error=True), "[tool error] boom", id="tool error"
        ),
        pytest.param(result(), "[result] success turns=3 cost=$0.2500 duration=12s", id="result"),
        pytest.param(
            result(is_error=True, api_error_status=429, result=LIMIT_TEXT, num_turns=1),
            f"[result] success is_error api_error_status=429 turns=1 cost=$0.2500 duration=12s: {LIMIT_TEXT}",
            id="error result with its text",
        ),
        pytest.param(synthetic(LIMIT_TEXT, "rate_limit"), f"[error] rate_limit: {LIMIT_TEXT}", id="synthetic error"),
        pytest.param(rate_limit("allowed"), None, id="allowed rate limit is noise"),
        pytest.param(rate_limit("rejected"), "[rate-limit] rejected five_hour", id="rejected rate limit"),
        pytest.param(line(type="stream_event", event={"type": "content_block_delta"}), None, id="partial delta"),
        pytest.param(
            codex("item.started", item={"id": "i1", "type": "command_execution", "command": "bash -lc ls"}),
            "[tool] Bash: bash -lc ls",
            id="codex command",
        ),
        pytest.param(
            codex("item.completed", item={"id": "i1", "type": "command_execution", "command": "false",
                                          "aggregated_output": "", "exit_code": 1}),
            "[tool] exit 1",
            id="codex failed command",
        ),
        pytest.param(
            codex("item.completed", item={"id": "i2", "type": "agent_message", "text": "All done."}),
            "All done.",
            id="codex message",
        ),
        pytest.param(
            codex("item.completed", item={"id": "i3", "type": "file_change",
                                          "changes": [{"path": "a.py", "kind": "update"}, {"path": "b.py"}]}),
            "[tool] Edit: a.py, b.py",
            id="codex file change",
        ),
        pytest.param(codex("turn.failed", error={"message": "boom"}), "[error] boom", id="codex turn failed"),
        pytest.param(codex_usage(1, 0, 1), None, id="codex turn completed is quiet"),
    ],
)  # fmt: skip
def test_rendering(raw: str, rendered: str | None) -> None:
    assert StreamReader().feed(raw) == rendered


def test_render_tool_truncates_only_past_the_limit() -> None:
    exact = "x" * streams.BASH_DETAIL_MAX
    assert streams.render_tool("Bash", {"command": exact}) == f"[tool] Bash: {exact}"


# --------------------------------------------------------------------------- security events


def test_security_events_come_from_output_and_tool_results_but_not_tool_inputs() -> None:
    reader = read_all(
        [
            "[security] gh pr merge blocked (allowed: create,view,list,diff,checks)",
            assistant(tool("Bash", command="echo '[security] fake event from the model'")),
            tool_result("To origin\n[security] push to 'main' blocked (only 'issue-5' allowed)\nerror: failed"),
            codex("item.completed", item={"id": "i1", "type": "command_execution", "command": "git commit",
                                          "aggregated_output": "[security] commit blocked: message contains "
                                          "fixes|closes|resolves #N (auto-closes issues)\n", "exit_code": 1}),
        ]
    )  # fmt: skip
    assert reader.summary(exit_code=0).security_events == (
        "gh pr merge blocked (allowed: create,view,list,diff,checks)",
        "push to 'main' blocked (only 'issue-5' allowed)",
        "commit blocked: message contains fixes|closes|resolves #N (auto-closes issues)",
    )
