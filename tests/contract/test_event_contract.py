"""The committed event contract is current, and the compatibility check catches what breaks consumers."""

from __future__ import annotations

import re
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from schemas import export
from schemas.catalog import EVENT_TYPES, TOPIC_OF
from schemas.compatibility import breaking_changes
from schemas.events import HostProfile
from schemas.topics import PARTITIONS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Before(Strict):
    case_id: str
    size: int
    urgency: Literal["urgent", "normal"] = "normal"
    note: str | None = None


def schema(**changes: object) -> dict:
    """The JSON Schema of a variant of ``Before``: each change replaces a field's type (None drops it)."""
    fields: dict[str, object] = {
        name: (field.annotation, field.default if not field.is_required() else ...)
        for name, field in Before.model_fields.items()
    }
    for name, annotation in changes.items():
        if annotation is None:
            fields.pop(name)
        else:
            fields[name] = (annotation, fields[name][1] if name in fields else None)
    return create_model("After", __config__=ConfigDict(extra="forbid"), **fields).model_json_schema()  # type: ignore[call-overload]


def test_the_committed_contract_is_current_and_compatible() -> None:
    assert export.check() == []


def test_every_event_type_is_versioned_and_has_a_topic_that_exists() -> None:
    for event_type, model in EVENT_TYPES.items():
        assert re.fullmatch(r"v[1-9][0-9]*", event_type.rsplit(".", 1)[-1]), event_type
        assert TOPIC_OF[model] in PARTITIONS


def test_an_unchanged_schema_breaks_nothing() -> None:
    assert breaking_changes(Before.model_json_schema(), Before.model_json_schema()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"extra_field": str | None}, "extra_field: new property"),
        ({"size": None}, "size: required property removed"),
        ({"size": int | None}, "now also accepts null"),
        ({"size": str}, "size: now also accepts string"),
        ({"urgency": Literal["urgent", "normal", "emergency"]}, "new value(s) ['emergency']"),
    ],
)
def test_changes_that_break_an_existing_consumer_are_named(change: dict, expected: str) -> None:
    problems = breaking_changes(Before.model_json_schema(), schema(**change))
    assert any(expected in problem for problem in problems), problems


def test_narrowing_what_producers_may_send_breaks_nothing() -> None:
    assert breaking_changes(Before.model_json_schema(), schema(urgency=Literal["urgent"])) == []
    assert breaking_changes(Before.model_json_schema(), schema(note=str)) == []


def test_a_removed_event_type_is_reported(tmp_path, monkeypatch) -> None:
    (tmp_path / "centre.gone.v1.json").write_text('{"type": "object"}')
    monkeypatch.setattr(export, "JSON_DIR", tmp_path)
    assert any("centre.gone.v1: event type removed" in problem for problem in export.check())


def test_free_text_with_a_nul_character_is_rejected_as_bad_input() -> None:
    """PostgreSQL stores no NUL in text or jsonb: the API fuzz test sent a host whose place was "\\x00"
    and got a server error. Free text (``Label``) refuses it at the contract, so the caller gets a 422."""
    host = {"host_type": "sponsor_group", "capacity": {"people": 4, "beds": 4}}
    with pytest.raises(ValidationError) as rejected:
        HostProfile.model_validate({**host, "place": "North\x00field"})
    assert [(e["loc"], e["type"]) for e in rejected.value.errors()] == [(("place",), "string_pattern_mismatch")]
    assert HostProfile.model_validate({**host, "place": " Northfield "}).place == "Northfield"

