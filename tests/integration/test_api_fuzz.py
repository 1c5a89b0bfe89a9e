"""A fuzz run against the OpenAPI documents of intake and consent: whatever comes in, no 5xx comes out.

Requests are drawn by hypothesis from each operation's own schema in the published OpenAPI document,
mostly valid so they reach the handlers and the database, with any part sometimes swapped for arbitrary
JSON so the validation paths are hit too. Path ids are either real (a case, host, consent or proposal
that exists) or arbitrary text. Every request carries an admin's token, so access control lets it through
to the code under test. (Schemathesis does the same from the same document; it is not a dependency of
the project, and hypothesis is.) ``FUZZ_EXAMPLES`` sets how many requests per operation (default 40).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.in_process import (
    Centre,
    authorization,
    in_process_centre,  # noqa: F401 - the ``centre`` fixture
)

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values a JSON Schema (the subset FastAPI publishes) accepts, sometimes swapped for arbitrary JSON."""
    return st.one_of(_valid(schema, components, depth), ANY_JSON) if depth else _valid(schema, components, depth)


def _valid(schema: dict[str, Any], components: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components, depth)
    if "anyOf" in schema:
        return st.one_of(*(from_schema(option, components, depth) for option in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties:
            values = from_schema(schema.get("additionalProperties") or {}, components, depth + 1)
            return st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=3)
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: from_schema(sub, components, depth + 1) for name, sub in properties.items() if name in required},
            optional={name: from_schema(sub, components, depth + 1)
                      for name, sub in properties.items() if name not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1),
                        min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "string":
        if schema.get("format") == "date":
            return st.dates().map(lambda day: day.isoformat())
        if schema.get("format") == "email":
            return st.emails()
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda text: schema.get("minLength", 0) <= len(text) <= schema.get("maxLength", 10_000))
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40))
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False,
                         allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY_JSON


OPERATIONS = [
    ("intake", "POST", "/cases"), ("intake", "GET", "/cases/{case_id}"),
    ("intake", "PUT", "/cases/{case_id}/profile"), ("intake", "POST", "/cases/{case_id}/withdrawal"),
    ("intake", "GET", "/cases/{case_id}/identity"), ("intake", "GET", "/hosts/{host_id}"),
    ("intake", "POST", "/cases/{case_id}/erasure"), ("intake", "POST", "/hosts"),
    ("intake", "PUT", "/hosts/{host_id}/capacity"), ("intake", "PUT", "/hosts/{host_id}/profile"),
    ("consent", "POST", "/cases/{case_id}/consents"), ("consent", "GET", "/cases/{case_id}/consents"),
    ("consent", "POST", "/consents/{consent_id}/withdrawal"), ("consent", "GET", "/proposals"),
    ("consent", "POST", "/proposals/{proposal_id}/review"), ("consent", "POST", "/proposals/{proposal_id}/decision"),
    ("consent", "POST", "/proposals/{proposal_id}/responses"),
]
_known_ids: dict[str, list[str]] = {}


async def known_ids(centre: Centre) -> dict[str, list[str]]:
    """Real ids for the path parameters, made once per module: fuzzing only unknown ids would stop at 404."""
    if not _known_ids:
        case_id = await centre.case()
        consents = await centre.as_admin(centre.consent, "GET", f"/cases/{case_id}/consents")
        identified = await centre.as_admin(centre.intake, "POST", "/cases", {
            "organisation_id": "org-fuzz-desk", "pool_id": "pool-fuzz", "identity": {"full_name": "Fuzz Person"},
            "profile": {"members": [{"age_band": "30-49", "sex": "female", "relationship": "applicant"}]}})
        _known_ids.update(case_id=[case_id, await centre.case(), identified["id"]], host_id=[await centre.host()],
                          consent_id=[row["consent_id"] for row in consents],
                          proposal_id=[await centre.proposal("proposed"), await centre.proposal("approved")])
    return _known_ids


async def test_the_fuzz_run_covers_every_published_operation(centre: Centre) -> None:
    published = set()
    for service, client in (("intake", centre.intake), ("consent", centre.consent)):
        paths = (await client.get("/openapi.json")).json()["paths"]
        published |= {(service, method.upper(), path) for path, operations in paths.items() if path != "/health"
                      for method in operations}
    assert published == set(OPERATIONS)


# A quick run by default; FUZZ_EXAMPLES=500 makes a deeper one.
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
@pytest.mark.parametrize("service, method, path", OPERATIONS, ids=lambda part: str(part))
async def test_no_request_gets_a_server_error(centre: Centre, service: str, method: str, path: str,
                                              data: st.DataObject) -> None:
    client = centre.intake if service == "intake" else centre.consent
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][path][method.lower()]
    components = document["components"]["schemas"]
    ids = await known_ids(centre)
    concrete, query = path, {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            value = data.draw(st.sampled_from(ids[name]) | st.text(min_size=1, max_size=30), label=name)
            concrete = concrete.replace("{" + name + "}", quote(value, safe=""))
        elif data.draw(st.booleans(), label=f"send {name}"):
            query[name] = data.draw(from_schema(parameter["schema"], components, 1), label=name)
    body = None
    if "requestBody" in operation:
        body = data.draw(from_schema(operation["requestBody"]["content"]["application/json"]["schema"], components),
                         label="body")
    response = await client.request(method, concrete, params=query, json=body, headers=authorization("admin"))
    assert response.status_code < 500, f"{method} {service}{concrete} {body!r}: {response.status_code} {response.text}"
