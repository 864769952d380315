"""MulT (Tsai et al., ACL 2019): size at the paper config, masks, ablation switches, an end-to-end run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mmerbench.data.registry import get_entry
from mmerbench.methods._layers import TransformerLayer
from mmerbench.methods.base import task_loss
from mmerbench.methods.mult import MulT, _CrossmodalLayer
from mmerbench.runner import RunRequest, parameter_count, run

from methods.helpers import build, count_parameters, params_for, tiny_batch

ALIGNED, UNALIGNED = "synth-mosei-aligned", "synth-mosei-unaligned"


# -- (a) size at the paper config --------------------------------------------------
@pytest.mark.parametrize("dataset", ["mosei-aligned", "mosei-unaligned"])
def test_paper_config_parameter_count(dataset):
    # Conv1d 12,270 + 6 crossmodal transformers (5 layers, d=30) 336,060 + 3 memory transformers
    # (5 layers, 2d=60) 660,060 + residual head 65,160 + output 1,086. Lengths add no parameters.
    assert parameter_count("mult", dataset) == 1_074_636


def test_paper_config_structure():
    model, _ = build("mult", ALIGNED)
    assert set(model.crossmodal) == {"text", "audio", "vision"}
    assert set(model.crossmodal["text"]) == {"audio", "vision"}
    assert all(len(enc.layers) == 5 for t in model.crossmodal.values() for enc in t.values())
    assert all(len(m.layers) == 5 and m.d_model == 60 for m in model.memory.values())  # max(layers, 3)
    assert model.proj1.in_features == 180 and model.out.out_features == 6
    for conv in model.proj.values():  # Conv1d, kernel 1, no bias (the authors' proj_l/a/v)
        assert conv.kernel_size == (1,) and conv.bias is None and conv.out_channels == 30


def test_attention_dropout_follows_the_source_modality():
    model, _ = build("mult", ALIGNED)
    drop = lambda enc: enc.layers[0].attn.dropout  # noqa: E731
    assert drop(model.crossmodal["text"]["audio"]) == 0.0  # authors' 'la' uses attn_dropout_a
    assert drop(model.crossmodal["text"]["vision"]) == 0.0
    assert drop(model.crossmodal["audio"]["text"]) == 0.1
    assert drop(model.memory["audio"]) == 0.1


def test_memory_layers_default_to_at_least_three():
    model, _ = build("mult", ALIGNED, overrides=["layers=1"])
    assert all(len(m.layers) == 3 for m in model.memory.values())


# -- (b) masks --------------------------------------------------------------------
def _eval_scores(model, batch):
    model.eval()
    with torch.no_grad():
        return model(batch).scores


@pytest.mark.parametrize("dataset", [ALIGNED, UNALIGNED])
def test_padded_steps_do_not_change_the_output(dataset):
    model, spec = build("mult", dataset, preset="small")
    batch = tiny_batch(spec)
    ref = _eval_scores(model, batch)
    for m in batch.inputs:  # garbage where the masks say padding
        batch.inputs[m] = torch.where(batch.masks[m][..., None], batch.inputs[m], torch.full_like(batch.inputs[m], 7.0))
    torch.testing.assert_close(_eval_scores(model, batch), ref)


def test_without_masks_padding_leaks_in_as_in_the_authors_code():
    model, spec = build("mult", ALIGNED, preset="small", overrides=["use_masks=false"])
    batch = tiny_batch(spec)
    ref = _eval_scores(model, batch)
    for m in batch.inputs:
        batch.inputs[m] = torch.where(batch.masks[m][..., None], batch.inputs[m], torch.full_like(batch.inputs[m], 7.0))
    out = _eval_scores(model, batch)
    torch.testing.assert_close(out[0], ref[0])  # sample 0 is full length: nothing padded
    assert not torch.allclose(out[1:], ref[1:])


def _crossmodal_step0_change(model, lq, lk, perturb_from):
    enc = model.crossmodal["text"]["audio"]
    enc.eval()
    g = torch.Generator().manual_seed(0)
    x, src = torch.randn(1, lq, 16, generator=g), torch.randn(1, lk, 16, generator=g)
    mask = model._mask(torch.ones(1, lk, dtype=torch.bool), lq)
    with torch.no_grad():
        a = enc(x, mask, source=src)
        src2 = src.clone()
        src2[:, perturb_from:] += 3.0 * torch.randn(1, lk - perturb_from, 16, generator=g)  # not a constant: LN removes those
        b = enc(x, mask, source=src2)
    return (a[0, 0] - b[0, 0]).abs().max().item()


def test_future_mask_hides_later_source_steps():
    model, _ = build("mult", UNALIGNED, preset="small")
    # relative: text step 0 of 50 sees audio steps 0..9 of 500
    assert _crossmodal_step0_change(model, 50, 500, perturb_from=10) == 0.0
    assert _crossmodal_step0_change(model, 50, 500, perturb_from=9) > 0.0
    off, _ = build("mult", UNALIGNED, preset="small", overrides=["future_mask=offset"])
    # the authors' buffered mask: step 0 sees keys j <= 0 + |500 - 50|
    assert _crossmodal_step0_change(off, 50, 500, perturb_from=451) == 0.0
    assert _crossmodal_step0_change(off, 50, 500, perturb_from=450) > 0.0
    free, _ = build("mult", UNALIGNED, preset="small", overrides=["attn_mask=false"])
    assert _crossmodal_step0_change(free, 50, 500, perturb_from=499) > 0.0


def test_both_future_masks_are_causal_for_equal_lengths():
    rel, _ = build("mult", ALIGNED, preset="small")
    off, _ = build("mult", ALIGNED, preset="small", overrides=["future_mask=offset"])
    keys = torch.ones(2, 60, dtype=torch.bool)
    causal = torch.tril(torch.ones(60, 60, dtype=torch.bool))
    for model in (rel, off):
        assert torch.equal(model._mask(keys, 60).expand(2, 1, 60, 60)[0, 0], causal)


# -- (b) ablation switches --------------------------------------------------------
def test_single_target_is_the_authors_lonly():
    full, _ = build("mult", ALIGNED)
    lonly, _ = build("mult", ALIGNED, overrides=["targets=[text]"])
    assert set(lonly.crossmodal) == {"text"} and set(lonly.memory) == {"text"}
    assert lonly.proj1.in_features == 60  # 2d, as the authors' partial mode
    assert count_parameters(lonly) < count_parameters(full)


def test_late_fusion_has_no_crossmodal_attention():
    model, spec = build("mult", ALIGNED, preset="small", overrides=["fusion=late"])
    assert not any(isinstance(m, _CrossmodalLayer) for m in model.modules())
    assert any(isinstance(m, TransformerLayer) for m in model.modules())
    assert model.proj1.in_features == 3 * 16
    assert model(tiny_batch(spec)).scores.shape == (3, 6)


def test_attn_mask_switch_changes_the_output():
    a, spec = build("mult", ALIGNED, preset="small", seed=1)
    b, _ = build("mult", ALIGNED, preset="small", overrides=["attn_mask=false"], seed=1)
    batch = tiny_batch(spec)
    assert count_parameters(a) == count_parameters(b)
    assert not torch.allclose(_eval_scores(a, batch), _eval_scores(b, batch))


@pytest.mark.parametrize("overrides", [["targets=[text]"], ["fusion=late", "targets=[audio]"],
                                       ["modalities=[text, audio]"], ["modalities=[vision]", "fusion=late"]])
def test_every_variant_trains_all_its_parameters(overrides):
    model, spec = build("mult", ALIGNED, preset="small", overrides=overrides)
    batch = tiny_batch(spec)
    model.loss(batch, model(batch)).total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_one_modality_needs_late_fusion():
    with pytest.raises(ValueError, match="fusion=late"):
        build("mult", ALIGNED, preset="small", overrides=["modalities=[text]"])


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="targets"):
        build("mult", ALIGNED, preset="small", overrides=["targets=[smell]"])


# -- (b) heads and training set-up ---------------------------------------------------
def test_regression_head_is_l1():
    spec = get_entry(ALIGNED).spec.with_(task="regression", labels=("sentiment",))
    torch.manual_seed(0)
    model = MulT(spec, **params_for("mult", ALIGNED, preset="small"))
    batch = tiny_batch(spec)
    out = model(batch)
    assert out.scores.shape == (3, 1)
    parts = model.loss(batch, out)
    assert torch.allclose(parts.total, (out.scores.reshape(-1) - batch.labels).abs().mean())
    assert torch.allclose(parts.total, task_loss(spec, out.scores, batch.labels))


def test_optimizer_is_adam_with_plateau_decay_on_valid_loss():
    model, _ = build("mult", ALIGNED, preset="small")
    setup = model.configure_optimizer(steps_per_epoch=10, epochs=40)
    assert isinstance(setup.optimizer, torch.optim.Adam) and setup.optimizer.param_groups[0]["lr"] == 1e-3
    assert isinstance(setup.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert setup.scheduler.patience == 20 and math.isclose(setup.scheduler.factor, 0.1)
    assert setup.interval == "epoch"


def test_paper_training_settings():
    p = params_for("mult", ALIGNED)
    assert (p["batch_size"], p["epochs"], p["grad_clip"], p["select"]) == (24, 40, 0.8, "loss")
    assert p["embed_dropout"] == 0.25 and p["attn_mask"] is True and p["use_masks"] is True


# -- (c) end to end ----------------------------------------------------------------
def test_end_to_end_run(tmp_path):
    (res,) = run(RunRequest(method="mult", dataset=ALIGNED, preset="small", epochs=1, scale=0.01, device="cpu",
                            progress=False, data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs")))
    assert (res.folder / "metrics.json").is_file()
    hist = json.loads((res.folder / "history.json").read_text())
    assert len(hist) == 1 and "task" in hist[0]["train_loss"]
    m = json.loads((res.folder / "metrics.json").read_text())
    assert 0.0 <= m["test"]["micro_f1"] <= 1.0


# -- (d) slow: beats BR on the aligned twin ---------------------------------------------
@pytest.mark.slow
def test_beats_br_on_the_aligned_twin(tmp_path):
    common = dict(dataset=ALIGNED, scale=0.2, device="cpu", progress=False,
                  data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    (br,) = run(RunRequest(method="br", **common))
    (mult,) = run(RunRequest(method="mult", preset="small", epochs=SLOW_EPOCHS, overrides=SLOW_OVERRIDES, **common))
    br_f1, mult_f1 = br.metrics["test"]["micro_f1"], mult.metrics["test"]["micro_f1"]
    print(f"micro-F1 on {ALIGNED} (scale 0.2): MulT {mult_f1:.4f}, BR {br_f1:.4f}")
    assert mult_f1 > br_f1


SLOW_EPOCHS = 6
SLOW_OVERRIDES = ("d_model=32", "heads=4", "layers=2", "mem_layers=1")


def test_authors_positions_by_hand():
    from mmerbench.methods.mult import authors_positions

    x = torch.ones(1, 3, 4)
    x[0, 1, 0] = 0.0  # a step whose first feature is exactly 0 gets no position
    pos = authors_positions(x)[0]
    # d = 4: frequencies 1 and 10000^-1; positions count from 1; sin | cos halves.
    for step, p in ((0, 1.0), (2, 3.0)):
        want = torch.tensor([math.sin(p), math.sin(p * 1e-4), math.cos(p), math.cos(p * 1e-4)])
        torch.testing.assert_close(pos[step], want)
    assert torch.equal(pos[1], torch.zeros(4))


def test_positions_switch_changes_the_output_and_is_checked():
    model, spec = build("mult", "synth-mosei-aligned", preset="small")
    other, _ = build("mult", "synth-mosei-aligned", preset="small", overrides=["positions=authors"])
    other.load_state_dict(model.state_dict())
    model.eval(), other.eval()
    batch = tiny_batch(spec)
    with torch.no_grad():
        assert not torch.allclose(model(batch).scores, other(batch).scores)
    with pytest.raises(ValueError, match="positions"):
        build("mult", "synth-mosei-aligned", preset="small", overrides=["positions=fairseq"])
