"""`mmerbench config show`: the config a run would use, resolved exactly as `mmerbench run` resolves it
(``runner.prepare``: defaults ← dataset entry ← preset ← --epochs ← --set), with its hash and folder."""

from __future__ import annotations

import yaml

from mmerbench import preflight
from mmerbench.runner import RunRequest, prepare


def show(req: RunRequest) -> str:
    """YAML of the resolved config, headed by the hash that names its run folder."""
    prep = prepare(req)
    preflight.check_config(prep)  # the same checks as `run`, so a config shown is a config that runs
    folder = next(iter(prep.folders.values())).parent
    head = [f"# {req.method} on {req.dataset}" + (f", preset {req.preset}" if req.preset else ""),
            f"# config hash: {prep.config_hash}",
            f"# run folder: {folder}"]
    body = yaml.safe_dump({**prep.config, "config_hash": prep.config_hash}, sort_keys=True)
    return "\n".join(head) + "\n" + body
