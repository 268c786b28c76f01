"""Chaos mode: faults on a seeded-random fraction of all requests, the way GitHub fails under load.

The chaos run (bench/chaos.py, tests/e2e/test_chaos.py) needs faults spread over a whole loop,
reproducible from a seed and counted by kind; each kind must look exactly like `inject`'s (and so
like GitHub's) answer, a faulted request must change nothing, and a "timeout" must leave the client
with no answer at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from k3sc import retrying
from k3sc.config import Config
from k3sc.github import GitHubClient, credentials
from k3sc.models import Repo
from k3sc.sandbox.github import CHAOS_KINDS, NO_ANSWER
from tests.contract.conftest import add_ready_issue
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

ISSUE = "/repos/acme/api/issues/1"
MakeFake = Callable[..., ContractCheckedFakeGitHub]


def _statuses(fake: ContractCheckedFakeGitHub, requests: int) -> list[int]:
    """Send `requests` GETs of issue #1; the status of each (NO_ANSWER for a closed connection)."""
    out = []
    with httpx.Client(
        base_url=fake.url, headers={"Authorization": f"token {fake.token}"}, trust_env=False
    ) as http:
        for _ in range(requests):
            try:
                out.append(http.get(ISSUE).status_code)
            except httpx.TransportError:
                out.append(NO_ANSWER)
    return out


def _world(fake: ContractCheckedFakeGitHub) -> ContractCheckedFakeGitHub:
    fake.add_repo("acme", "api")
    add_ready_issue(fake)
    return fake


def test_the_same_seed_meets_the_same_faults_at_the_rate_asked(make_fake_github: MakeFake) -> None:
    first, second, other = (_world(make_fake_github()) for _ in range(3))
    for fake, seed in ((first, 7), (second, 7), (other, 8)):
        fake.chaos(0.2, seed=seed, hang=0.0)
    runs = [_statuses(fake, 300) for fake in (first, second, other)]

    assert runs[0] == runs[1], "the same seed must fault the same requests the same way"
    assert runs[0] != runs[2]
    faulted = [s for s in runs[0] if s != 200]
    assert 40 <= len(faulted) <= 80, f"{len(faulted)} of 300 faulted at rate 0.2"
    injected = first.chaos_injected
    assert sum(injected.values()) == len(faulted)
    assert set(injected) == set(CHAOS_KINDS), injected
    assert injected["timeout"] == faulted.count(NO_ANSWER)
    assert injected["429"] == faulted.count(429)
    assert injected["secondary"] == faulted.count(403)
    assert injected["5xx"] == sum(s >= 500 for s in faulted)


@pytest.mark.parametrize(
    ("kind", "statuses", "message"),
    [
        pytest.param("5xx", {500, 502, 503}, None, id="5xx: GitHub's plain error body"),
        pytest.param("secondary", {403}, "secondary rate limit", id="secondary: 403 + Retry-After"),
        pytest.param("429", {429}, "secondary rate limit", id="429 + Retry-After"),
    ],
)
def test_each_kind_answers_as_github_does(
    http: httpx.Client,
    fake_github: ContractCheckedFakeGitHub,
    kind: str,
    statuses: set[int],
    message: str | None,
) -> None:
    add_ready_issue(fake_github)
    fake_github.chaos(1.0, seed=1, kinds=[kind], retry_after=(1, 2))
    answers = [http.get(ISSUE) for _ in range(20)]

    assert {a.status_code for a in answers} <= statuses
    for answer in answers:
        if message is None:
            assert "retry-after" not in answer.headers
        else:
            assert message in answer.json()["message"]
            assert answer.headers["retry-after"] in ("1", "2")
    assert fake_github.chaos_injected == {kind: 20}


def test_a_timeout_answers_nothing_and_closes_the_connection(
    http: httpx.Client, fake_github: ContractCheckedFakeGitHub
) -> None:
    add_ready_issue(fake_github)
    fake_github.chaos(1.0, kinds=["timeout"], hang=0.0)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(ISSUE)
    fake_github.chaos(1.0, kinds=["timeout"], hang=2.0)
    with pytest.raises(httpx.ReadTimeout):
        http.get(ISSUE, timeout=0.3)  # the hang outlasts the client's patience
    assert [r.status for r in fake_github.requests[-2:]] == [NO_ANSWER, NO_ANSWER]
    assert fake_github.chaos_injected == {"timeout": 2}


def test_a_faulted_write_changes_nothing_and_turning_chaos_off_keeps_the_counts(
    http: httpx.Client, fake_github: ContractCheckedFakeGitHub
) -> None:
    add_ready_issue(fake_github)
    log = list(fake_github.write_log)
    fake_github.chaos(1.0, kinds=["5xx", "429", "timeout"], hang=0.0)
    for _ in range(10):
        with contextlib.suppress(httpx.TransportError):
            http.put(f"{ISSUE}/labels", json={"labels": ["claude-a"]})
    assert fake_github.write_log == log
    assert fake_github.issue_view("acme", "api", 1)["labels"] == ["ready"]

    fake_github.chaos(0)
    assert http.put(f"{ISSUE}/labels", json={"labels": ["claude-a"]}).status_code == 200
    assert sum(fake_github.chaos_injected.values()) == 10


def test_spared_user_agents_are_never_faulted(
    http: httpx.Client, fake_github: ContractCheckedFakeGitHub
) -> None:
    add_ready_issue(fake_github)
    fake_github.chaos(1.0, kinds=["5xx"], spare_user_agents=["k3sc-stub-agent"])
    spared = [http.get(ISSUE, headers={"User-Agent": "k3sc-stub-agent/1"}).status_code for _ in range(5)]
    assert spared == [200] * 5
    assert http.get(ISSUE).status_code >= 500


@pytest.mark.parametrize(
    "settings",
    [
        {"rate": 1.5},
        {"rate": -0.1},
        {"rate": 0.2, "kinds": []},
        {"rate": 0.2, "kinds": ["eof"]},
        {"rate": 0.2, "retry_after": (3, 1)},
    ],
)
def test_chaos_refuses_settings_it_cannot_honour(
    fake_github: ContractCheckedFakeGitHub, settings: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="chaos needs"):
        fake_github.chaos(**settings)


async def test_k3scs_client_rides_out_chaos_on_reads(make_fake_github: MakeFake) -> None:
    """Every kind k3sc's client retries: with a 30 % fault rate, 100 reads all succeed."""
    fake = _world(make_fake_github())
    fake.chaos(0.3, seed=3, hang=0.0)
    config = Config.model_validate(
        {"github_api_url": fake.url, "repos": ["acme/api"], "allowed_authors": ["alice"]}
    )
    environ = {k: v for k, v in os.environ.items() if k not in credentials.TOKEN_VARS}
    environ["GITHUB_TOKEN"] = FAKE_GITHUB_TOKEN
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    retry = retrying.Policy(attempts=retrying.GITHUB.attempts, initial=0.0, jitter=0.0, sleep=sleep)
    async with GitHubClient(config, environ=environ, retry=retry, cache=False) as gh:
        for _ in range(100):
            found = await gh.get_issue(Repo("acme", "api"), 1)
            assert found.issue.number == 1
    injected = fake.chaos_injected
    assert set(injected) == set(CHAOS_KINDS), injected
    # Retry-After (1 or 2 s) is waited out exactly for both kinds of rate limit; the rest back off.
    assert sorted(w for w in waits if w) == sorted(w for w in waits if w in (1.0, 2.0))
    assert len([w for w in waits if w]) == injected["429"] + injected["secondary"]
