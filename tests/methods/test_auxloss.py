"""Auxiliary-loss model tests: pinned sizes, L_sp and L_ua by hand, what is unimodal and what is
cross-modal, every Table 6/7 switch, masks for every encoder, an end-to-end run, and (slow) the
linear baseline and the MLP beaten on the MSP-Improv twin."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from mmerbench.methods.auxloss import AuxLossConfigError, reverse_valid, subspace_mapping_loss
from mmerbench.runner import RunRequest, parameter_count, run

from methods.helpers import assert_padding_ignored, build, count_parameters, tiny_batch

IEMOCAP, UNALIGNED = "synth-iemocap", "synth-iemocap-unaligned"
ENCODERS = ("attention", "bilstm", "gru", "bigru")
NO_DROPOUT = ("dropout=0.0",)


def _small(dataset=IEMOCAP, *overrides, seed=0):
    return build("auxloss", dataset, preset="small", overrides=overrides, seed=seed)


# -- (a) the designed config's size ---------------------------------------------------------------


def test_paper_config_parameter_count():
    d, ds, ff = 128, 128, 256
    layer = 4 * (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d  # post-LN encoder layer: 132,480
    audio = 2 * 74 + 74 * d + d + 2 * layer  # LayerNorm, Linear(74 -> 128), 2 layers
    text = 2 * 300 + 300 * d + d + 2 * layer
    mapping = 2 * (d * ds + ds + 2 * ds)  # phi_m: Linear + LayerNorm, per modality
    pools = 2 * 2 * (ds * ds + ds + ds)  # unimodal and cross-modal attention pooling, per modality
    aux = 2 * (ds * 4 + 4)  # the L_ua classifiers
    cross = 2 * (layer + 2 * ds)  # one pre-LN cross-attention layer per modality (+ its source LayerNorm)
    head = (2 * ds * ds + ds) + (ds * 4 + 4)
    want = audio + text + mapping + pools + aux + cross + head
    assert want == 978_808
    for dataset in ("iemocap", "iemocap-unaligned", "msp-improv"):  # same feature widths in all three
        assert parameter_count("auxloss", dataset) == want


# -- (b) the losses ---------------------------------------------------------------------------------


def test_subspace_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, -1.0]])  # same direction (0), opposite (4)
    assert subspace_mapping_loss(a, t).item() == pytest.approx(2.0)
    x = torch.randn(6, 5)
    cos = F.cosine_similarity(x, x.flip(0), dim=1)
    assert subspace_mapping_loss(x, x.flip(0)).item() == pytest.approx(float((2 - 2 * cos).mean()), rel=1e-5)


def test_loss_parts_and_weights():
    model, spec = _small(IEMOCAP, "ua_weight=0.3", "sp_weight=0.7")
    model.eval()
    batch = tiny_batch(spec)
    with torch.no_grad():
        out = model(batch)
        parts = model.loss(batch, out)
    p = parts.parts
    assert set(p) == {"task", "unimodal_aux", "subspace"}
    assert torch.allclose(p["task"], F.cross_entropy(out.scores, batch.labels))
    ua = (F.cross_entropy(out.aux["unimodal_logits.audio"], batch.labels)
          + F.cross_entropy(out.aux["unimodal_logits.text"], batch.labels)) / 2
    assert torch.allclose(p["unimodal_aux"], ua)
    assert torch.allclose(p["subspace"], subspace_mapping_loss(out.aux["unimodal.audio"], out.aux["unimodal.text"]))
    assert torch.allclose(parts.total, p["task"] + 0.3 * ua + 0.7 * p["subspace"])


def test_unimodal_representations_see_one_modality_and_the_fusion_sees_both():
    model, spec = _small(IEMOCAP, *NO_DROPOUT)
    model.eval()
    batch = tiny_batch(spec)
    with torch.no_grad():
        before = model(batch)
        batch.inputs["text"] = batch.inputs["text"] + torch.randn_like(batch.inputs["text"]) * batch.masks["text"][..., None]
        after = model(batch)
    assert torch.equal(before.aux["unimodal_logits.audio"], after.aux["unimodal_logits.audio"])
    assert not torch.allclose(before.aux["unimodal_logits.text"], after.aux["unimodal_logits.text"])
    assert not torch.allclose(before.scores, after.scores)


def test_cross_modality_attention_reads_the_other_modality():
    """With the block, audio's fused vector depends on the text; without it, it does not."""
    for cross, depends in ((True, True), (False, False)):
        model, spec = _small(IEMOCAP, f"cross_attention={str(cross).lower()}", *NO_DROPOUT)
        model.eval()
        batch = tiny_batch(spec)
        captured = []
        hook = model.head[0].register_forward_hook(lambda m, i, o: captured.append(i[0][:, :32].clone()))
        with torch.no_grad():
            model(batch)
            batch.inputs["text"] = batch.inputs["text"] * 2 + batch.masks["text"][..., None]
            model(batch)
        hook.remove()
        assert (not torch.allclose(captured[0], captured[1])) == depends


def test_reverse_valid_reverses_the_real_steps_only():
    x = torch.arange(10.0).view(2, 5, 1)
    out = reverse_valid(x, torch.tensor([3, 5]))
    assert out[0, :, 0].tolist() == [2.0, 1.0, 0.0, 3.0, 4.0]
    assert out[1, :, 0].tolist() == [9.0, 8.0, 7.0, 6.0, 5.0]
    assert torch.equal(reverse_valid(out, torch.tensor([3, 5])), x)


# -- (c) the switches (Tables 3, 5, 6, 7) -----------------------------------------------------------


def _parts(dataset=IEMOCAP, *overrides):
    model, spec = _small(dataset, *overrides)
    batch = tiny_batch(spec)
    parts = model.loss(batch, model(batch))
    parts.total.backward()
    assert all(p.grad is not None for p in model.parameters())
    return set(parts.parts), count_parameters(model), model


def test_table_6_rows():
    rows = [((), {"task", "unimodal_aux", "subspace"}, True),
            (("cross_attention=false",), {"task", "unimodal_aux", "subspace"}, False),
            (("cross_attention=false", "subspace_loss=false"), {"task", "unimodal_aux"}, False),
            (("cross_attention=false", "subspace_loss=false", "unimodal_aux=false"), {"task"}, False)]
    sizes = []
    for overrides, want, cross in rows:
        parts, n, model = _parts(IEMOCAP, *overrides)
        assert parts == want and (model.cross is not None) == cross
        sizes.append(n)
    ds = 32  # the small preset's subspace width
    assert sizes[0] > sizes[1] == sizes[2] > sizes[3]
    assert sizes[2] - sizes[3] == 2 * (ds * 4 + 4)  # the two L_ua classifiers


@pytest.mark.parametrize("encoder", ENCODERS)
def test_encoder_switch_table_7(encoder):
    parts, _, model = _parts(IEMOCAP, f"encoder={encoder}")
    assert parts == {"task", "unimodal_aux", "subspace"}
    kind = type(model.encoders["audio"]).__name__
    assert kind == ("AttentionEncoder" if encoder == "attention" else "RecurrentEncoder")
    if encoder != "attention":
        rnn = model.encoders["audio"].fwd[0]
        assert isinstance(rnn, torch.nn.LSTM if encoder == "bilstm" else torch.nn.GRU)
        assert (model.encoders["audio"].bwd is None) == (encoder == "gru")
        assert rnn.hidden_size == (32 if encoder == "gru" else 16)  # output width d_model either way


@pytest.mark.parametrize("encoder, dataset", [(e, IEMOCAP) for e in ENCODERS] + [("bigru", UNALIGNED)])
def test_padded_steps_change_nothing(encoder, dataset):
    model, spec = _small(dataset, f"encoder={encoder}")
    assert_padding_ignored(model, spec)


def test_unimodal_rows_of_table_3():
    for m in ("audio", "text"):
        parts, _, model = _parts(IEMOCAP, f"modalities=[{m}]")
        assert model.modalities == [m] and parts == {"task", "unimodal_aux"} and model.cross is None
        assert model.head[0].in_features == 32


def test_reads_audio_and_text_only_and_refuses_what_it_cannot_build():
    model, _ = _small(IEMOCAP)
    assert set(model.encoders) == {"audio", "text"}  # the IEMOCAP twin's vision is not read
    with pytest.raises(AuxLossConfigError, match="encoder"):
        _small(IEMOCAP, "encoder=transformer")
    with pytest.raises(AuxLossConfigError, match="modalities"):
        _small(IEMOCAP, "modalities=[vision]")
    with pytest.raises(AuxLossConfigError, match="even"):
        _small(IEMOCAP, "encoder=bilstm", "d_model=33")


# -- (d) end to end ---------------------------------------------------------------------------------


def test_end_to_end_run_reports_wa_ua_f1_and_per_class_accuracy(tmp_path):
    [res] = run(RunRequest(method="auxloss", dataset=IEMOCAP, preset="small", epochs=1, scale=0.02, device="cpu",
                           progress=False, data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs")))
    history = json.loads((res.folder / "history.json").read_text())
    assert set(history[0]["train_loss"]) == {"total", "task", "unimodal_aux", "subspace"}
    test = json.loads((res.folder / "metrics.json").read_text())["test"]
    for key in ("wa", "ua", "weighted_f1", "macro_f1", "acc_happy", "acc_sad", "acc_neutral", "acc_angry"):
        assert key in test


# -- (e) slow: better than the linear baseline and the MLP on the MSP-Improv twin ---------------------


@pytest.mark.slow
def test_beats_the_linear_baseline_and_the_mlp_on_the_msp_improv_twin(tmp_path):
    """The slides' own audio + text set; both references read the same two modalities, time-averaged."""
    common = dict(dataset="synth-msp-improv", scale=0.2, device="cpu", progress=False,
                  data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    [linear] = run(RunRequest(method="linear", **common))
    [mlp] = run(RunRequest(method="mlp", **common))
    [aux] = run(RunRequest(method="auxloss", preset="small", epochs=5, **common))
    wa = {name: r.metrics["test"]["wa"] for name, r in (("linear", linear), ("mlp", mlp), ("auxloss", aux))}
    print("test WA: " + ", ".join(f"{k} {v:.4f}" for k, v in wa.items()))
    assert wa["auxloss"] > max(wa["linear"], wa["mlp"]) + 0.03
