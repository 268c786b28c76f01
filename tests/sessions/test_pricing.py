"""The bundled price table: names, dated rows, 5 m versus 1 h cache writes, cliffs, fast, modes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from k3sc.sessions import transcripts
from k3sc.sessions.pricing import CostMode, Resolution, bundled, normalise
from tests.sessions.builders import assistant, entry, jsonl
from tests.sessions.test_dedup import STREAMS, real

PRICES = bundled()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param("claude-opus-4-6", Resolution("claude-opus-4-6", False), id="an exact id"),
        pytest.param("claude-haiku-4-5-20251001", Resolution("claude-haiku-4-5", False), id="a dated id"),
        pytest.param(
            "claude-opus-4-6-preview", Resolution("claude-opus-4-6", False), id="the longest id it extends"
        ),
        pytest.param(
            "claude-sonnet-4-20250514", Resolution("claude-sonnet-4-0", False), id="an alias after the date"
        ),
        pytest.param("claude-opus-4.6", Resolution("claude-opus-4-6", False), id="dots become dashes"),
        pytest.param(
            "anthropic/claude-sonnet-4-5", Resolution("claude-sonnet-4-5", False), id="a provider prefix"
        ),
        pytest.param(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Resolution("claude-sonnet-4-5", False),
            id="Bedrock",
        ),
        pytest.param("claude-opus-4-6@20260101", Resolution("claude-opus-4-6", False), id="Vertex"),
        pytest.param("claude-opus-4-6[1m]", Resolution("claude-opus-4-6", False), id="the 1M-context suffix"),
        pytest.param(
            "claude-opus-9", Resolution("claude-opus-5-5", True), id="an unknown opus is an estimate"
        ),
        pytest.param("gpt-5.3-codex", Resolution("gpt-5-3-codex", False), id="a Codex model"),
        pytest.param("glm-4.6", None, id="a non-Anthropic backend is unpriced"),
        pytest.param("<synthetic>", None, id="synthetic replies are never priced"),
    ],
)
def test_model_names_resolve(model: str, expected: Resolution | None) -> None:
    assert PRICES.resolve(model) == expected


def test_normalise_strips_every_decoration() -> None:
    assert normalise("openrouter/anthropic/Claude-Opus-4.5") == "claude-opus-4-5"


MILLION = 1_000_000


@pytest.mark.parametrize(
    ("row", "usd"),
    [
        pytest.param(entry(input=MILLION), 5.0, id="opus 4.6 input"),
        pytest.param(entry(output=MILLION), 25.0, id="opus 4.6 output"),
        pytest.param(entry(cache_5m=MILLION), 6.25, id="a 5-minute cache write costs 1.25x input"),
        pytest.param(entry(cache_1h=MILLION), 10.0, id="a 1-hour cache write costs 2x input"),
        pytest.param(entry(cache_read=MILLION), 0.5, id="a cache read costs 0.1x input"),
        pytest.param(entry(output=MILLION, speed="fast"), 150.0, id="fast mode multiplies opus 4.6 by 6"),
        pytest.param(
            entry(input=100_000, output=MILLION, model="claude-sonnet-4-5"),
            15.3,
            id="sonnet 4.5 under its cliff",
        ),
        pytest.param(
            entry(input=200_001, output=MILLION, model="claude-sonnet-4-5"),
            200_001 * 6e-6 + 22.5,
            id="past the 200k cliff every token of the request pays the tier price, output included",
        ),
        pytest.param(
            entry(datetime(2026, 10, 6, tzinfo=UTC), cache_read=MILLION, model="claude-sonnet-5-5"),
            0.2,
            id="sonnet 5.5 cache reads before the 2026-10-07 cut",
        ),
        pytest.param(
            entry(datetime(2026, 10, 7, tzinfo=UTC), cache_read=MILLION, model="claude-sonnet-5-5"),
            0.1,
            id="sonnet 5.5 cache reads from the 2026-10-07 cut",
        ),
        pytest.param(entry(input=MILLION, model="<synthetic>"), 0.0, id="synthetic replies cost nothing"),
        pytest.param(entry(input=MILLION, model="kimi-k2"), 0.0, id="unpriced models cost nothing"),
        pytest.param(entry(input=MILLION, cost=1.5), 1.5, id="auto mode keeps a line's own costUSD"),
    ],
)
def test_request_cost(row: object, usd: float) -> None:
    assert PRICES.cost(row) == pytest.approx(usd)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "usd"),
    [
        pytest.param(CostMode.AUTO, 1.5, id="auto uses costUSD when present"),
        pytest.param(CostMode.CALCULATE, 5.0, id="calculate prices the tokens"),
        pytest.param(CostMode.DISPLAY, 1.5, id="display shows costUSD only"),
    ],
)
def test_cost_modes(mode: CostMode, usd: float) -> None:
    assert PRICES.cost(entry(input=MILLION, cost=1.5), mode) == pytest.approx(usd)


def test_display_mode_without_cost_usd_is_zero() -> None:
    assert PRICES.cost(entry(input=MILLION), CostMode.DISPLAY) == 0.0


def test_parsed_cache_split_is_priced_1h_versus_5m() -> None:
    split = assistant(cache_5m=400_000, cache_1h=600_000, output=0, input=0)
    unsplit = assistant(cache_5m=1_000_000, output=0, input=0, split=False)
    (a,) = transcripts.claude_entries(jsonl(split), "s")
    (b,) = transcripts.claude_entries(jsonl(unsplit), "s")
    assert (a.cache_5m, a.cache_1h) == (400_000, 600_000)
    assert (b.cache_5m, b.cache_1h) == (1_000_000, 0)
    assert PRICES.cost(a) == pytest.approx(0.4 * 6.25 + 0.6 * 10)
    assert PRICES.cost(b) == pytest.approx(6.25)


@real
def test_every_model_in_the_real_samples_is_priced() -> None:
    assert STREAMS is not None
    models = set()
    for path in (STREAMS / "claude-transcript").glob("*.jsonl"):
        models |= {
            row.model for row in transcripts.claude_entries(path.read_bytes(), "s", at_file_start=True)
        }
    state = transcripts.CodexState()
    for path in (STREAMS / "codex-session").glob("*.jsonl"):
        models |= {row.model for row in transcripts.codex_entries(path.read_bytes(), "s", state)}
    assert models
    assert {m for m in models if PRICES.resolve(m) is None or PRICES.resolve(m).estimated} == set()  # type: ignore[union-attr]


def test_the_table_is_dated() -> None:
    assert PRICES.version == "2026-11-27"
    opus_48 = PRICES.rows["claude-opus-4-8"]
    assert [row.fast for row in opus_48] == [2.0, 1.0]  # fast mode removed on 2026-11-30
