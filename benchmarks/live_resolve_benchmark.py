"""Re-solves in the running centre: how soon after a capacity update, how many for a burst, how much memory.

The solver benchmark (``matching_benchmark.py``) times solves in one process. This one times what an
operator sees: the whole centre runs as on ``./centre up`` (the real broker, PostgreSQL, the five services
as processes, the service's own settings), one pool is filled through the public HTTP APIs, and then

1. ``--updates`` single capacity updates, one at a time (a host loses or regains a place): the time from
   the update's HTTP call until the pool is solved again with the update in it, i.e. until matching has
   applied the new capacity version, the pool is no longer marked dirty, and the end of the last run that
   started after the call (its ``started_at + duration_s``); plus each run's own solve time;
2. a burst of ``--burst`` capacity updates sent as fast as intake takes them (20 at a time): how many
   solver runs the pool got from the burst's first update until it was clean again;
3. the peak resident memory of the matching process (``VmHWM``).

    .venv/bin/python benchmarks/live_resolve_benchmark.py                 # the surge's pool size, 750 x 75
    .venv/bin/python benchmarks/live_resolve_benchmark.py --cases 200 --hosts 20 --updates 5 --burst 200

Timings include the coalescing (a pool is solved once its events pause for ``MATCHING_COALESCE_QUIET_S``,
0.2 s, or at most ``MATCHING_COALESCE_WINDOW_S``, 1 s, after it became dirty) and the trip through intake's
outbox and the broker. The pool is left to settle (no pending work) before the updates start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg
import httpx

from deploy.local import synthetic
from deploy.local.stack import LOCAL_TUNING, LocalStack, throwaway_database_name
from services.matching.resolver import MatchingSettings
from services.runtime.access import Role
from services.runtime.settings import ServiceSettings
from services.runtime.tokens import TokenAuthority

T = TypeVar("T")
POOL = synthetic.pools(4)[1]  # a municipal pool: the surge's scarcest, with the biggest hosts


async def until(check: Callable[[], Awaitable[T | None]], what: str, within: float = 300.0) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.02)
    raise TimeoutError(f"gave up after {within:.0f} s waiting for {what}")


@dataclass
class Host:
    host_id: str
    organisation_id: str
    capacity: dict[str, Any]
    version: int = 1


class Bench:
    def __init__(self, stack: LocalStack, seed: int) -> None:
        self.urls = stack.service_urls()
        self.stack = stack
        self.rng = random.Random(seed)
        self.http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=40))
        self.authority = TokenAuthority.from_settings(ServiceSettings())
        self.hosts: list[Host] = []
        self.database: asyncpg.Connection

    def token(self, role: Role, subject: str, organisation_id: str | None = None) -> dict[str, str]:
        token = self.authority.issue(subject, role, organisation_id=organisation_id, lifetime=timedelta(hours=2))
        return {"Authorization": f"Bearer {token}"}

    async def fill_pool(self, cases: int, hosts: int) -> None:
        slots = asyncio.Semaphore(20)
        caseworker = self.token("caseworker", "caseworker-1")

        async def host(index: int) -> None:
            body = synthetic.host_registration(self.rng, POOL, index)
            async with slots:
                response = await self.http.post(f"{self.urls['intake']}/hosts", json=body,
                                                headers=self.token("partner", "bench", body["organisation_id"]))
            response.raise_for_status()
            self.hosts.append(Host(response.json()["id"], body["organisation_id"], body["profile"]["capacity"]))

        async def case(index: int) -> None:
            body = synthetic.case_registration(self.rng, POOL, index)
            async with slots:
                response = await self.http.post(f"{self.urls['intake']}/cases", json=body, headers=caseworker)
                response.raise_for_status()
                case_id = response.json()["id"]
                consent = {"purpose": "matching", "obtained": {"information_language": body["language"],
                                                               "obtained_on": date.today().isoformat()}}

                async def recorded() -> bool:
                    answer = await self.http.post(f"{self.urls['consent']}/cases/{case_id}/consents", json=consent,
                                                  headers=caseworker)
                    if answer.status_code == 404:
                        return False  # the registration is still on its way to the consent service
                    answer.raise_for_status()
                    return True

                await until(recorded, f"consent service to know {case_id}", within=60)

        await asyncio.gather(*(host(i) for i in range(hosts)))
        self.hosts.sort(key=lambda h: h.host_id)
        await asyncio.gather(*(case(i) for i in range(cases)))

    async def settled(self) -> bool:
        """Matching has every host's latest capacity and every case, and nothing waits to be solved."""
        row = await self.database.fetchrow(
            "SELECT (SELECT count(*) FROM matching.dirty_pools WHERE pool_id = $1) AS dirty,"
            " (SELECT coalesce(jsonb_object_agg(host_id, capacity_version), '{}') FROM matching.hosts"
            "  WHERE pool_id = $1) AS versions,"
            " (SELECT count(*) FROM matching.solver_runs WHERE pool_id = $1) AS runs", POOL.pool_id)
        assert row is not None
        versions = json.loads(row["versions"])
        applied = all(versions.get(h.host_id) == h.version for h in self.hosts)
        return applied and row["dirty"] == 0 and row["runs"] > 0

    async def runs_since(self, since_epoch: float) -> list[asyncpg.Record]:
        return await self.database.fetch(
            "SELECT extract(epoch FROM started_at) AS started, duration_s, parameters->>'scope' AS scope,"
            " proposals, withdrawals FROM matching.solver_runs"
            " WHERE pool_id = $1 AND started_at >= to_timestamp($2) ORDER BY started_at", POOL.pool_id, since_epoch)

    async def update_capacity(self, host: Host) -> None:
        change = -1 if host.capacity["people"] > 1 and self.rng.random() < 0.5 else 1
        capacity = dict(host.capacity, people=host.capacity["people"] + change, beds=host.capacity["beds"] + change)
        host.version += 1
        host.capacity = capacity
        response = await self.http.put(f"{self.urls['intake']}/hosts/{host.host_id}/capacity",
                                       json={"version": host.version, "capacity": capacity},
                                       headers=self.token("partner", "bench", host.organisation_id))
        response.raise_for_status()

    async def one_update(self) -> tuple[float, asyncpg.Record]:
        """(seconds from the call until the pool is solved with it, that last run)."""
        called = time.time()
        await self.update_capacity(self.rng.choice(self.hosts))
        await until(self.settled, "the pool to be solved after one update")
        runs = await self.runs_since(called)
        if not runs:
            raise RuntimeError("the pool settled without a run after a capacity update")
        last = runs[-1]
        return float(last["started"]) + last["duration_s"] - called, last

    async def burst(self, events: int) -> tuple[float, float, int]:
        """(seconds to send, seconds until clean, solver runs) for ``events`` capacity updates."""
        began = time.time()
        slots = asyncio.Semaphore(20)
        locks = {h.host_id: asyncio.Lock() for h in self.hosts}  # versions of one host go out in order

        async def one() -> None:
            host = self.rng.choice(self.hosts)
            async with slots, locks[host.host_id]:
                await self.update_capacity(host)

        await asyncio.gather(*(one() for _ in range(events)))
        sent = time.time() - began
        await until(self.settled, "the pool to be solved after the burst", within=600)
        return sent, time.time() - began, len(await self.runs_since(began))

    def matching_peak_rss_mib(self) -> float | None:
        pid = self.stack.services.pid("matching")
        if pid is None:
            return None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


async def main(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        async with LocalStack(database_name=throwaway_database_name(), drop_database_on_exit=True,
                              state_dir=Path(state_dir), extra_env=LOCAL_TUNING) as stack:
            bench = Bench(stack, arguments.seed)
            bench.database = await asyncpg.connect(stack.database_url)
            try:
                filled = time.monotonic()
                await bench.fill_pool(arguments.cases, arguments.hosts)
                await until(bench.settled, "the filled pool to settle", within=600)
                print(f"pool {POOL.pool_id}: {arguments.cases} cases x {arguments.hosts} hosts registered,"
                      f" consented and solved in {time.monotonic() - filled:.1f} s", flush=True)
                latencies, solves = [], []
                for number in range(arguments.updates):
                    latency, run = await bench.one_update()
                    latencies.append(latency)
                    solves.append(run["duration_s"])
                    print(f"  update {number + 1:>3}: solved with it after {latency:5.2f} s (solve "
                          f"{run['duration_s']:.2f} s, scope {run['scope']}, {run['proposals']} proposals, "
                          f"{run['withdrawals']} withdrawals)", flush=True)
                sent, clean, runs = await bench.burst(arguments.burst)
                peak = bench.matching_peak_rss_mib()
            finally:
                await bench.database.close()
                await bench.http.aclose()
    settings = MatchingSettings()
    coalescing = (f"{settings.matching_coalesce_quiet_s:g} s quiet, "
                  f"{settings.matching_coalesce_window_s:g} s window")
    rows = [
        ("capacity update -> pool solved with it", f"median {statistics.median(latencies):.2f}, "
         f"p95 {p95(latencies):.2f}", f"n={len(latencies)}; includes the coalescing ({coalescing})"),
        ("solve time of those re-solves", f"median {statistics.median(solves):.2f}, p95 {p95(solves):.2f}",
         "the run's duration_s"),
        (f"burst of {arguments.burst} capacity updates", f"sent in {sent:.1f}, clean after {clean:.1f}",
         f"{runs} solver runs"),
        ("matching process peak memory", f"{peak:.0f} MiB" if peak is not None else "unknown", "VmHWM"),
    ]
    widths = [max(len(str(row[i])) for row in [("what", "seconds", "notes"), *rows]) for i in range(3)]
    for row in [("what", "seconds", "notes"), tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=750, help="cases in the pool (default: %(default)s)")
    parser.add_argument("--hosts", type=int, default=75, help="hosts in the pool (default: %(default)s)")
    parser.add_argument("--updates", type=int, default=60, help="single updates timed (default: %(default)s)")
    parser.add_argument("--burst", type=int, default=1000, help="updates in the burst (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main(parser.parse_args()))
