"""The webhook receiver without Prefect: signatures, triage, the HTTP answers, the inbox, the config.

The HTTP tests drive the real Starlette app through httpx's ASGITransport, which runs no lifespan,
so no forwarder runs: what the app decided is read from the inbox (a pending row is an event
that will reach Prefect; no row, or an ignored one, is none).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc import deliveries
from k3sc.errors import ConfigError
from k3sc.orchestration import events
from k3sc.webhook.app import Settings, create_app
from k3sc.webhook.inbox import Entry, Inbox, Status
from tests.cli_helpers import invoke

SECRET = b"hook-secret"
REPOS = frozenset({"acme/api"})
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def issue_payload(
    action: str = "labeled", label: str | None = "ready", repo: str = "acme/api"
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "repository": {"full_name": repo},
        "issue": {"number": 7, "labels": [{"name": "ready"}]},
        "sender": {"login": "alice"},
    }
    if label is not None:
        payload["label"] = {"name": label}
    return payload


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("secret", "body", "header", "valid"),
    [
        pytest.param(SECRET, b"{}", deliveries.sign(SECRET, b"{}"), True, id="GitHub's signature of these bytes"),
        pytest.param(SECRET, b"{} ", deliveries.sign(SECRET, b"{}"), False, id="one byte changed"),
        pytest.param(b"other", b"{}", deliveries.sign(SECRET, b"{}"), False, id="another hook's secret"),
        pytest.param(SECRET, b"{}", None, False, id="no header"),
        pytest.param(SECRET, b"{}", deliveries.sign(SECRET, b"{}").replace("sha256=", "sha1="), False,
                     id="legacy sha1 prefix"),
        pytest.param(b"", b"{}", deliveries.sign(b"", b"{}"), False, id="an empty secret verifies nothing"),
    ],
)  # fmt: skip
def test_signatures(secret: bytes, body: bytes, header: str | None, valid: bool) -> None:
    assert deliveries.verify(secret, body, header) is valid


def test_signature_matches_githubs_documented_example() -> None:
    # docs.github.com "Validating webhook deliveries": secret "It's a Secret to Everybody".
    assert deliveries.sign(b"It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


# --------------------------------------------------------------------------- triage


@pytest.mark.parametrize(
    ("event", "payload", "look", "reason"),
    [
        pytest.param("issues", issue_payload(), True, "issues.labeled", id="ready set: look"),
        pytest.param("issues", issue_payload("unlabeled", "waiting"), True, "issues.unlabeled",
                     id="waiting removed: look"),
        pytest.param("issues", issue_payload("opened", None), True, "issues.opened", id="opened: look"),
        pytest.param("issues", issue_payload("closed", None), True, "issues.closed", id="closed: look"),
        pytest.param("issues", issue_payload("labeled", "claude-a"), False, "claude-a was claimed: nothing new",
                     id="a claim comes back as labeled: no scan"),
        pytest.param("issues", issue_payload("unlabeled", "ready"), False, "ready removed: no new work",
                     id="ready removed: no scan"),
        pytest.param("issues", issue_payload("unlabeled", "codex-b"), False, "codex-b was released: nothing new",
                     id="a hand-off's owner removal: no scan (its new state label is the hint)"),
        pytest.param("issues", issue_payload("edited", None), False, "issues.edited changes nothing k3sc decides on",
                     id="edited: ignored"),
        pytest.param("issues", issue_payload(repo="evil/fork"), False, "unknown repository 'evil/fork'",
                     id="unknown repository: ignored"),
        pytest.param("issue_comment", {"action": "created", "repository": {"full_name": "acme/api"}}, False,
                     "event 'issue_comment' is not one k3sc handles", id="unknown event: ignored"),
        pytest.param("pull_request", {"action": "closed", "repository": {"full_name": "Acme/API"},
                                      "pull_request": {"number": 9}}, True, "pull_request.closed",
                     id="PR closed: look (repository case does not matter)"),
        pytest.param("pull_request", {"action": "synchronize", "repository": {"full_name": "acme/api"},
                                      "pull_request": {"number": 9}}, False,
                     "pull_request.synchronize changes nothing k3sc decides on", id="a push to a PR: ignored"),
        pytest.param("ping", {"zen": "Keep it simple.", "repository": {"full_name": "acme/api"}}, True,
                     "a new hook: look at everything", id="repository hook ping: look"),
        pytest.param("ping", {"zen": "x", "organization": {"login": "ACME"}}, True, "a new hook: look at everything",
                     id="organization hook ping of a watched owner: look"),
        pytest.param("ping", {"zen": "x", "organization": {"login": "other"}}, False, "unknown owner 'other'",
                     id="organization hook ping of another owner: ignored"),
        pytest.param("issues", {"action": "labeled", "repository": {"full_name": "acme/api"},
                                "issue": {"number": "7"}}, False, "issues.labeled without an issue number",
                     id="malformed number: ignored"),
    ],
)  # fmt: skip
def test_triage(event: str, payload: dict[str, Any], look: bool, reason: str) -> None:
    verdict = deliveries.triage(event, payload, REPOS)
    assert (verdict.look, verdict.reason) == (look, reason)


def test_events_carry_identity_only_and_the_delivery_as_id() -> None:
    event = events.from_github("issues", issue_payload(), GUID)
    assert event is not None
    assert (event["id"], event["event"]) == (GUID, "github.issues.labeled")
    assert event["resource"] == {
        "prefect.resource.id": "github.issue.acme/api#7",
        "prefect.resource.name": "acme/api#7",
        "github.repo": "acme/api",
        "github.number": "7",
        "github.label": "ready",
    }
    assert event["payload"] == {
        "repo": "acme/api", "issue": 7, "action": "labeled", "label": "ready", "sender": "alice", "delivery": GUID,
    }  # fmt: skip
    # A delivery id that is not a UUID still maps to one, the same every time.
    assert events.event_id("relay-1") == events.event_id("relay-1") != events.event_id("relay-2")
    ping = events.from_github("ping", {"organization": {"login": "Acme"}}, GUID)
    assert ping is not None and ping["resource"]["prefect.resource.id"] == "github.org.acme"


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def inbox(tmp_path: Path) -> Any:
    box = Inbox(tmp_path / "inbox.sqlite3")
    yield box
    box.close()


SETTINGS = Settings(secret=SecretStr(SECRET.decode()), repos=REPOS, api_url="http://127.0.0.1:9/api")


def receiver(inbox: Inbox) -> httpx.AsyncClient:
    """The app with no lifespan (no forwarder); Prefect is a closed port it never calls."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(SETTINGS, inbox)), base_url="http://hook"
    )


@pytest.fixture
async def client(inbox: Inbox) -> AsyncIterator[httpx.AsyncClient]:
    async with receiver(inbox) as found:
        yield found


def headers(
    body: bytes, *, event: str = "issues", delivery: str = GUID, secret: bytes | None = SECRET
) -> dict[str, str]:
    found = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json",
             "User-Agent": "GitHub-Hookshot/6b3e7f1"}  # fmt: skip
    if secret is not None:
        found["X-Hub-Signature-256"] = deliveries.sign(secret, body)
    return found


LABELED = json.dumps(issue_payload()).encode()
HUGE = json.dumps({**issue_payload(), "pad": "x" * deliveries.MAX_BODY}).encode()


@pytest.mark.parametrize(
    ("body", "head", "status", "stored"),
    [
        pytest.param(LABELED, headers(LABELED), 202, Status.PENDING, id="signed labeled ready: 202, on its way"),
        pytest.param(LABELED, headers(LABELED, secret=None), 401, None, id="no signature: 401"),
        pytest.param(LABELED, headers(LABELED, secret=b"guess"), 401, None, id="wrong secret: 401"),
        pytest.param(LABELED + b" ", headers(LABELED), 401, None, id="body changed after signing: 401"),
        pytest.param(HUGE, headers(HUGE), 413, None, id="over 1 MiB: 413"),
        pytest.param(b"payload=%7B%7D", headers(b"payload=%7B%7D"), 400, None, id="form-encoded, not JSON: 400"),
        pytest.param(b"[1, 2]", headers(b"[1, 2]"), 400, None, id="JSON but not an object: 400"),
        pytest.param(LABELED, {k: v for k, v in headers(LABELED).items() if k != "X-GitHub-Event"}, 400, None,
                     id="no event header: 400"),
        pytest.param(b'{"action":"created"}', headers(b'{"action":"created"}', event="issue_comment"), 202,
                     Status.IGNORED, id="unknown event: 202, ignored"),
        pytest.param(json.dumps(issue_payload(repo="evil/fork")).encode(),
                     headers(json.dumps(issue_payload(repo="evil/fork")).encode()), 202, Status.IGNORED,
                     id="unknown repository: 202, ignored"),
    ],
)  # fmt: skip
async def test_the_receiver_answers(
    client: httpx.AsyncClient,
    inbox: Inbox,
    body: bytes,
    head: dict[str, str],
    status: int,
    stored: Status | None,
) -> None:
    response = await client.post("/github", content=body, headers=head)
    assert response.status_code == status, response.text
    assert inbox.status(GUID) == stored
    assert (inbox.counts().get("pending", 0) == 1) == (stored is Status.PENDING)


async def test_a_chunked_body_over_the_limit_is_cut_off(client: httpx.AsyncClient, inbox: Inbox) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"x" * 65536

    response = await client.post("/github", content=chunks(), headers=headers(b""))
    assert response.status_code == 413
    assert inbox.counts() == {}


async def test_rejections_and_ignores_are_logged_without_the_secret(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="k3sc.webhook")
    await client.post("/github", content=LABELED, headers=headers(LABELED, secret=b"guess"))
    body = json.dumps(issue_payload(repo="evil/fork")).encode()
    await client.post("/github", content=body, headers=headers(body, delivery="d-2"))
    assert f"delivery {GUID}: missing or wrong signature, rejected" in caplog.text
    assert "ignored issues.labeled evil/fork#7 (delivery d-2): unknown repository 'evil/fork'" in caplog.text
    assert SECRET.decode() not in caplog.text


async def test_only_post_and_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/github")).status_code == 405
    assert (await client.get("/healthz")).json() == {"ok": True, "inbox": {}}


# --------------------------------------------------------------------------- inbox


async def test_the_inbox_survives_a_restart_and_dedupes_redeliveries(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    first = Inbox(path)
    async with receiver(first) as client:
        answers = [await client.post("/github", content=LABELED, headers=headers(LABELED)) for _ in range(5)]
    assert [a.json()["message"] for a in answers] == ["accepted"] + ["duplicate"] * 4
    first.close()

    # A new receiver process on the same file: the delivery is still pending, a redelivery is a duplicate.
    second = Inbox(path)
    async with receiver(second) as client:
        again = await client.post("/github", content=LABELED, headers=headers(LABELED))
    assert (again.status_code, again.json()["message"]) == (202, "duplicate")
    assert [e.delivery for e in second.pending()] == [GUID]
    second.mark([GUID], Status.SENT, at=1.0)
    assert second.pending() == [] and second.counts() == {"sent": 1}
    second.close()


def test_retention_keeps_what_is_pending(inbox: Inbox) -> None:
    day = 86400.0
    inbox.add(Entry("old-sent", "issues.labeled", "acme/api#1", received=0.0, event={"id": "x"}))
    inbox.mark(["old-sent"], Status.SENT, at=1.0)
    inbox.add(Entry("old-pending", "issues.labeled", "acme/api#2", received=0.0, event={"id": "y"}))
    inbox.add(Entry("recent", "ping", "acme/api", received=9 * day, event=None), status=Status.IGNORED)
    assert inbox.prune(now=9 * day) == 1
    assert (inbox.status("old-sent"), inbox.status("old-pending"), inbox.status("recent")) == (
        None, Status.PENDING, Status.IGNORED,
    )  # fmt: skip


# --------------------------------------------------------------------------- config and CLI


def test_webhook_config_defaults_env_secret_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "k3sc.yaml"
    path.write_text("webhook: {port: 9000}\n")
    loaded = k3sc_config.load(path, environ={"K3SC_WEBHOOK_SECRET": "s3cret"})
    hook = loaded.config.webhook
    assert (hook.host, hook.port, hook.path) == ("127.0.0.1", 9000, "/github")
    assert hook.secret is not None and hook.secret.get_secret_value() == "s3cret"
    assert loaded.source_of("webhook.secret") == "env:K3SC_WEBHOOK_SECRET"
    assert k3sc_config.load(tmp_path / "missing.yaml", environ={}).config.webhook.secret is None

    path.write_text("webhook: {port: 70000, secret: hunter2hunter2}\n")
    with pytest.raises(ConfigError) as caught:
        k3sc_config.load(path, environ={"K3SC_WEBHOOK_SECRET": "s3cret"})
    assert caught.value.key == "webhook.port" and str(path) in str(caught.value)
    assert "environment" not in str(caught.value)
    path.write_text("webhook: {secret: ['hunter2hunter2']}\n")
    with pytest.raises(ConfigError) as caught:
        k3sc_config.load(path, environ={})
    assert caught.value.key == "webhook.secret" and "hunter2" not in str(caught.value)


def test_k3sc_webhook_exits_2_on_a_bad_port_in_the_config(isolated_env: Path) -> None:
    (isolated_env / "k3sc.yaml").write_text("webhook: {port: 0}\n")
    invoke(["webhook"], code=2, contains=["error:", "webhook.port"])


def test_k3sc_webhook_without_a_prefect_server_says_so(isolated_env: Path) -> None:
    invoke(["webhook"], code=2, contains=["error:", "no Prefect server known", "PREFECT_API_URL"],
           env={"PREFECT_API_URL": None})  # fmt: skip


def test_k3sc_webhook_on_a_taken_port_exits_1(isolated_env: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        invoke(["webhook", "--port", str(port)], code=1, contains=["error:", f"127.0.0.1:{port}"],
               env={"PREFECT_API_URL": "http://127.0.0.1:9/api", "K3SC_WEBHOOK_SECRET": "s3cret"})  # fmt: skip


# --------------------------------------------------------------------------- the trigger


LOOKS = [
    ("issues", issue_payload()),
    ("issues", issue_payload("unlabeled", "waiting")),
    ("issues", issue_payload("reopened", None)),
    (
        "pull_request",
        {"action": "closed", "repository": {"full_name": "acme/api"}, "pull_request": {"number": 9}},
    ),
    ("ping", {"zen": "x", "repository": {"full_name": "acme/api"}}),
    ("ping", {"zen": "x", "organization": {"login": "acme"}}),
]


def test_every_event_the_receiver_emits_matches_the_dispatch_trigger() -> None:
    """Checked with Prefect's own matching code against the trigger in prefect.yaml."""
    from datetime import UTC, datetime

    import yaml
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    from k3sc.orchestration import deploy

    spec = yaml.safe_load(deploy.prefect_yaml().read_text())
    dispatch = next(d for d in spec["deployments"] if d["name"] == "k3sc-dispatch")
    hooks = [t for t in dispatch["triggers"] if any(e.startswith("github.") for e in t["expect"])]
    assert len(hooks) == 1 and hooks[0]["parameters"]["force"] is True
    wanted = {k: v for k, v in hooks[0].items() if k in ("expect", "match", "match_related")}
    trigger = EventTrigger(**wanted, posture="Reactive")
    for name, payload in LOOKS:
        assert deliveries.triage(name, payload, REPOS).look
        event = events.from_github(name, payload, GUID)
        assert event is not None
        assert trigger.covers(ReceivedEvent(**event, received=datetime.now(UTC))), (name, payload)
    # What Prefect itself emits never starts a scan through this trigger.
    own = {"id": GUID, "occurred": datetime.now(UTC).isoformat(), "event": "prefect.flow-run.Completed",
           "resource": {"prefect.resource.id": "prefect.flow-run.x"}}  # fmt: skip
    assert not trigger.covers(ReceivedEvent(**own, received=datetime.now(UTC)))
