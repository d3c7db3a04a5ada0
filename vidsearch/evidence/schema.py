"""The published schema of a result set (``schemas/results.schema.json``) and a small validator for it.

The validator reads the schema file, so the published schema is what ``export`` enforces. It
knows the JSON Schema keywords that file uses (type, required, properties, items, anyOf,
minimum, maximum, pattern, local $ref); JSON numbers are finite, so NaN and infinities fail
``"type": "number"``.
"""
from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).parent.parent / "data" / "results.schema.json"
PUBLISHED = "schemas/results.schema.json"

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
}


@functools.cache
def results_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def schema_errors(value: Any, schema: dict | None = None, where: str = "", root: dict | None = None) -> list[str]:
    """Every way ``value`` breaks ``schema`` (default: the results schema), as ``"where: what"``."""
    root = root or schema or results_schema()
    schema = schema or root
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return schema_errors(value, node, where, root)
    at = where or "the result set"
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            return [f"{at}: {_show(value)} is not {' or '.join(types)}"]
    errors = _bounds(value, schema, at)
    if "anyOf" in schema and all(schema_errors(value, s, where, root) for s in schema["anyOf"]):
        errors.append(f"{at}: matches none of {len(schema['anyOf'])} allowed forms")
    if isinstance(value, dict):
        errors += [f"{at}: lacks {k!r}" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                errors += schema_errors(value[k], sub, f"{where}.{k}" if where else k, root)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]", root)
    return errors


def _bounds(value: Any, schema: dict, at: str) -> list[str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return [f"{at}: {_show(value)} is below {schema['minimum']}"]
        if "maximum" in schema and value > schema["maximum"]:
            return [f"{at}: {_show(value)} is above {schema['maximum']:g}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return [f"{at}: {_show(value)} is not of the form {schema.get('description') or schema['pattern']}"]
    return []


def _show(value: Any) -> str:
    text = json.dumps(value)  # NaN and Infinity as a JSON reader writes them
    return text if len(text) <= 40 else text[:37] + "..."
