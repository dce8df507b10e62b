"""The cache's lease table on a real SQLite file: who may call the judge for an item, and when a lease
left by someone else stops counting."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from iopo_eval.judges.cache import CachedJudgement, JudgeCache, new_lease_owner, owner_alive


def record(key: str) -> CachedJudgement:
    return CachedJudgement(
        key=key,
        judge_identity="id",
        judge_name="j",
        judge_model="m",
        prompt_version="v",
        raw="{}",
        scores=[10.0],
        reasons=["ok"],
        overall=10.0,
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0.0,
        latency_s=0.0,
        attempts=1,
        truncated={},
        created_at=time.time(),
    )


def dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid is free
    return f"{socket.gethostname()}/{proc.pid}/dead"


def test_claim_states(tmp_path: Path) -> None:
    me, other = new_lease_owner(), f"{socket.gethostname()}/1/init"  # pid 1 is alive
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        assert cache.claim("a", me, 60) == ("claimed", None)
        assert cache.claim("a", me, 60) == ("claimed", None)  # one's own lease is renewed
        assert cache.claim("a", other, 60) == ("busy", None)
        assert cache.held_elsewhere(["a", "b"], other) == {"a"} and cache.held_elsewhere(["a"], me) == set()
        cache.put(record("a"))  # storing the answer ends the lease
        state, found = cache.claim("a", other, 60)
        assert state == "done" and found is not None and found.scores == [10.0]
        assert cache.leases() == []


def test_expired_and_dead_owners_do_not_block(tmp_path: Path) -> None:
    me = new_lease_owner()
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        cache.claim("expired", "other-host.example/42/x", ttl_s=0.05)
        cache.claim("dead", dead_owner(), ttl_s=600)
        cache.claim("live", "other-host.example/42/x", ttl_s=600)
        time.sleep(0.1)
        assert cache.claim("expired", me, 60)[0] == "claimed"
        assert cache.claim("dead", me, 60)[0] == "claimed"
        assert cache.claim("live", me, 60)[0] == "busy"


def test_renew_and_release(tmp_path: Path) -> None:
    me, other = new_lease_owner(), "other-host.example/7/y"
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        cache.claim("a", me, ttl_s=0.05)
        cache.claim("b", me, ttl_s=0.05)
        cache.renew(me, ttl_s=600)
        time.sleep(0.1)
        assert cache.claim("a", other, 60)[0] == "busy"  # renewed: still held
        cache.release("a", me)
        assert cache.claim("a", other, 60)[0] == "claimed"
        cache.release(None, me)
        assert [key for key, *_ in cache.leases()] == ["a"]


def test_owner_liveness() -> None:
    assert owner_alive(new_lease_owner())
    assert not owner_alive(dead_owner())
    assert owner_alive("some-other-host/1/x")  # not checkable from here: alive until the lease expires
