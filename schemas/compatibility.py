"""Would a consumer built on the committed schema of an event still accept what the current one allows?

Events are strict (``additionalProperties: false``), so for an existing consumer a change breaks when
the new schema lets a producer send something the old one refused:

- a new property (the old consumer forbids unknown fields);
- a property that was required and is now optional or gone;
- a property whose type changed, or an enumeration with a new value;
- a whole event type that disappeared (its consumers would wait forever).

Making an optional property required, removing an enumeration value, or tightening a bound never breaks
an existing consumer. Anything that breaks is a new event version (``...v2``), never an edit.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def _resolve(schema: JSON, root: JSON) -> JSON:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def _variants(schema: JSON, root: JSON) -> list[JSON]:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return [variant for option in schema["anyOf"] for variant in _variants(option, root)]
    return [schema]


def _kind(schema: JSON) -> str:
    if "const" in schema:
        return f"const:{schema['const']!r}"
    if "enum" in schema:
        return "enum"
    return str(schema.get("type", "any"))


def breaking_changes(old: JSON, new: JSON, path: str = "", old_root: JSON | None = None,
                     new_root: JSON | None = None) -> list[str]:
    """Every way ``new`` breaks a consumer of ``old``, as readable lines naming the property path."""
    old_root = old_root or old
    new_root = new_root or new
    problems: list[str] = []
    old_variants = {_kind(v): v for v in _variants(old, old_root)}
    new_variants = {_kind(v): v for v in _variants(new, new_root)}
    where = path or "(event)"
    for kind in new_variants.keys() - old_variants.keys():
        if kind == "enum" or kind.startswith("const:"):
            continue  # compared as values below
        problems.append(f"{where}: now also accepts {kind}")
    old_values = {value for v in old_variants.values() for value in v.get("enum", [v["const"]] if "const" in v else [])}
    new_values = {value for v in new_variants.values() for value in v.get("enum", [v["const"]] if "const" in v else [])}
    if old_values and new_values - old_values:
        problems.append(f"{where}: new value(s) {sorted(map(str, new_values - old_values))}")
    for kind, old_variant in old_variants.items():
        new_variant = new_variants.get(kind)
        if new_variant is None:
            continue  # narrowing what a producer may send never breaks a consumer
        if kind == "object":
            problems += _object_changes(old_variant, new_variant, where, old_root, new_root)
        elif kind == "array" and "items" in old_variant and "items" in new_variant:
            problems += breaking_changes(old_variant["items"], new_variant["items"], f"{where}[]", old_root, new_root)
    return problems


def _object_changes(old: JSON, new: JSON, where: str, old_root: JSON, new_root: JSON) -> list[str]:
    problems: list[str] = []
    old_properties = old.get("properties", {})
    new_properties = new.get("properties", {})
    closed = old.get("additionalProperties") is False
    for name in new_properties.keys() - old_properties.keys():
        if closed:
            problems.append(f"{where}.{name}: new property, which existing consumers refuse")
    for name in old_properties.keys() - new_properties.keys():
        if name in old.get("required", []):
            problems.append(f"{where}.{name}: required property removed")
    for name in set(old.get("required", [])) - set(new.get("required", [])):
        if name in new_properties:
            problems.append(f"{where}.{name}: was required, now optional")
    for name in old_properties.keys() & new_properties.keys():
        problems += breaking_changes(old_properties[name], new_properties[name], f"{where}.{name}", old_root,
                                     new_root)
    if "additionalProperties" in old and isinstance(old["additionalProperties"], dict):
        problems += breaking_changes(old["additionalProperties"], new.get("additionalProperties", {}),
                                     f"{where}{{}}", old_root, new_root)
    return problems
