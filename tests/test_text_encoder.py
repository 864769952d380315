"""Pretrained text encoders from raw text: the twins' sentences, storage of text_raw, token caching,
fine-tuning, determinism and resume through tiny local BERT/RoBERTa checkpoints (nothing is downloaded)."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch

from mmerbench.data import synthetic
from mmerbench.data.cache import load as cache_load, write as cache_write
from mmerbench.data.readers.canonical import FILES, read_canonical, write_canonical
from mmerbench.data.registry import get_entry, load_dataset
from mmerbench.data.spec import SPLITS
from mmerbench.errors import DataError, MmerbenchError
from mmerbench.runner import CHECKPOINT, RunRequest, prepare, run

from textkit import make_tiny

DATASET = "synth-mosei-aligned"
TINY_SCALE = 0.005  # 82 / 8 / 23 samples: the encoder's runs stay a few seconds each


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-data")
    load_dataset(DATASET, data_dir=root, scale=TINY_SCALE)
    return root


@pytest.fixture(scope="module")
def vocab():
    return synthetic.twin_vocabulary(get_entry("mosei-aligned").spec)


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory, vocab):
    return make_tiny(tmp_path_factory.mktemp("roberta"), vocab, "roberta")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, vocab):
    return make_tiny(tmp_path_factory.mktemp("bert"), vocab, "bert")


# ----------------------------------------------------------------------------- the twins' text


def test_twin_sentences_carry_the_text_evidence_and_change_no_feature():
    real = get_entry("mosei-aligned").spec
    spec = real.with_(name=DATASET, splits={"train": 300, "valid": 8, "test": 8})
    plan = synthetic._Plan(spec, synthetic.MOSEI, 0)
    plain = synthetic._generate_split(plan, 300, np.random.default_rng([0, 1]), np.random.default_rng([0, 100]))
    texted = synthetic._generate_split(plan, 300, np.random.default_rng([0, 1]), np.random.default_rng([0, 100]),
                                       np.random.default_rng([0, 200]))
    assert plain.text_raw is None
    for m in spec.modalities:  # the words come from their own stream: every array is as before
        np.testing.assert_array_equal(plain.inputs[m], texted.inputs[m])
    np.testing.assert_array_equal(plain.labels, texted.labels)
    assert texted.text_raw.dtype.kind == "U" and texted.text_raw.shape == (300,)
    words = [set(t.split()) for t in texted.text_raw]
    y = texted.labels.astype(bool)
    for k, label in enumerate(spec.labels):
        cue = set(synthetic.cue_words(label))
        has = np.array([bool(w & cue) for w in words])
        # text visibility of MOSEI is 0.2-0.75, false evidence 3%: cue words mark positives far more often
        assert has[y[:, k]].mean() > has[~y[:, k]].mean() + 0.1, label
    assert set().union(*words) <= set(synthetic.twin_vocabulary(spec))


def test_twin_text_is_deterministic_and_cached_without_pickle(tmp_path):
    a = load_dataset(DATASET, data_dir=tmp_path, scale=TINY_SCALE)
    assert not a.report.from_cache
    b = load_dataset(DATASET, data_dir=tmp_path, scale=TINY_SCALE)
    assert b.report.from_cache
    for s in SPLITS:
        np.testing.assert_array_equal(a[s].text_raw, b[s].text_raw)
        assert len(a[s].text_raw) == len(a[s])
    files = list(tmp_path.rglob("text_raw.npy"))
    assert len(files) == 3
    np.load(files[0], allow_pickle=False)  # fixed-width unicode: readable with pickle refused


def test_cache_and_canonical_keep_text_raw(tmp_path, data_dir):
    ds = load_dataset(DATASET, data_dir=data_dir, scale=TINY_SCALE)
    folder = write_canonical(ds, tmp_path / "canon")
    back = read_canonical([folder / f for f in FILES]).validate()
    for s in SPLITS:
        np.testing.assert_array_equal(back[s].text_raw, ds[s].text_raw)
    cache_write(tmp_path / "entry", back, {"x": 1})
    again = cache_load(tmp_path / "entry", {"x": 1})
    np.testing.assert_array_equal(again["test"].text_raw, ds["test"].text_raw)


def test_canonical_refuses_text_that_is_not_strings(tmp_path, data_dir):
    ds = load_dataset(DATASET, data_dir=data_dir, scale=TINY_SCALE)
    folder = write_canonical(ds, tmp_path / "canon")
    z = dict(np.load(folder / "valid.npz"))
    z["text_raw"] = np.arange(len(z["ids"]))
    np.savez(folder / "valid.npz", **z)
    with pytest.raises(DataError, match="'text_raw' must be strings"):
        read_canonical([folder / f for f in FILES])


def test_mmsa_raw_text_that_is_not_text_is_one_error(tmp_path):
    from mmerbench.data.readers.mmsa import read_mmsa, write_mmsa_pkl

    ds = load_dataset("synth-mosi", data_dir=tmp_path / "data", scale=0.05)

    path = write_mmsa_pkl(ds, tmp_path / "aligned_50.pkl")
    out = read_mmsa([path], spec=get_entry("mosi").spec)
    np.testing.assert_array_equal(out["train"].text_raw, ds["train"].text_raw)  # the twin's sentences kept
    data = pickle.loads(path.read_bytes())
    data["test"]["raw_text"] = np.array([None] * len(data["test"]["id"]), dtype=object)
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match="raw_text.*not a string"):
        read_mmsa([path], spec=get_entry("mosi").spec)


# ----------------------------------------------------------------------------- tokens and loading


def test_tokens_are_cached_per_dataset_and_tokenizer(tmp_path, data_dir, tiny_bert, tiny_roberta, monkeypatch):
    from mmerbench.methods import text_encoder as te

    ds = load_dataset(DATASET, data_dir=data_dir, scale=TINY_SCALE)
    first = te.dataset_tokens(ds, str(tiny_bert), 24, tmp_path / "cache")
    ids, mask = first["train"]
    assert ids.shape == mask.shape == (len(ds["train"]), 24) and ids.dtype == np.int64 and mask.dtype == bool
    assert mask[:, 0].all() and (ids[:, 0] == 2).all()  # [CLS] first (id 2 in the tiny vocabulary)
    calls = []
    monkeypatch.setattr(te, "tokenize", lambda *a: calls.append(a) or pytest.fail("tokenised again"))
    second = te.dataset_tokens(ds, str(tiny_bert), 24, tmp_path / "cache")
    np.testing.assert_array_equal(second["train"][0], ids)
    assert calls == []
    monkeypatch.undo()
    other = te.dataset_tokens(ds, str(tiny_roberta), 24, tmp_path / "cache")  # another tokenizer: its own entry
    assert (other["train"][0][:, 0] == 0).all()  # <s>
    names = [p.name for p in (tmp_path / "cache" / "tokens").iterdir()]
    assert len([n for n in names if not n.startswith(".")]) == 2
    assert all(n.endswith(".lock") for n in names if n.startswith("."))  # each entry's writer lock, no leftovers


def test_missing_checkpoint_is_one_sentence_and_no_download(tmp_path, monkeypatch):
    from mmerbench.cli import main
    from mmerbench.methods.text_encoder import PretrainedText

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(MmerbenchError, match="not on this machine.*Hugging Face cache.*local folder"):
        PretrainedText("no-such-org/no-such-model")
    with pytest.raises(MmerbenchError, match="not on this machine"):
        PretrainedText(str(tmp_path / "missing-folder"))
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--method", "univa", "--dataset", DATASET, "--preset", "small", "--scale", str(TINY_SCALE),
              "--set", "text_encoder=no-such-org/no-such-model", "--data-dir", str(tmp_path / "d"),
              "--runs-dir", str(tmp_path / "r"), "--device", "cpu"])
    assert exit_.value.code != 0


# ----------------------------------------------------------------------------- training through the encoder


def _req(tmp_path, model, method="univa", runs="runs", data_dir=None, **kw):
    data_dir = data_dir or tmp_path / "data"
    base = dict(method=method, dataset=DATASET, seeds=(1,), epochs=3, preset="small",
                overrides=(f"text_encoder={model}", "text_max_length=32", "text_lr=1e-3"),
                data_dir=str(data_dir), runs_dir=str(tmp_path / runs), scale=TINY_SCALE,
                progress=False, device="cpu")
    base.update(kw)
    return RunRequest(**base)


class _Stop(Exception):
    """Raised from inside an epoch: the run is killed part-way, as by Ctrl-C."""


def test_univa_fine_tunes_the_encoder_deterministically_and_resumes(tmp_path, data_dir, tiny_roberta):
    from safetensors.torch import load_file

    (a,) = run(_req(tmp_path, tiny_roberta, data_dir=data_dir))
    hist = json.loads((a.folder / "history.json").read_text())
    assert hist[-1]["train_loss"]["total"] < hist[0]["train_loss"]["total"]
    state = torch.load(a.folder / "model.pt", weights_only=True)["model"]
    enc = {k: v for k, v in state.items() if k.startswith("text_model.model.")}
    assert enc, "the encoder's weights are part of the model's state"
    start = load_file(tiny_roberta / "model.safetensors")
    key = "embeddings.word_embeddings.weight"
    assert not torch.equal(enc[f"text_model.model.{key}"], start[key])  # fine-tuned, not frozen

    (b,) = run(_req(tmp_path, tiny_roberta, data_dir=data_dir, runs="again"))
    assert (a.folder / "metrics.json").read_bytes() == (b.folder / "metrics.json").read_bytes()

    def stop(epoch, record):
        if epoch == 0:
            raise _Stop
    with pytest.raises(_Stop):
        run(_req(tmp_path, tiny_roberta, data_dir=data_dir, runs="killed"), on_epoch_end=stop)
    folder = prepare(_req(tmp_path, tiny_roberta, data_dir=data_dir, runs="killed")).folders[1]
    saved = torch.load(folder / CHECKPOINT, weights_only=False)["model"]
    assert any(k.startswith("text_model.model.") for k in saved)
    (c,) = run(_req(tmp_path, tiny_roberta, data_dir=data_dir, runs="killed"))
    assert c.status == "resumed" and c.metrics == a.metrics


def test_text_lr_is_the_encoders_own_group(tiny_bert):
    from mmerbench.runner import build_model

    prep = prepare(_req(__import__("pathlib").Path("/nonexistent"), tiny_bert, overrides=(
        f"text_encoder={tiny_bert}", "text_lr=1e-5", "text_freeze=embeddings")))
    model = build_model(prep, prep.spec)
    opt = model.configure_optimizer(10, 1).optimizer
    enc = {id(p) for p in model.text_model.parameters()}
    frozen = {id(p) for p in model.text_model.model.embeddings.parameters()}
    for g in opt.param_groups:
        ids = {id(p) for p in g["params"]}
        assert ids <= enc or not ids & enc  # a group is all encoder or none of it
        assert g["lr"] == (1e-5 if ids & enc else 3e-3)
        assert not ids & frozen  # frozen embeddings are not optimised


@pytest.mark.parametrize("method", ["fdmer", "misa"])
def test_fdmer_and_misa_train_through_a_bert_and_are_stored(tmp_path, data_dir, tiny_bert, method):
    (res,) = run(_req(tmp_path, tiny_bert, data_dir=data_dir, method=method, epochs=2))
    assert res.status == "ran" and (res.folder / "metrics.json").is_file()
    hist = json.loads((res.folder / "history.json").read_text())
    assert np.isfinite(hist[-1]["train_loss"]["total"])
    state = torch.load(res.folder / "model.pt", weights_only=True)["model"]
    assert any(re.match(r"text_model\.model\.encoder\.layer\.0\.", k) for k in state)
    (again,) = run(_req(tmp_path, tiny_bert, data_dir=data_dir, method=method, epochs=2))
    assert again.status == "skipped"


def test_a_dataset_without_text_is_refused(tmp_path, data_dir, tiny_bert):
    ds = load_dataset(DATASET, data_dir=data_dir, scale=TINY_SCALE)
    ds["valid"].text_raw = None
    from mmerbench.methods.text_encoder import dataset_tokens

    with pytest.raises(DataError, match="carries none"):
        dataset_tokens(ds, str(tiny_bert), 16, tmp_path / "cache")


@pytest.mark.slow
def test_the_encoder_beats_the_features_only_run_without_text(tmp_path, tiny_bert):
    """UniVA with text read by a tiny random BERT (fine-tuned) beats the features-only run that lacks text
    (audio and vision), on the default-scale twin: the encoder learns the sentences' planted evidence."""
    common = dict(data_dir=tmp_path / "data", epochs=6, scale=0.05, seeds=(1,))
    (enc,) = run(_req(tmp_path, tiny_bert, runs="enc", **common))
    (feat,) = run(_req(tmp_path, tiny_bert, runs="feat", overrides=("modalities=[audio,vision]",), **common))
    assert enc.metrics["test"]["micro_f1"] > feat.metrics["test"]["micro_f1"]
