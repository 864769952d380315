"""TAILOR-specific tests: pinned sizes, the adversarial and orthogonality terms, the
alignment module, masks, every Table 3 switch, an end-to-end run, and (slow) BR beaten."""

from __future__ import annotations

import json

import pytest
import torch

from mmerbench.errors import MmerbenchError
from mmerbench.methods.tailor import Tailor, ctc_alignment_loss
from mmerbench.runner import RunRequest, parameter_count, run

from methods.helpers import assert_padding_ignored, build, count_parameters, tiny_batch

ALIGNED, UNALIGNED = "synth-mosei-aligned", "synth-mosei-unaligned"


def _small(dataset=ALIGNED, *overrides, seed=0):
    return build("tailor", dataset, preset="small", overrides=overrides, seed=seed)


# -- (a) the paper config's size -------------------------------------------------------------


def test_paper_config_parameter_count_aligned():
    assert parameter_count("tailor", "mosei-aligned") == 10_405_185


def test_paper_config_parameter_count_unaligned():
    # + two 2-layer LSTM aligners (audio 74 → 51, vision 35 → 51 outputs: 50 target positions + blank)
    assert parameter_count("tailor", "mosei-unaligned") == 10_491_477


# -- (b) properties of the method -------------------------------------------------------------


def test_loss_parts_and_weights_make_eq_17():
    model, spec = _small()
    batch = tiny_batch(spec)
    model.eval()
    with torch.no_grad():
        parts = model.loss(batch, model(batch))
    p = parts.parts
    assert set(p) == {"task", "adv_common", "adv_private", "orthogonality", "common_semantic"}
    want = p["task"] + 0.01 * (p["adv_common"] + p["adv_private"]) + 5e-6 * p["orthogonality"] \
        + 0.5 * p["common_semantic"]
    assert torch.allclose(parts.total, want)
    assert all(float(v) >= 0 for v in p.values())


def test_gradient_reversal_flips_the_generators_gradient_only():
    """L_C trains D to recognise the modality of C and pushes G (through the GRL) the other way."""
    grads = {}
    for coeff in (1.0, -1.0):  # -1: the reversal undone
        model, spec = _small(ALIGNED, f"grl_coeff={coeff}", "dropout=0.0", "private_dropout=0.0",
                             "common_dropout=0.0", "discriminator_dropout=0.0")
        batch = tiny_batch(spec)
        model.zero_grad()
        model.loss(batch, model(batch)).parts["adv_common"].backward()
        grads[coeff] = (model.amr.common[0].weight.grad.clone(), model.amr.discriminator[0].weight.grad.clone())
    (g_rev, d_rev), (g_plain, d_plain) = grads[1.0], grads[-1.0]
    assert g_rev.abs().sum() > 0
    assert torch.allclose(g_rev, -g_plain, atol=1e-7)
    assert torch.allclose(d_rev, d_plain, atol=1e-7)


def test_private_adversarial_loss_has_no_reversal():
    model, spec = _small(ALIGNED, "dropout=0.0", "private_dropout=0.0", "discriminator_dropout=0.0")
    batch = tiny_batch(spec)
    loss = model.loss(batch, model(batch)).parts["adv_private"]
    loss.backward()
    w = model.amr.private["text"][0].weight
    g = w.grad.clone()
    with torch.no_grad():  # a small step along -grad lowers L_P: the extractor helps D
        w -= 1e-2 * g / g.norm()
        after = model.loss(batch, model(batch)).parts["adv_private"]
    assert after < loss


def test_orthogonality_is_squared_frobenius_norm_and_zero_for_orthogonal_features():
    c = torch.randn(2, 5, 8)
    p = torch.randn(2, 5, 8)
    want = torch.linalg.matrix_norm(c @ p.transpose(1, 2)).pow(2).mean()
    assert torch.allclose(Tailor._orthogonality(c, p), want)
    c_half = torch.cat([torch.randn(2, 5, 4), torch.zeros(2, 5, 4)], -1)
    p_half = torch.cat([torch.zeros(2, 5, 4), torch.randn(2, 5, 4)], -1)
    assert float(Tailor._orthogonality(c_half, p_half)) == 0.0


def test_orthogonality_private_pairs_add_to_the_term():
    base, spec = _small()
    more, _ = _small(ALIGNED, "orthogonality_private_pairs=true")
    batch = tiny_batch(spec)
    base.eval(), more.eval()
    with torch.no_grad():
        a = base.loss(batch, base(batch)).parts["orthogonality"]
        b = more.loss(batch, more(batch)).parts["orthogonality"]
    assert b > a


def test_common_classifier_inputs():
    model, spec = _small()
    out = model(tiny_batch(spec))
    assert sorted(k for k in out.aux if k.startswith("common_logits_")) == [
        "common_logits_audio", "common_logits_text", "common_logits_vision"]
    model, spec = _small(ALIGNED, "common_classifier_input=summed_first_step")
    out = model(tiny_batch(spec))
    assert [k for k in out.aux if k.startswith("common_logits_")] == ["common_logits_sum"]


@pytest.mark.parametrize("dataset", [ALIGNED, UNALIGNED])
def test_padded_steps_change_nothing(dataset):
    model, spec = _small(dataset)
    assert_padding_ignored(model, spec)


def test_unaligned_input_is_aligned_to_the_text_and_adds_ctc():
    model, spec = _small(UNALIGNED)
    assert sorted(model.aligners) == ["audio", "vision"]
    batch = tiny_batch(spec)
    out = model(batch)
    assert out.aux["common_audio"].shape[1] == spec.modalities["text"].length
    parts = model.loss(batch, out).parts
    assert "ctc" in parts and torch.isfinite(parts["ctc"]) and parts["ctc"] > 0
    aligned, _ = _small()
    assert len(aligned.aligners) == 0
    assert "ctc" not in aligned.loss(tiny_batch(_small()[1]), aligned(tiny_batch(_small()[1]))).parts


def test_ctc_loss_prefers_monotone_alignments():
    """A predictor that emits positions 1..T in order (blanks between) scores far better than a uniform one."""
    t_len, src = 4, 12
    mask_src = torch.ones(1, src, dtype=torch.bool)
    mask_tgt = torch.ones(1, t_len, dtype=torch.bool)
    good = torch.full((1, src, t_len + 1), -10.0)
    for i in range(src):
        good[0, i, 1 + min(i // 3, t_len - 1)] = 10.0
    uniform = torch.zeros(1, src, t_len + 1)
    assert ctc_alignment_loss(good, mask_src, mask_tgt) < 0.1 < ctc_alignment_loss(uniform, mask_src, mask_tgt)


# -- each Table 3 switch ----------------------------------------------------------------------


def _parts(dataset=ALIGNED, *overrides):
    model, spec = _small(dataset, *overrides)
    batch = tiny_batch(spec)
    return set(model.loss(batch, model(batch)).parts), count_parameters(model)


def test_amr_losses_switch_rows_1_2_3():
    full, n_full = _parts()
    no_cml, n_no_cml = _parts(ALIGNED, "amr_losses=adv_diff")
    adv, n_adv = _parts(ALIGNED, "amr_losses=adv")
    none, n_none = _parts(ALIGNED, "amr_losses=none")
    assert full - no_cml == {"common_semantic"}
    assert no_cml - adv == {"orthogonality"}
    assert none == {"task"}
    assert n_full > n_no_cml == n_adv > n_none  # the common classifier, then the discriminator, go


def test_representations_switch_rows_4_5():
    full, _ = _small()
    common, spec = _small(ALIGNED, "representations=common")
    private, _ = _small(ALIGNED, "representations=private")
    assert len(full.cross) == 3 and len(common.cross) == len(private.cross) == 2
    batch = tiny_batch(spec)
    torch.manual_seed(0)
    common.eval(), private.eval()
    with torch.no_grad():
        assert not torch.allclose(common(batch).scores, private(batch).scores)


def test_fusion_order_switch_rows_6_7():
    outs = []
    for order in ("vatc", "vtac", "atvc"):
        model, spec = _small(ALIGNED, f"fusion_order={order}")
        model.eval()
        with torch.no_grad():
            outs.append(model(tiny_batch(spec)).scores)
        assert count_parameters(model) == count_parameters(_small()[0])
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    with pytest.raises(MmerbenchError, match="fusion_order"):
        _small(ALIGNED, "fusion_order=vatt")


def test_modality_token_embedding_switch_row_8():
    full, _ = _small()
    no_mte, _ = _small(ALIGNED, "modality_token_embedding=false")
    d = 32  # the small preset's d_model
    assert count_parameters(full) - count_parameters(no_mte) == 3 * 2 * d
    assert all(cme.token_types is None for cme in no_mte.cross)


def test_label_decoder_switches_rows_9_10_11():
    full, spec = _small()
    identical, _ = _small(ALIGNED, "label_decoder=identical")
    le, _ = _small(ALIGNED, "label_correlations=false", "label_modal_attention=false")
    le_lc, _ = _small(ALIGNED, "label_modal_attention=false")
    assert identical.decoder is None and identical.identical is not None
    assert le.decoder.self_attn is None and le.decoder.cross_attn is None
    assert le_lc.decoder.self_attn is not None and le_lc.decoder.cross_attn is None
    assert full.decoder.self_attn is not None and full.decoder.cross_attn is not None
    sizes = [count_parameters(m) for m in (le, le_lc, full)]
    assert sizes[0] < sizes[1] < sizes[2]
    for model in (identical, le, le_lc):
        batch = tiny_batch(spec)
        out = model(batch)
        assert out.scores.shape == (3, spec.num_labels)
        model.loss(batch, out).total.backward()
        assert all(p.grad is not None for p in model.parameters())


# -- (c) end to end ------------------------------------------------------------------------------


def test_end_to_end_run_logs_named_loss_parts(tmp_path):
    [res] = run(RunRequest(method="tailor", dataset=ALIGNED, preset="small", epochs=1, scale=0.01, device="cpu",
                           progress=False, data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs")))
    assert (res.folder / "metrics.json").is_file()
    history = json.loads((res.folder / "history.json").read_text())
    assert len(history) == 1
    for part in ("task", "adv_common", "adv_private", "orthogonality", "common_semantic"):
        assert part in history[0]["train_loss"]
    metrics = json.loads((res.folder / "metrics.json").read_text())
    assert metrics["decision"]["threshold"] == 0.5


# -- (d) slow: better than BR on the aligned twin -------------------------------------------------


@pytest.mark.slow
def test_beats_binary_relevance_on_the_aligned_twin(tmp_path):
    common = dict(dataset=ALIGNED, scale=0.2, device="cpu", progress=False,
                  data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    [br] = run(RunRequest(method="br", **common))
    # The small preset (d = 32, lr 3e-3): it leaves the label-marginal plateau after ~7 epochs.
    [tailor] = run(RunRequest(method="tailor", preset="small", epochs=12, **common))
    f_br, f_tailor = br.metrics["test"]["micro_f1"], tailor.metrics["test"]["micro_f1"]
    print(f"test micro-F1: TAILOR {f_tailor:.4f}, BR {f_br:.4f}")
    assert f_tailor > f_br


def test_cme_argument_order_code_swaps_all_but_the_last_cme():
    """`cme_argument_order: code` (the authors' CME(P^a, P^v), CME(P^t, Z^va)) keeps every parameter and
    changes the scores only through positions and token types: without token types and with position
    tables of zero, the two orders give the same scores (attention is order-blind)."""
    paper, spec = build("tailor", "mosei-aligned", preset="small")
    code, _ = build("tailor", "mosei-aligned", preset="small", overrides=["cme_argument_order=code"])
    code.load_state_dict(paper.state_dict())
    paper.eval(), code.eval()
    batch = tiny_batch(spec)
    with torch.no_grad():
        assert not torch.allclose(paper(batch).scores, code(batch).scores, atol=1e-4)
        for model in (paper, code):
            for cme in model.cross:
                cme.positions.weight.zero_()
                cme.token_types.weight.zero_()
        assert torch.allclose(paper(batch).scores, code(batch).scores, atol=1e-5)
    with pytest.raises(MmerbenchError, match="cme_argument_order"):
        build("tailor", "mosei-aligned", preset="small", overrides=["cme_argument_order=backwards"])
