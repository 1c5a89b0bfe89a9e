"""The auditor's command-line tool.

    python -m services.audit.cli verify [--public-key KEY.pem] [--checkpoints FILE] [--json]
    python -m services.audit.cli timeline CASE [--json]
    python -m services.audit.cli export [--from SEQ|DATE] [--to SEQ|DATE] DIR
    python -m services.audit.cli replay RUN [--json] [--solver CMD ...]

It reads the log directly from PostgreSQL (``DATABASE_URL``, like the services), in read-only
transactions, and needs nothing but SELECT on the audit schema (the ``audit_reader`` role). Exit status:
0 when all is well, 1 when verify finds the log broken (or a case or run is not in the log), 2 for a
usage error or a refused export, 3 for a run that cannot be replayed (recorded before runs carried their
watermark). ``replay`` exits 0 when the proposals are identical, 1 when they differ or the inputs could not
be rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from schemas import topics
from services.audit import store
from services.audit.checkpoint import SignedCheckpoint, load_public_key_pem
from services.audit.export import Bound, ExportRefused, export_period
from services.audit.replay import (
    OWN_TYPES,
    SOLVER_COMMAND,
    judge,
    recorded_run,
    render_verdict,
    replay_info,
    run_solver,
    watermark,
)
from services.audit.timeline import case_timeline, render_timeline
from services.audit.verification import verify_stored_log
from services.runtime.settings import ServiceSettings

SCHEMA = "audit"


async def connect(database_url: str) -> asyncpg.Connection:
    """A plain connection to the audit schema: the auditor's tool creates and migrates nothing."""
    return await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA,
                                                                 "application_name": "audit-cli"})


async def command_verify(connection: asyncpg.Connection, arguments: argparse.Namespace) -> int:
    pinned = [load_public_key_pem(path.read_bytes()) for path in arguments.public_key or ()]
    extra = [SignedCheckpoint.from_dict(entry) for path in arguments.checkpoints or ()
             for entry in json.loads(path.read_text())]
    verdict = await verify_stored_log(connection, pinned_keys=pinned, extra_checkpoints=extra)
    if arguments.json:
        print(json.dumps(verdict.to_dict(), indent=2))
        return 0 if verdict.ok else 1
    keys = ", ".join(verdict.key_ids) or "none"
    origin = "pinned with --public-key" if pinned else \
        "registered in the log itself: compare with the key id the centre published, or pass --public-key"
    if not verdict.ok:
        print(f"BAD: the first bad record is {verdict.where()}.")
        print(f"  {verdict.reason}")
        print(f"  {verdict.records_checked} records verified before it; checkpoint key(s): {keys}")
        return 1
    print(f"OK: {verdict.records_checked} records and {verdict.checkpoints_checked} checkpoints verified.")
    print(f"  checkpoint key(s): {keys} ({origin})")
    if extra:
        print(f"  including {len(extra)} checkpoint(s) you kept from before")
    if verdict.unsealed_records:
        print(f"  note: the last {verdict.unsealed_records} record(s) are not covered by a checkpoint yet: a "
              "rewrite of them with recomputed hashes would not show until the next seal")
    return 0


async def command_timeline(connection: asyncpg.Connection, arguments: argparse.Namespace) -> int:
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        records = await store.case_history(connection, arguments.case_id)
    entries = case_timeline(arguments.case_id, records)
    if arguments.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2, ensure_ascii=False))
    else:
        print(render_timeline(arguments.case_id, entries))
    return 0 if entries else 1


async def command_export(connection: asyncpg.Connection, arguments: argparse.Namespace) -> int:
    try:
        start = Bound.parse(arguments.start) if arguments.start else None
        end = Bound.parse(arguments.end) if arguments.end else None
        summary = await export_period(connection, arguments.directory, start, end)
    except (ExportRefused, FileExistsError) as refused:
        print(f"export refused: {refused}", file=sys.stderr)
        return 2
    manifest = summary.manifest
    print(f"exported records {manifest['first_seq']}..{manifest['last_seq']} ({manifest['record_count']} records) "
          f"and {summary.checkpoints} checkpoint(s) signed by key {summary.key_id} to {arguments.directory}")
    if summary.checkpoints_left_out:
        print(f"  {summary.checkpoints_left_out} checkpoint(s) signed by an earlier key were left out")
    print(f"check it offline with: python {Path(__file__).with_name('standalone_verifier.py').name} "
          f"{arguments.directory} --key-id {summary.key_id}")
    return 0


async def command_replay(connection: asyncpg.Connection, arguments: argparse.Namespace) -> int:
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        run = recorded_run(arguments.run_id, await store.records_of_run(connection, arguments.run_id))
        info = replay_info(run) if run is not None else None
        sources = missing = None
        if info is not None:
            positions = watermark(info)
            sources = await store.replay_sources(connection, positions, OWN_TYPES, topics.DEAD_LETTERS)
            recorded = await store.recorded_offsets(connection, [(topic, part) for topic, part, _ in positions])
            missing = [(topic, part, upto) for topic, part, upto in positions
                       if recorded.get((topic, part), -1) < upto]
    if run is None:
        print(f"no solver run {arguments.run_id} in the audit log", file=sys.stderr)
        return 1
    if not arguments.json:
        print(f"solver run {run.run_id} (record {run.seq}): pool {run.run.get('pool_id')}, "
              f"status {run.run.get('status')}, solver {run.run.get('solver_version')}, seed {run.run.get('seed')}, "
              f"inputs digest {run.run.get('inputs_digest')}")
        print(f"  recorded: {len(run.proposals)} proposal(s), {len(run.withdrawn)} withdrawal(s)")
    if info is None or sources is None:
        print(f"run {run.run_id} was recorded without a watermark (before runs carried one): its inputs cannot "
              "be told apart in the audit stream, so it cannot be replayed", file=sys.stderr)
        return 3
    if missing and not arguments.json:
        print(f"  note: the log holds no record yet at the watermark of {len(missing)} input partition(s) "
              f"(e.g. {missing[0][0]}/{missing[0][1]} up to offset {missing[0][2]}); if the digest differs, "
              "wait for the recorder and try again")
    code, report = await run_solver(arguments.solver or SOLVER_COMMAND, run.run_id, sources)
    verdict = judge(run, report) if report.get("outcome") == "solved" and code == 0 else None
    if arguments.json:
        print(json.dumps({"run_id": run.run_id, "report": report,
                          "verdict": verdict.to_dict() if verdict else None}, indent=2, default=str))
    else:
        print(render_verdict(run, report, verdict))
    if verdict is not None:
        return 0 if verdict.identical else 1
    return 3 if code == 3 else 1


COMMANDS = {"verify": command_verify, "timeline": command_timeline, "export": command_export,
            "replay": command_replay}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m services.audit.cli",
                                   description="Verify, read and export the matching centre's audit log.")
    root.add_argument("--database-url", help="PostgreSQL URL (default: DATABASE_URL, as the services read it)")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = commands.add_parser("verify", help="walk the chain and every checkpoint; name the first bad record")
    verify.add_argument("--public-key", type=Path, action="append",
                        help="the centre's published checkpoint key (PEM); repeat for rotated keys")
    verify.add_argument("--checkpoints", type=Path, action="append",
                        help="checkpoints you kept (JSON from GET /audit/checkpoints or an export)")
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")

    timeline = commands.add_parser("timeline", help="the history of one case, in order, readable by a person")
    timeline.add_argument("case_id", metavar="CASE")
    timeline.add_argument("--json", action="store_true", help="print the entries as JSON")

    export = commands.add_parser("export", help="write a period of the log for standalone_verifier.py")
    export.add_argument("--from", dest="start", metavar="SEQ|DATE", help="first seq, or the time from which")
    export.add_argument("--to", dest="end", metavar="SEQ|DATE", help="last seq, or the time before which")
    export.add_argument("directory", type=Path, metavar="DIR")

    replay = commands.add_parser("replay", help="rebuild a solver run's inputs from the log, solve again, compare")
    replay.add_argument("run_id", metavar="RUN")
    replay.add_argument("--json", action="store_true", help="print the solver's report and the verdict as JSON")
    replay.add_argument("--solver", nargs="+", metavar="ARG",
                        help="the solver's replay entry point (default: python -m services.matching.replay)")
    return root


async def run(arguments: argparse.Namespace) -> int:
    database_url = arguments.database_url or ServiceSettings(service_name=SCHEMA).database_url
    connection = await connect(database_url)
    try:
        return await COMMANDS[arguments.command](connection, arguments)
    finally:
        await connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the command, return the exit status."""
    return asyncio.run(run(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
