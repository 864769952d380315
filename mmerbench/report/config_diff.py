"""Which stored configs of a method come closest to a wanted one, and which settings differ.

A paper-table cell whose config has no run says "not run"; when the same method
has runs on the same dataset under other configs (a preset's default decision
rule instead of the paper's, say), this names them and the settings that
differ, so the user sees which `--set` is missing instead of guessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mmerbench import results

MAX_SHOWN = 4  # settings listed per config; the rest are counted


def _flat(cfg: dict[str, Any]) -> dict[str, Any]:
    """The settings that make up a config hash: the method's params and, for twins, the data setting."""
    out: dict[str, Any] = {}
    params = cfg.get("params")
    if isinstance(params, dict):
        out.update({str(k): v for k, v in params.items()})
    data = cfg.get("data")
    if isinstance(data, dict):
        out.update({f"data.{k}": v for k, v in data.items()})
    return out


def _stored_config(config_dir: Path) -> dict[str, Any] | None:
    """The resolved config of the first complete seed under ``config_dir`` (None: no complete seed, or unreadable)."""
    for seed_dir in sorted(config_dir.glob("seed-*")):
        if not results.is_complete(seed_dir):
            continue
        try:
            cfg = yaml.safe_load((seed_dir / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # an unreadable record is left out, not trusted
        if isinstance(cfg, dict):
            return cfg
    return None


def _show(v: Any) -> str:
    return "unset" if v is None else yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``key: stored → wanted`` for every setting that differs, in key order."""
    a, b = _flat(stored), _flat(wanted)
    return [f"{k} {_show(a.get(k))} (wanted {_show(b.get(k))})" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def other_configs(method_dir: Path, wanted: dict[str, Any], wanted_hash: str) -> str:
    """One sentence naming the method's other complete configs under ``method_dir`` nearest to ``wanted``
    and the settings in which they differ; "" when there are none."""
    found = []
    if method_dir.is_dir():
        for config_dir in sorted(p for p in method_dir.iterdir() if p.is_dir() and p.name != wanted_hash):
            cfg = _stored_config(config_dir)
            if cfg is not None:
                found.append((len(diff := differences(cfg, wanted)), config_dir.name, cfg.get("preset"), diff))
    if not found:
        return ""
    found.sort(key=lambda f: (f[0], f[1]))
    _, chash, preset, diff = found[0]
    shown = ", ".join(diff[:MAX_SHOWN]) + (f" and {len(diff) - MAX_SHOWN} more" if len(diff) > MAX_SHOWN else "")
    label = f"config {chash}" + (f" (preset {preset})" if isinstance(preset, str) else "")
    more = f"; {len(found) - 1} other config(s) differ more" if len(found) > 1 else ""
    if not diff:  # same settings, other hash: written before a change of the hashing
        return f"runs exist under {label} with the same settings but another hash{more}"
    return f"runs exist under {label}, which differs in: {shown}{more}"
