"""`mmerbench datasets`, `data verify`, `data export`, the linear baseline, and runs on every task type end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mmerbench import metrics
from mmerbench.cli import cli
from mmerbench.data.overview import overview, verify
from mmerbench.data.readers.canonical import write_canonical
from mmerbench.data.readers.mult import write_mult_pkl
from mmerbench.data.registry import DATASETS, get_entry
from mmerbench.registry import get_method
from mmerbench.runner import RunRequest, run

from readerkit import small

TINY = 0.01


def test_datasets_lists_every_dataset_with_what_the_issue_asks(tmp_path):
    write_mult_pkl(small("mosi"), _mk(tmp_path / "mosi" / "mosi_data.pkl"))
    rows = {r.name: r for r in overview(tmp_path)}
    assert set(rows) == set(DATASETS.names())
    assert rows["mosi"].status == "present" and rows["mosi"].format == "mult-pkl"
    assert rows["iemocap"].status == "absent" and rows["iemocap"].format == ""
    assert rows["synth-nemu"].status == "generated"
    assert rows["iemocap-unaligned"].modalities == "text 300×20, audio 74×400, vision 35×500"
    assert rows["mosei-senti"].sizes == "16,326/1,871/4,659" and rows["iemocap"].labels[0] == "neutral"
    out = CliRunner().invoke(cli, ["datasets", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    for needle in ("synth-ur-funny", "picture 2048×1", "mult-pkl", "absent", "neutral, happy, sad, angry"):
        assert needle in out.output


def _mk(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_verify_a_real_file_reports_counts_and_warnings(tmp_path):
    ds = small("iemocap")
    ds["train"].inputs["audio"][0, 0, 0] = np.nan
    write_mult_pkl(ds, _mk(tmp_path / "iemocap" / "iemocap_data.pkl"))
    rep = verify("iemocap", data_dir=tmp_path)
    assert rep.ok and rep.format == "mult-pkl"
    msgs = [c.message for c in rep.checks]
    assert any("train: 1 non-finite value(s) in audio" in m for m in msgs)
    assert any("train has 12 samples; the documented size is 2,717" in m for m in msgs)
    assert any("no sha256 published" in m for m in msgs)
    train = next(r for r in rep.splits if r["split"] == "train")
    counts = np.bincount(ds["train"].labels, minlength=4)
    assert train["labels"] == ", ".join(f"{n} {c}" for n, c in zip(ds.spec.labels, counts))
    assert train["non-finite"] == 1


def test_verify_catches_a_changed_canonical_file(tmp_path):
    folder = write_canonical(small("msp-improv"), tmp_path / "msp-improv")
    assert verify("msp-improv", data_dir=tmp_path).ok
    with np.load(folder / "test.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["text"][0, 0, 0] += 1
    np.savez(folder / "test.npz", **arrays)
    rep = verify("msp-improv", data_dir=tmp_path)
    assert not rep.ok and any("test.npz: sha256" in c.message for c in rep.checks if c.level == "error")
    out = CliRunner().invoke(cli, ["data", "verify", str(folder)])
    assert out.exit_code != 0 and "failed verification" in str(out.exception or out.output)


def test_verify_warns_on_ids_shared_by_splits(tmp_path):
    ds = small("mosi")
    ids = ds["test"].ids.astype(object)
    ids[0] = ds["train"].ids[0]
    ds["test"].ids = ids.astype(str)
    write_mult_pkl(ds, _mk(tmp_path / "mosi" / "mosi_data.pkl"))
    assert any("more than one split" in c.message for c in verify("mosi", data_dir=tmp_path).checks)


def test_verify_and_export_from_the_command_line(tmp_path):
    out = CliRunner().invoke(cli, ["data", "verify", "synth-ur-funny", "--scale", str(TINY)])
    assert out.exit_code == 0, out.output
    assert "OK" in out.output and "humor" in out.output
    target = tmp_path / "funny"
    out = CliRunner().invoke(cli, ["data", "export", "synth-ur-funny", str(target), "--scale", str(TINY),
                                   "--data-dir", str(tmp_path / "root")])
    assert out.exit_code == 0, out.output
    assert (target / "spec.yaml").is_file()
    again = CliRunner().invoke(cli, ["data", "export", "synth-ur-funny", str(target), "--scale", str(TINY),
                                     "--data-dir", str(tmp_path / "root")])
    assert again.exit_code != 0


def test_errors_are_one_sentence(tmp_path):
    env = {**os.environ, "MMERBENCH_DATA": str(tmp_path)}
    errors = []
    for args in (["data", "verify", "nemu"], ["run", "--method", "linear", "--dataset", str(tmp_path / "nowhere")]):
        proc = subprocess.run([sys.executable, "-m", "mmerbench.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        errors.append(proc.stderr)
    assert "nemu/nemu_data.pt" in errors[0] and "synth-nemu" in errors[0]
    assert "is not a folder" in errors[1]
    out = CliRunner().invoke(cli, ["data", "export", "m3ed", str(tmp_path / "o"), "--data-dir", str(tmp_path)])
    assert out.exit_code != 0 and "final_feat/T/M3ED_train_text_glove300_VA.pkl" in str(out.exception)


# ------------------------------------------------------------------ the linear baseline


def _toy(task, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * 3 + 1
    score = X[:, 0] - X[:, 1]
    if task == "regression":
        return X, (np.clip(score / 2, -3, 3) + rng.normal(0, 0.1, n)).astype(np.float32)
    if task == "binary":
        return X, (score > 0).astype(np.int64)
    return X, np.digitize(score, [-3, 0, 3]).astype(np.int64)


@pytest.mark.parametrize("task,spec_name", [("multiclass", "iemocap"), ("binary", "ur-funny"),
                                            ("regression", "mosi")])
def test_linear_estimator_contract(task, spec_name):
    X, y = _toy(task)
    est = get_method("linear").for_spec(get_entry(spec_name).spec, seed=0)
    assert not [k for k in vars(est) if k.endswith("_")]
    assert est.fit(X, y) is est
    p = est.predict_proba(X)
    if task == "multiclass":
        assert p.shape == (len(X), 4) and np.allclose(p.sum(1), 1) and (p.argmax(1) == y).mean() > 0.85
    elif task == "binary":
        assert p.shape == (len(X),) and ((p > 0.5) == y).mean() > 0.9
    else:
        assert p.shape == (len(X),) and np.corrcoef(p, y)[0, 1] > 0.95


def test_linear_matches_scikit_learn_at_a_fixed_strength():
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    X, y = _toy("multiclass")
    Xs = StandardScaler().fit_transform(X)
    got = get_method("linear")(task="multiclass", n_classes=4, C=0.5).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(got, LogisticRegression(C=0.5, max_iter=1000).fit(Xs, y).predict_proba(Xs), rtol=1e-6)
    X, y = _toy("regression")
    Xs = StandardScaler().fit_transform(X)
    got = get_method("linear")(task="regression", alpha=3.0).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(got, Ridge(alpha=3.0).fit(Xs, y).predict(Xs), rtol=1e-6)


def test_linear_chooses_its_strength_on_train_only():
    X, y = _toy("regression")
    est = get_method("linear")(task="regression").fit(X, y)
    assert est.alpha_ in [float(a) for a in est.alphas]
    X, y = _toy("binary")
    est = get_method("linear")(task="binary", n_classes=2, seed=3).fit(X, y)
    assert est.C_ in est.Cs


def test_linear_handles_a_class_missing_from_training():
    X, y = _toy("multiclass")
    keep = y != 2
    p = get_method("linear")(task="multiclass", n_classes=4, C=1.0).fit(X[keep], y[keep]).predict_proba(X)
    assert p.shape == (len(X), 4) and np.all(p[:, 2] == 0)


def test_linear_refuses_multilabel():
    from mmerbench.errors import MmerbenchError

    with pytest.raises(MmerbenchError, match="br, cc or lp"):
        get_method("linear").for_spec(get_entry("nemu").spec)


# ------------------------------------------------------------------ end to end on every task type


@pytest.mark.parametrize("method,dataset,metric,scale", [
    ("linear", "synth-iemocap", "wa", 0.05),
    ("linear", "synth-ur-funny", "acc", 0.01),
    ("linear", "synth-mosi", "mae", 0.05),
    ("br", "synth-nemu", "micro_f1", 0.02),
    ("mlp", "synth-mosi", "mae", 0.05),
])
def test_runs_end_to_end_on_every_task_type(tmp_path, method, dataset, metric, scale):
    req = RunRequest(method=method, dataset=dataset, seeds=(1,), scale=scale, data_dir=str(tmp_path / "d"),
                     runs_dir=str(tmp_path / "r"), progress=False, epochs=2 if method == "mlp" else None)
    (res,) = run(req)
    test = res.metrics["test"]
    assert np.isfinite(test[metric])
    pred = np.load(res.folder / "predictions.npz")
    spec = get_entry(dataset).spec
    again = metrics.compute(spec.task, y_true=pred["test_true"], y_score=pred["test_scores"],
                            threshold=spec.threshold, labels=list(spec.labels))
    assert again == pytest.approx(test)
    if spec.task == "multiclass":
        assert test["wa"] > 0.4  # far above the 0.25 of guessing (the twins plant a learnable signal)
    if spec.task == "regression":
        assert test["corr"] > 0.3
