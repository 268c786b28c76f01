"""The settings that make several Prefect server processes act as one (`stack.RedisBus`).

Every name must be one the installed Prefect and prefect-redis actually read: a misspelt or
renamed setting is silently ignored, and a scaled-out server then keeps its events, leases or
Docket work in its own memory, which only shows as automations that never fire.
"""

from __future__ import annotations

import importlib

import pytest

from k3sc.orchestration.stack import RedisBus


def test_every_redis_setting_is_one_prefect_and_prefect_redis_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import Settings
    from prefect_redis.cleanup_queue import RedisWorkerCleanupQueueSettings
    from prefect_redis.client import RedisMessagingSettings

    bus = RedisBus(host="redis.internal", port=6380, db=7)
    for name, value in bus.settings().items():
        monkeypatch.setenv(name, value)

    server = Settings().server
    read = {
        server.events.messaging_broker,
        server.events.messaging_cache,
        server.events.causal_ordering,
        server.concurrency.lease_storage,
        server.worker_channel.cleanup_queue_storage,
    }
    assert read == {
        "prefect_redis.messaging",
        "prefect_redis.ordering",
        "prefect_redis.lease_storage",
        "prefect_redis.cleanup_queue",
    }
    for module in read:  # each names a module that is there to load
        importlib.import_module(module)
    assert server.docket.url == "redis://redis.internal:6380/7"
    for redis_settings in (RedisMessagingSettings(), RedisWorkerCleanupQueueSettings()):
        assert (redis_settings.host, redis_settings.port, redis_settings.db) == ("redis.internal", 6380, 7)
