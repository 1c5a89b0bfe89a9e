"""Write the event contract for partners: one JSON Schema per event type, and an AsyncAPI document.

    python -m schemas.export           # rewrite schemas/json/*.json and schemas/asyncapi.json
    python -m schemas.export --check   # exit 1 when the committed files are stale or a change breaks consumers

The AsyncAPI document comes from FastStream's own generator over one publisher per event type, so the
document and the code cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from schemas.catalog import TOPIC_OF
from schemas.compatibility import breaking_changes

HERE = Path(__file__).parent
JSON_DIR = HERE / "json"
ASYNCAPI_FILE = HERE / "asyncapi.json"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of every event type in the catalog."""
    return {f"{model.type}.json": model.model_json_schema() for model in TOPIC_OF}


def asyncapi_document() -> dict[str, Any]:
    broker = KafkaBroker("kafka:9092", description="The matching centre's event backbone (Apache Kafka).")
    for model, topic in TOPIC_OF.items():
        broker.publisher(topic, schema=model, title=f"{topic}:{model.type}", description=model.__doc__,
                         include_in_schema=True)
    specification = AsyncAPI(
        broker,
        title="Matching centre events",
        version="1.0.0",
        description=(
            "Every event travels as a Kafka record whose value is the JSON below and whose headers carry the "
            "CloudEvents 1.0 attributes (ce_id, ce_source, ce_type, ce_specversion, ce_time, ce_subject) and "
            "a W3C traceparent."
        ),
    ).to_specification()
    return json.loads(specification.to_json())  # type: ignore[no-any-return]


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for stale in JSON_DIR.glob("*.json"):
        if stale.name not in json_schemas():
            stale.unlink()
    for name, schema in json_schemas().items():
        (JSON_DIR / name).write_text(render(schema))
    ASYNCAPI_FILE.write_text(render(asyncapi_document()))


def check() -> list[str]:
    """Problems with the committed contract: breaking changes first, then files out of date."""
    problems: list[str] = []
    current = json_schemas()
    for path in sorted(JSON_DIR.glob("*.json")):
        committed = json.loads(path.read_text())
        if path.name not in current:
            problems.append(f"{path.stem}: event type removed; its consumers would wait forever")
            continue
        problems += [f"{path.stem}: {line}" for line in breaking_changes(committed, current[path.name])]
    for name, schema in current.items():
        path = JSON_DIR / name
        if not path.exists() or path.read_text() != render(schema):
            problems.append(f"{name}: committed schema is out of date (run: python -m schemas.export)")
    if not ASYNCAPI_FILE.exists() or ASYNCAPI_FILE.read_text() != render(asyncapi_document()):
        problems.append("asyncapi.json is out of date (run: python -m schemas.export)")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="check the committed contract instead of writing it")
    if parser.parse_args().check:
        problems = check()
        for problem in problems:
            print(problem)
        sys.exit(1 if problems else 0)
    write()
    print(f"wrote {len(json_schemas())} JSON Schemas to {JSON_DIR.name}/ and {ASYNCAPI_FILE.name}")


if __name__ == "__main__":
    main()
