"""The run store's profile records: written beside a config's seeds, collected into a tidy frame."""

from __future__ import annotations

from mmerbench import results


def test_profiles_are_collected_and_broken_ones_skipped(tmp_path):
    good = results.profile_path(tmp_path, "synth-mosei-aligned", "mlp", "abc123", "cpu", "fp32")
    results.write_json(good, {"device": "cpu", "device_name": "x86_64", "dtype": "fp32",
                              "metrics": {"params": 1000, "train_samples_per_s": 12.5, "note": "not a number"}})
    broken = results.profile_path(tmp_path, "synth-mosei-aligned", "mlp", "abc123", "cuda", "bf16")
    broken.write_text("{ truncated")
    frame = results.collect_profiles(tmp_path)
    assert sorted(frame["metric"]) == ["params", "train_samples_per_s"]
    row = frame.set_index("metric").loc["train_samples_per_s"]
    assert (row["dataset"], row["method"], row["config_hash"], row["device"], row["dtype"]) == (
        "synth-mosei-aligned", "mlp", "abc123", "cpu", "fp32")
    assert row["value"] == 12.5
    # Profiles are not runs: collect() still sees no complete run here.
    assert results.collect(tmp_path).empty
