"""Config resolution: order of precedence, typed overrides, typos refused, stable hashes."""

from __future__ import annotations

import pytest

from mmerbench.config import config_hash, parse_override, resolve
from mmerbench.errors import MmerbenchError


def _resolve(**kw):
    base = dict(dataset="synth-mosei-aligned", base_dataset="mosei-aligned", base={"threshold": 0.5})
    base.update(kw)
    return resolve("mlp", "mmerbench.methods", **base)


def test_precedence_defaults_preset_epochs_set():
    cfg = _resolve()
    assert cfg["params"]["hidden"] == 256 and cfg["params"]["threshold"] == 0.5
    cfg = _resolve(preset="small")
    assert cfg["params"]["hidden"] == 64 and cfg["params"]["epochs"] == 15
    cfg = _resolve(preset="small", epochs=9, overrides=["hidden=8", "epochs=11", "threshold=0.35"])
    assert cfg["params"]["hidden"] == 8 and cfg["params"]["epochs"] == 11 and cfg["params"]["threshold"] == 0.35


@pytest.mark.parametrize(
    "item, expected",
    [("lr=1e-4", ("lr", 1e-4)), ("modalities=[text, audio]", ("modalities", ["text", "audio"])),
     ("amp=false", ("amp", False)), ("hidden=32", ("hidden", 32)), ("select=loss", ("select", "loss"))],
)
def test_override_values_are_typed(item, expected):
    key, value = parse_override(item)
    assert (key, value) == expected and type(value) is type(expected[1])


def test_typos_and_unknown_presets_are_refused():
    with pytest.raises(MmerbenchError, match="Did you mean 'dropout'"):
        _resolve(overrides=["drpout=0.1"])
    with pytest.raises(MmerbenchError, match="key=value"):
        _resolve(overrides=["dropout"])
    with pytest.raises(MmerbenchError, match="Known: small"):
        _resolve(preset="large")


def test_hash_is_stable_and_sensitive():
    a, b = _resolve(), _resolve()
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 10
    assert config_hash(_resolve(overrides=["lr=0.002"])) != config_hash(a)
    assert config_hash(_resolve(dataset="synth-mosei-unaligned")) != config_hash(a)


def test_hash_is_of_the_resolved_config_not_its_spelling():
    # BR's `small` preset is empty: the same run with or without it.
    br = dict(dataset="synth-mosei-aligned", base_dataset="mosei-aligned", base={"threshold": 0.5})
    assert (config_hash(resolve("br", "mmerbench.baselines", preset="small", **br))
            == config_hash(resolve("br", "mmerbench.baselines", **br)))
    # A preset's values set by hand, --epochs or --set epochs, an int for a float: one run each.
    small = _resolve(preset="small")
    by_hand = _resolve(overrides=[f"{k}={v}" for k, v in small["params"].items()
                                  if v != _resolve()["params"][k]])
    assert by_hand["params"] == small["params"] and config_hash(by_hand) == config_hash(small)
    assert config_hash(_resolve(epochs=7)) == config_hash(_resolve(overrides=["epochs=7"]))
    assert config_hash(_resolve(overrides=["dropout=0"])) == config_hash(_resolve(overrides=["dropout=0.0"]))
    assert config_hash(_resolve(overrides=["dropout=0"])) != config_hash(_resolve(overrides=["dropout=0.5"]))
    assert config_hash(_resolve(preset="small")) != config_hash(_resolve())  # a preset that changes something
