"""The whole centre on this machine.

``python -m deploy.local run`` starts it and plays a surge scenario to its summary;
``python -m deploy.local up`` starts it and keeps it running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from deploy.local.processes import ChildProcess
from deploy.local.stack import CENTRE_DATABASE, LocalStack
from deploy.local.surge import Surge, SurgeSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local",
        description="The matching centre on this machine: a Kafka-protocol broker, PostgreSQL and the services.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start broker, database and the five services; stop them with Ctrl-C")
    up.add_argument("--database", default=CENTRE_DATABASE,
                    help="name of the database to create afresh (default: %(default)s)")
    up.add_argument("--embedded-postgres", action="store_true",
                    help="ignore 127.0.0.1:5432 and use the embedded PostgreSQL under .centre/pgdata")
    up.set_defaults(handler=command_up)

    run = commands.add_parser("run", help="start the centre and play a surge scenario to its summary")
    defaults = SurgeSettings()
    run.add_argument("--cases", type=int, default=defaults.cases, help="households arriving (default: %(default)s)")
    run.add_argument("--hosts", type=int, default=defaults.hosts, help="hosts registered (default: %(default)s)")
    run.add_argument("--pools", type=int, default=defaults.pools, help="pools, program x region (default: %(default)s)")
    run.add_argument("--seconds", type=float, default=defaults.arrival_seconds,
                     help="how long the households keep arriving (default: %(default)s)")
    run.add_argument("--seed", type=int, default=defaults.seed,
                     help="seed of the synthetic surge (default: %(default)s)")
    run.add_argument("--embedded-postgres", action="store_true",
                     help="ignore 127.0.0.1:5432 and use the embedded PostgreSQL under .centre/pgdata")
    run.set_defaults(handler=command_run)

    arguments = parser.parse_args(argv)
    return int(arguments.handler(arguments))


def command_up(arguments: argparse.Namespace) -> int:
    stack = LocalStack(database_name=arguments.database,
                       force_embedded_postgres=True if arguments.embedded_postgres else None)
    return asyncio.run(run_until_stopped(stack))


def command_run(arguments: argparse.Namespace) -> int:
    settings = SurgeSettings(cases=arguments.cases, hosts=arguments.hosts, pools=arguments.pools,
                             arrival_seconds=arguments.seconds, seed=arguments.seed)
    stack = LocalStack(force_embedded_postgres=True if arguments.embedded_postgres else None)
    return asyncio.run(play_surge(stack, settings))


async def play_surge(stack: LocalStack, settings: SurgeSettings) -> int:
    """Start the stack, play the surge, print the summary; stop everything, also on Ctrl-C."""
    stop_on_signal(stack)
    try:
        async with stack:
            print_addresses(stack, keeps_running=False)
            surge = Surge(stack.service_urls(), stack.bootstrap_servers, settings)
            playing = asyncio.create_task(surge.play())
            dying = asyncio.create_task(first_part_to_exit(stack))
            try:
                done, _ = await asyncio.wait({playing, dying}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (playing, dying):
                    task.cancel()
            if dying in done:
                print(f"\n{dying.result().failure('stopped unexpectedly')}\n\nstopping the centre", flush=True)
                return 1
            summary = playing.result()
            print_summary(summary)
            return 0 if summary["audit chain verified"] else 1
    except asyncio.CancelledError:
        return 130


def print_summary(summary: dict[str, object]) -> None:
    width = max(len(name) for name in summary)
    print("\nsummary of the surge\n" + "\n".join(f"  {name:<{width}}  {value}" for name, value in summary.items())
          + "\n", flush=True)


async def run_until_stopped(stack: LocalStack) -> int:
    """Keep the stack up until Ctrl-C or SIGTERM (a clean exit) or until one of its parts dies (exit 1)."""
    stop_on_signal(stack)
    try:
        async with stack:
            print_addresses(stack)
            failed = await first_part_to_exit(stack)
            print(f"\n{failed.failure('stopped unexpectedly')}\n\nstopping the rest of the centre", flush=True)
            return 1
    except asyncio.CancelledError:
        return 0


def stop_on_signal(stack: LocalStack) -> None:
    """First Ctrl-C / SIGTERM: stop gracefully. A second one while stopping: kill every child at once.

    Without a SIGTERM handler the interpreter would die on the spot and leave the children (each in a
    process group of its own) running.
    """
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            print("\nstopping the centre (Ctrl-C again to kill it at once)", flush=True)
            main_task.cancel()
        else:
            stack.kill_everything_now()

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(number, on_signal)


def print_addresses(stack: LocalStack, *, keeps_running: bool = True) -> None:
    width = max(len(name) for name in [*stack.service_urls(), "database", "broker"])
    lines = [f"  {'broker':<{width}}  {stack.bootstrap_servers}", f"  {'database':<{width}}  {stack.database_url}"]
    lines += [f"  {name:<{width}}  {url}" for name, url in stack.service_urls().items()]
    title = "the matching centre is running; Ctrl-C stops it" if keeps_running else "the matching centre is up"
    print(f"\n{title}\n" + "\n".join(lines) + "\n", flush=True)


async def first_part_to_exit(stack: LocalStack) -> ChildProcess:
    watchers = [asyncio.create_task(stack.services.wait_for_any_exit())]
    if (broker := stack.broker_process) is not None:
        watchers.append(asyncio.create_task(watch(broker)))
    try:
        done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    finally:
        for watcher in watchers:
            watcher.cancel()


async def watch(process: ChildProcess) -> ChildProcess:
    await process.wait()
    return process


if __name__ == "__main__":
    sys.exit(main())
