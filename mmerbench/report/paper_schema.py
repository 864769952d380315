"""The layout of a paper file (``leaderboards/papers/*.yaml``): :data:`SCHEMA`, a small JSON-schema-like
description checked in code by :func:`check_schema`, and :func:`validate`, which adds the rules a schema
cannot say (one value per metric column, ``ours`` xor ``not_implemented``, directions that agree with
:mod:`mmerbench.metrics`, known groups, columns and attributes)."""

from __future__ import annotations

import math
import re
from typing import Any

UNITS = ("percent", "fraction", "raw")  # percent: ours × 100; fraction, raw: ours as is

# ---------------------------------------------------------------- schema

_STR = {"type": "string"}
_STR_LIST = {"type": "array", "items": _STR}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_SET = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null", "array"],
                                                   "items": _SCALAR}}
_METRIC = {
    "type": "object",
    "required": ["name", "higher_is_better", "unit", "definition"],
    "properties": {
        "name": _STR,
        "key": {"type": ["string", "null"]},
        "higher_is_better": {"type": "boolean"},
        "unit": {"enum": list(UNITS)},
        "definition": _STR,  # how the published number was computed, and why `key` matches it
        "note": _STR,
    },
}
_GROUP = {
    "type": "object",
    "required": ["name", "metrics"],
    "properties": {
        "name": _STR,
        "dataset": _STR,
        "set": _SET,
        "metrics": {"type": "array", "minItems": 1, "items": _METRIC},
    },
}
_OURS = {
    "type": "object",
    "required": ["method"],
    "properties": {"method": _STR, "dataset": _STR, "preset": {"type": ["string", "null"]}, "set": _SET},
}
_OVERRIDE = {
    "type": "object",
    "properties": {"method": _STR, "dataset": _STR, "preset": {"type": ["string", "null"]}, "set": _SET,
                   "not_implemented": _STR},
}
_ROW = {
    "type": "object",
    "required": ["name", "values"],
    "properties": {
        "name": _STR,
        "section": _STR,
        "values": {"type": "array", "minItems": 1, "items": {"type": ["number", "null"]}},
        "attributes": {"type": "object", "additionalProperties": _STR},
        "ambiguous": {"type": "object", "additionalProperties": _STR},
        "note": _STR,
        "ours": _OURS,
        "not_implemented": _STR,
        "groups": {"type": "object", "additionalProperties": _OVERRIDE},
        "keys": {"type": "object", "additionalProperties": _STR},  # column id → metric key for this row
    },
}
_TABLE = {
    "type": "object",
    "required": ["id", "table", "caption", "setting", "groups", "rows"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$"},
        "table": _STR,
        "caption": _STR,
        "setting": _STR,
        "notes": _STR_LIST,
        "dataset": _STR,
        "set": _SET,
        "row_attributes": _STR_LIST,
        "groups": {"type": "array", "minItems": 1, "items": _GROUP},
        "rows": {"type": "array", "minItems": 1, "items": _ROW},
    },
}
#: The layout of one ``leaderboards/papers/<paper>.yaml``. Objects allow no keys
#: beyond ``properties`` unless they say ``additionalProperties``.
SCHEMA = {
    "type": "object",
    "required": ["version", "paper", "source", "tables"],
    "properties": {
        "version": {"enum": [1]},
        "paper": _STR,
        "source": _STR,
        "tables": {"type": "array", "minItems": 1, "items": _TABLE},
    },
}

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check_schema(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every place where ``value`` breaks ``schema`` (type, enum, pattern, required, unknown keys, items)."""
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: expected one of {schema['enum']}, got {value!r}"]
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            return [f"{where}: expected {' or '.join(types)}, got {type(value).__name__} {_clip(value)}"]
    if isinstance(value, str) and "pattern" in schema and not re.match(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing key {key!r}")
        extra = schema.get("additionalProperties")
        for key, v in value.items():
            if not isinstance(key, str):
                errors.append(f"{where}: key {key!r} is not a string")
            elif key in props:
                errors += check_schema(v, props[key], f"{where}.{key}")
            elif extra is not None:
                errors += check_schema(v, extra, f"{where}.{key}")
            else:
                errors.append(f"{where}: unknown key {key!r} (known: {', '.join(props)})")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: expected at least {schema['minItems']} item(s)")
        if "items" in schema:
            for i, v in enumerate(value):
                errors += check_schema(v, schema["items"], f"{where}[{i}]")
    return errors


def _clip(v: Any, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def validate(data: Any) -> list[str]:
    """Every problem with one parsed paper file: schema first, then the rules a schema cannot say."""
    from mmerbench.errors import UnknownNameError
    from mmerbench.metrics import metric_info

    errors = check_schema(data, SCHEMA, "$")
    if errors:
        return errors
    for ti, t in enumerate(data["tables"]):
        tw = f"table {t['id']}"
        group_names = [g["name"] for g in t["groups"]]
        if len(set(group_names)) != len(group_names):
            errors.append(f"{tw}: group names repeat: {group_names}")
        col_ids: list[str] = []
        col_dirs: dict[str, bool] = {}
        for g in t["groups"]:
            names = [m["name"] for m in g["metrics"]]
            if len(set(names)) != len(names):
                errors.append(f"{tw}: metric names repeat in group {g['name']!r}")
            for m in g["metrics"]:
                col_ids.append(f"{g['name']}/{m['name']}" if g["name"] else m["name"])
                col_dirs[col_ids[-1]] = m["higher_is_better"]
                if m.get("key"):
                    try:
                        info = metric_info(m["key"])
                    except UnknownNameError as e:
                        errors.append(f"{tw}: column {m['name']!r}: {e}")
                        continue
                    if info.higher_is_better != m["higher_is_better"]:
                        errors.append(f"{tw}: column {m['name']!r} says higher_is_better={m['higher_is_better']} "
                                      f"but mmerbench.metrics says {info.higher_is_better} for {m['key']!r}")
        attrs = set(t.get("row_attributes", []))
        for ri, r in enumerate(t["rows"]):
            rw = f"{tw} row {ri + 1} ({r['name']!r})"
            if len(r["values"]) != len(col_ids):
                errors.append(f"{rw}: {len(r['values'])} values for {len(col_ids)} columns")
            if ("ours" in r) == ("not_implemented" in r):
                errors.append(f"{rw}: give exactly one of `ours` and `not_implemented`")
            for k, key in r.get("keys", {}).items():
                if k not in col_ids:
                    errors.append(f"{rw}: keys names {k!r}, which is not a column ({', '.join(col_ids)})")
                    continue
                try:
                    info = metric_info(key)
                except UnknownNameError as e:
                    errors.append(f"{rw}: keys[{k!r}]: {e}")
                    continue
                if info.higher_is_better != col_dirs[k]:
                    errors.append(f"{rw}: keys[{k!r}] = {key!r} runs the other way from column {k!r}")
            for k in r.get("ambiguous", {}):
                if k != "row" and k not in col_ids:
                    errors.append(f"{rw}: ambiguous key {k!r} is not a column ({', '.join(col_ids)}) or 'row'")
            for k in r.get("attributes", {}):
                if k not in attrs:
                    errors.append(f"{rw}: attribute {k!r} is not in row_attributes {sorted(attrs)}")
            for gname, over in r.get("groups", {}).items():
                if gname not in group_names:
                    errors.append(f"{rw}: override for unknown group {gname!r}")
                elif "not_implemented" in over and len(over) > 1:
                    errors.append(f"{rw}: override for {gname!r} mixes not_implemented with a run")
                elif "not_implemented" not in over and "ours" not in r:
                    errors.append(f"{rw}: override for {gname!r} names a run but the row has no `ours`")
            if "ours" in r:
                for g in t["groups"]:
                    over = r.get("groups", {}).get(g["name"], {})
                    if "not_implemented" in over:
                        continue
                    ds = over.get("dataset") or r["ours"].get("dataset") or g.get("dataset") or t.get("dataset")
                    if not ds:
                        errors.append(f"{rw}: no dataset for group {g['name']!r} (set it on the table, group or row)")
    return errors
