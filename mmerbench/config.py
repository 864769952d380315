"""Method configs as data: `<package>/configs/<method>.yaml` → one resolved, hashable dict.

A config file::

    version: 1
    paper: "Title (Venue year)"
    defaults: {lr: 1.0e-3, epochs: 20, ...}      # every key a run may set
    datasets: {mosei-aligned: {lr: 1.0e-4}}      # the paper's values per dataset
    presets: {small: {hidden: 32}}               # named bundles (--preset small)

Resolution order: defaults ← datasets[<real dataset>] ← presets[<preset>] ←
``--epochs`` ← ``--set key=value``. A synthetic twin takes its real set's
entry. Only keys present in `defaults` may be set, so a typo is an error.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from importlib import resources
from typing import Any

import yaml

from mmerbench.errors import MmerbenchError

CONFIG_VERSION = 1


def _config_text(package: str, method: str) -> str | None:
    try:
        f = resources.files(package).joinpath("configs", f"{method}.yaml")
        return f.read_text() if f.is_file() else None
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def load_config_file(method: str, package: str) -> dict[str, Any]:
    text = _config_text(package, method)
    if text is None:
        return {"version": CONFIG_VERSION, "defaults": {}, "datasets": {}, "presets": {}}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise MmerbenchError(f"Config file for {method!r} is not valid YAML: {e}") from None
    for key in ("defaults", "datasets", "presets"):
        data[key] = _numbers(data.get(key) or {})
        if not isinstance(data[key], dict):
            raise MmerbenchError(f"Config file for {method!r}: `{key}` must be a mapping.")
    return data


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` as a string; read such strings as the numbers they are."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML (`3`, `1e-4`, `[text, audio]`, `true`)."""
    if "=" not in item:
        raise MmerbenchError(f"Expected `--set key=value`, but got {item!r}.")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, _numbers(value)


def format_override(value: Any) -> str:
    """The text of a ``--set key=<text>`` that :func:`parse_override` reads back as ``value``.

    Strings YAML would read as something else (``"true"``, ``"1e-5"``, ``"null"``)
    or that hold YAML syntax are written as JSON strings, which YAML reads back verbatim.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_override(x) for x in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        plain = value and not any(c in value for c in ",[]{}#&*!|>'\"%@`:") and value.strip() == value
        return value if plain and parse_override(f"k={value}")[1] == value else json.dumps(value)
    return str(value)


def resolve(
    method: str,
    package: str,
    *,
    dataset: str,
    base_dataset: str,
    preset: str | None = None,
    epochs: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The resolved config of one run (without its seed).

    `base` holds settings every method has (the decision threshold, from the
    dataset spec); the file's defaults override them.
    """
    data = load_config_file(method, package)
    params: dict[str, Any] = dict(base or {})
    params.update(data["defaults"])
    params.update(data["datasets"].get(base_dataset) or {})
    if preset is not None:
        if preset not in data["presets"]:
            known = ", ".join(sorted(data["presets"])) or "none"
            raise MmerbenchError(f"Unknown preset {preset!r} for {method!r}. Known: {known}.")
        params.update(data["presets"][preset] or {})
    if epochs is not None:
        _check_key(method, "epochs", params)
        params["epochs"] = int(epochs)
    for item in overrides:
        key, value = parse_override(item)
        _check_key(method, key, params)
        params[key] = check_value(method, key, value, _seen_values(data, key, base))
    cfg = {
        "method": method,
        "dataset": dataset,
        "preset": preset,
        "params": params,
    }
    if extra:
        cfg.update(extra)
    return cfg


def _check_key(method: str, key: str, params: dict[str, Any]) -> None:
    if key not in params:
        close = difflib.get_close_matches(key, list(params), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MmerbenchError(
            f"{method!r} has no setting {key!r}.{hint} Settings: {', '.join(sorted(params))}."
        )


def _seen_values(data: dict[str, Any], key: str, base: dict[str, Any] | None) -> list[Any]:
    """Every value the config file (defaults, dataset entries, presets) and `base` give `key`."""
    seen = [(base or {})[key]] if key in (base or {}) else []
    if key in data["defaults"]:
        seen.append(data["defaults"][key])
    for section in ("datasets", "presets"):
        seen += [entry[key] for entry in data[section].values() if isinstance(entry, dict) and key in entry]
    return seen


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    return "null" if value is None else "other"


_KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a word",
               "list": "a list such as [a, b]"}


def check_value(method: str, key: str, value: Any, seen: list[Any]) -> Any:
    """`value` of a ``--set key=value``, checked against the kind of value the config gives `key`.

    The kind is read from the values the file gives the key (an integer default takes
    integers, a float default takes any finite number, and so on); ``null`` always
    passes here (a method may read it as "off") and is left to the method. A key the file only ever sets to ``null`` takes
    any value: the method checks it. ``--set lr=1`` becomes ``lr=1.0`` where the setting
    is a float: one config, one spelling.
    """
    kinds = {_kind(v) for v in seen}
    nullable = "null" in kinds
    kinds.discard("null")
    if "float" in kinds:
        kinds.discard("int")  # 0 and 0.3 in one file: a float setting
    got = _kind(value)
    shown = format_override(value)
    if got == "null":  # an "off" many methods read (MISA's patience); one that refuses it fails its pre-flight build
        return None
    if not kinds:
        return value
    ok = got in kinds or ("float" in kinds and got == "int")
    if ok and got in ("int", "float") and not math.isfinite(value):
        ok = False
    if ok and got == "list":
        examples = [x for v in seen if isinstance(v, (list, tuple)) for x in v]
        if examples and all(_kind(x) in ("int", "float") for x in examples):
            ok = all(_kind(x) in ("int", "float") and math.isfinite(x) for x in value)
    if not ok:
        want = " or ".join(_KIND_WORDS.get(k, k) for k in sorted(kinds)) + (" or null" if nullable else "")
        example = next((v for v in seen if v is not None), None)
        raise MmerbenchError(f"`--set {key}={shown}`: {method!r} takes {want} for {key!r} "
                             f"(its default is {format_override(example)}).")
    if "float" in kinds and got == "int":
        return float(value)
    return value


def config_hash(cfg: dict[str, Any]) -> str:
    """A short stable hash of what the run does: it names the run folder.

    The preset's name is left out, since its values are already in ``params``: a
    preset that changes nothing (or the same values set by hand) is the same run.
    """
    what = {k: v for k, v in cfg.items() if k != "preset"}
    blob = json.dumps(what, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]
