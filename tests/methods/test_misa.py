"""MISA: pinned size, the CMD and difference losses, the utterance LSTM's padding handling,
the ablation switches, the authors' reload-best schedule, an end-to-end run, and (slow) BR."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
import torch

from mmerbench.data.registry import get_entry
from mmerbench.registry import get_method
from mmerbench.runner import RunRequest, run
from mmerbench.methods.misa import ReloadBestOnPlateau, UtteranceLSTM, cmd, difference_loss, reverse_valid

from methods.helpers import build, count_parameters, params_for, tiny_batch

ALIGNED, UNALIGNED = "synth-mosei-aligned", "synth-mosei-unaligned"


# -- (a) the paper config's size ------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["mosei-aligned", "mosei-unaligned"])
def test_paper_config_parameter_count(dataset):
    # Same for both settings: the LSTMs' sizes depend on the feature widths, not the lengths.
    model, _ = build("misa", dataset)
    assert count_parameters(model) == 5_099_538


def test_paper_config_structure():
    model, spec = build("misa", "mosei-aligned")
    text = model.encoder["text"]
    assert text.hidden == 300 and text.out_dim == 1200  # hidden = input size; 4 final states
    assert model.encoder["audio"].hidden == 74 and model.encoder["vision"].hidden == 35
    assert model.project["text"][0].in_features == 1200 and model.project["text"][0].out_features == 128
    assert [model.head[0].in_features, model.head[0].out_features, model.head[3].out_features] == [768, 384, 6]
    assert model.head[1].p == 0.5
    assert model.fusion.attn.heads == 2 and model.fusion.ff1.out_features == 2048 and not model.fusion.norm_first
    assert model.discriminator is None
    p = model.hparams
    assert (p["lr"], p["batch_size"], p["grad_clip"], p["select"]) == (1e-4, 16, 1.0, "loss")
    assert (p["diff_weight"], p["sim_weight"], p["recon_weight"], p["cmd_moments"]) == (0.3, 1.0, 1.0, 5)


# -- (b) the losses ---------------------------------------------------------------------------
def test_cmd_is_zero_for_identical_and_positive_for_shifted_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 16, generator=g)
    assert cmd(x, x.clone()).item() == 0.0
    assert cmd(x, x + 0.2).item() == pytest.approx(0.2 * 16 ** 0.5, rel=1e-5)  # only the mean moves
    assert cmd(x, x ** 2).item() > 0.0  # a different shape: higher moments differ too
    assert cmd(x, torch.rand(32, 16, generator=g)).item() > 0.0


def test_cmd_has_a_finite_gradient_for_one_sample():
    # One sample: every centred moment is 0 on both sides; the authors' sqrt gives NaN here.
    x = torch.rand(1, 8, requires_grad=True)
    cmd(x, torch.rand(1, 8)).backward()
    assert torch.isfinite(x.grad).all()


def test_difference_loss_is_zero_for_orthogonal_and_positive_for_equal_vectors():
    g = torch.Generator().manual_seed(1)
    # Shared varies only over samples 0-1, private only over samples 2-3 (both zero-mean
    # over the batch): every shared feature column is orthogonal to every private one.
    u, v = torch.tensor([1.0, -1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 2.0, -2.0])
    shared = u[:, None] * torch.rand(1, 16, generator=g)
    private = v[:, None] * torch.rand(1, 16, generator=g)
    assert difference_loss(shared, private).item() == pytest.approx(0.0, abs=1e-12)
    h = torch.rand(8, 16, generator=g)
    assert difference_loss(h, h).item() > 0.0
    assert difference_loss(shared, private + 0.3).item() == pytest.approx(0.0, abs=1e-12)  # a constant is removed



@pytest.mark.parametrize("detach_norm", [False, True])
def test_difference_loss_gradient_along_the_rows(detach_norm):
    # L is a degree-2 homogeneous function of the normalised rows Â, so by Euler's theorem
    # Σ_i <∂L/∂A_i, A_i - mean> = 2L when the norms are constants to autograd (the authors' code:
    # every step shortens the rows), and 0 when they are in the graph (the loss is scale-free).
    g = torch.Generator().manual_seed(3)
    a = torch.randn(16, 8, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(16, 8, generator=g, dtype=torch.float64)
    loss = difference_loss(a, b, detach_norm=detach_norm)
    (grad,) = torch.autograd.grad(loss, a)
    radial = (grad * (a - a.mean(0))).sum().item()
    want = 2 * loss.item() if detach_norm else 0.0
    assert loss.item() > 1e-3
    assert radial == pytest.approx(want, rel=1e-4, abs=1e-4 * loss.item())  # float32 inside


def _recon_grad(model, batch, out, detach):
    model.detach_recon_target = detach
    part = model.loss(batch, out).parts["reconstruction"]
    (grad,) = torch.autograd.grad(part, out.aux["utterance.text"], retain_graph=True)
    return grad


def test_recon_target_is_a_constant_unless_attached():
    model, spec = build("misa", ALIGNED, preset="small")
    model.eval()
    batch = tiny_batch(spec, batch_size=4)
    out = model(batch)
    assert model.detach_recon_target  # the default: u_m is the paper's fixed target
    # Attaching the target adds exactly the gradient of the MSE through its target,
    # -2 (recon - u) / numel, averaged over the three modalities.
    u, r = out.aux["utterance.text"], out.aux["recon.text"]
    extra = _recon_grad(model, batch, out, False) - _recon_grad(model, batch, out, True)
    torch.testing.assert_close(extra, -2 * (r - u).detach() / u.numel() / 3)


def test_aux_warmup_trains_on_the_task_alone_then_adds_the_auxiliary_losses():
    model, spec = build("misa", ALIGNED, preset="small", overrides=("aux_warmup=2", "patience=null"))
    opt = model.configure_optimizer(steps_per_epoch=3, epochs=4).optimizer
    batch = tiny_batch(spec, batch_size=4)
    totals = []
    for _ in range(7):
        lp = model.training_step(batch, opt)
        totals.append((lp.total.item(), lp.parts))
        if len(totals) == 6:  # the last warm-up step: the reconstruction layers got no gradient, not a zero one
            assert all(p.grad is None for p in model.recon.parameters())
            assert all(p not in opt.state for p in model.recon.parameters())  # Adam has not counted a step
    for total, parts in totals[:6]:  # two epochs of three steps: the task alone, parts still logged
        assert total == pytest.approx(parts["task"].item()) and {"cmd", "difference", "reconstruction"} <= set(parts)
    total, parts = totals[6]
    w = 0.3 * parts["difference"] + 1.0 * parts["cmd"] + 1.0 * parts["reconstruction"]
    assert total == pytest.approx((parts["task"] + w).item()) and w.item() > 0
    assert int(model.state_dict()["aux_steps"]) == 7  # in the checkpoint: a resumed run keeps its place
    assert all(p.grad is not None for p in model.recon.parameters())


def test_validation_scores_the_full_objective_during_the_warmup():
    # With `eval_loss: total` the schedule and the selection compare validation losses across epochs,
    # so the warm-up (a training-only switch) must not change what validation measures.
    model, spec = build("misa", ALIGNED, preset="small", overrides=("aux_warmup=2", "eval_loss=total"))
    model.configure_optimizer(steps_per_epoch=3, epochs=4)
    batch = tiny_batch(spec, batch_size=4)
    model.eval()
    with torch.no_grad():
        lp = model.loss(batch, model(batch))
    p = lp.parts
    torch.testing.assert_close(lp.total, p["task"] + 0.3 * p["difference"] + p["cmd"] + p["reconstruction"])


@pytest.mark.parametrize("key, value", [("diff_norm", "maybe"), ("recon_target", "live"), ("aux_warmup", "-1")])
def test_gradient_flow_switches_reject_unknown_values(key, value):
    with pytest.raises(ValueError, match=key):
        build("misa", ALIGNED, preset="small", overrides=(f"{key}={value}",))

# -- (b) the utterance encoder ---------------------------------------------------------------
def _lengths_batch(dim=5, length=9):
    g = torch.Generator().manual_seed(2)
    lengths = torch.tensor([9, 4, 1, 6])
    mask = torch.arange(length)[None, :] < lengths[:, None]
    x = torch.randn(4, length, dim, generator=g) * mask[..., None]
    return x, mask, lengths


def test_reverse_valid_reverses_only_the_real_steps():
    x, _, lengths = _lengths_batch(dim=1)
    steps = torch.arange(9.0)[None, :, None].expand(4, 9, 1)
    r = reverse_valid(steps, lengths)[..., 0]
    assert r[1].tolist() == [3, 2, 1, 0, 4, 5, 6, 7, 8]
    assert r[2].tolist() == list(range(9))
    assert torch.equal(reverse_valid(reverse_valid(x, lengths), lengths), x)


def test_packed_and_padded_encoders_agree_with_a_packed_bidirectional_lstm():
    """Both paddings give the authors' sLSTM → LayerNorm → LSTM on packed sequences."""
    x, mask, lengths = _lengths_batch()
    torch.manual_seed(0)
    enc = UtteranceLSTM(5, 3, packing="packed").eval()
    got_packed = enc(x, mask)
    enc.packing = "padded"
    got_padded = enc(x, mask)
    torch.testing.assert_close(got_packed, got_padded, rtol=1e-5, atol=1e-6)

    # A reference: nn.LSTM(bidirectional=True) with the same weights, packed as the authors.
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def bi(f, b, d_in):
        ref = torch.nn.LSTM(d_in, 3, bidirectional=True, batch_first=True)
        with torch.no_grad():
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(ref, name).copy_(getattr(f.rnn, name))
                getattr(ref, name + "_reverse").copy_(getattr(b.rnn, name))
        return ref

    r1, r2 = bi(enc.fwd1, enc.bwd1, 5), bi(enc.fwd2, enc.bwd2, 6)
    pack = lambda t: pack_padded_sequence(t, lengths, batch_first=True, enforce_sorted=False)  # noqa: E731
    o1, (h1, _) = r1(pack(x))
    o1, _ = pad_packed_sequence(o1, batch_first=True, total_length=9)
    _, (h2, _) = r2(pack(enc.norm(o1)))
    want = torch.cat((h1, h2), dim=2).transpose(0, 1).reshape(4, -1)  # the authors' [h1→, h2→, h1←, h2←]
    torch.testing.assert_close(got_packed, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dataset", [ALIGNED, UNALIGNED])
def test_padded_steps_do_not_change_the_output(dataset):
    model, spec = build("misa", dataset, preset="small")
    model.eval()
    batch = tiny_batch(spec)
    with torch.no_grad():
        a = model(batch).scores
        for m in batch.inputs:
            batch.inputs[m] = batch.inputs[m] + 5.0 * (~batch.masks[m])[..., None]
        b = model(batch).scores
    torch.testing.assert_close(a, b)


# -- (b) loss parts and ablation switches ------------------------------------------------------
def _parts(overrides=(), dataset=ALIGNED, train=True):
    model, spec = build("misa", dataset, preset="small", overrides=overrides)
    model.train(train)
    batch = tiny_batch(spec, batch_size=4)
    out = model(batch)
    return model, model.loss(batch, out)


def test_loss_has_the_four_named_parts_weighted_as_the_paper():
    _, lp = _parts()
    assert set(lp.parts) == {"task", "difference", "cmd", "reconstruction"}
    p = lp.parts
    want = p["task"] + 0.3 * p["difference"] + 1.0 * p["cmd"] + 1.0 * p["reconstruction"]
    torch.testing.assert_close(lp.total, want)
    assert all(v.item() > 0 for v in p.values())


@pytest.mark.parametrize("key, part", [("diff_weight", "difference"), ("sim_weight", "cmd"),
                                       ("recon_weight", "reconstruction")])
def test_zero_weight_removes_its_loss_part(key, part):
    _, lp = _parts((f"{key}=0",))
    assert part not in lp.parts and "task" in lp.parts


def test_adversarial_similarity_adds_a_discriminator_and_its_part():
    base, _ = _parts()
    model, lp = _parts(("similarity=adversarial",))
    assert "adversarial" in lp.parts and "cmd" not in lp.parts
    assert count_parameters(model) - count_parameters(base) == (64 * 64 + 64) + (64 * 3 + 3)
    lp.total.backward()
    assert model.discriminator[0].weight.grad is not None and lp.parts["adversarial"].item() > 0


def test_adversarial_similarity_reverses_the_gradient_into_the_shared_encoder():
    model, spec = build("misa", ALIGNED, preset="small", overrides=("similarity=adversarial",))
    model.eval()  # no dropout in the discriminator
    batch = tiny_batch(spec, batch_size=4)
    out = model(batch)
    w = model.shared[0].weight
    (through_grl,) = torch.autograd.grad(model.loss(batch, out).parts["adversarial"], w, retain_graph=True)
    shared = torch.cat([out.aux[f"shared.{m}"] for m in model.modalities])
    target = torch.arange(3).repeat_interleave(4)
    (plain,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model.discriminator(shared), target), w)
    torch.testing.assert_close(through_grl, -plain)


def test_modality_subset_drops_its_encoder_and_narrows_the_fusion():
    model, lp = _parts(("modalities=[audio, vision]",))
    assert set(model.encoder) == {"audio", "vision"} and model.head[0].in_features == 4 * 64
    assert set(lp.parts) == {"task", "difference", "cmd", "reconstruction"}
    single, lp1 = _parts(("modalities=[text]",))
    assert single.head[0].in_features == 2 * 64 and "cmd" not in lp1.parts


def test_eval_loss_is_the_task_loss_as_the_authors_select_on():
    _, lp = _parts(train=False)
    assert torch.equal(lp.total, lp.parts["task"]) and "cmd" in lp.parts
    _, lp_total = _parts(("eval_loss=total",), train=False)
    assert lp_total.total.item() > lp_total.parts["task"].item()


def test_regression_task_loss_is_mse():
    reg = replace(get_entry(ALIGNED).spec, task="regression")
    torch.manual_seed(0)
    model = get_method("misa")(reg, **params_for("misa", ALIGNED, preset="small"))
    batch = tiny_batch(reg)
    out = model(batch)
    want = torch.nn.functional.mse_loss(out.scores.reshape(-1), batch.labels)
    torch.testing.assert_close(model.loss(batch, out).parts["task"], want)


# -- (b) the authors' schedule ----------------------------------------------------------------
def test_reload_best_then_decay_then_stop():
    model, spec = build("misa", ALIGNED, preset="small", overrides=("trials=2", "lr=1e-4"))
    setup = model.configure_optimizer(steps_per_epoch=1, epochs=30)
    sched, opt = setup.scheduler, setup.optimizer
    assert isinstance(sched, ReloadBestOnPlateau) and setup.interval == "epoch"
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)  # the runner passes it the valid loss
    sched.step(1.0)  # best: snapshot
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.aux_steps.fill_(7)  # steps taken since the snapshot
    for _ in range(6):  # patience 6: six worse epochs keep going
        sched.step(2.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4) and not sched.stopped
    sched.step(2.0)  # the seventh: reload the best weights, halve the lr
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-5) and not sched.stopped
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items() if k != "aux_steps")
    assert int(model.aux_steps) == 7  # a reload does not rewind the step count (nor restart a warm-up)
    for _ in range(7):  # second trial used: the authors' early stop → lr 0
        sched.step(2.0)
    assert sched.stopped and opt.param_groups[0]["lr"] == 0.0

    # The state (with its snapshot) survives the runner's checkpoint (weights_only load).
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh, _ = build("misa", ALIGNED, preset="small", overrides=("trials=2",))
    s2 = fresh.configure_optimizer(1, 30).scheduler
    s2.load_state_dict(state)
    assert s2.stopped and s2.model is fresh


def test_after_the_stop_a_training_step_changes_nothing():
    model, spec = build("misa", ALIGNED, preset="small", overrides=("trials=1", "patience=0"))
    setup = model.configure_optimizer(1, 5)
    setup.scheduler.step(1.0)
    setup.scheduler.step(2.0)
    assert setup.scheduler.stopped
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parts = model.training_step(tiny_batch(spec), setup.optimizer)
    assert "task" in parts.parts
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_no_schedule_when_patience_is_null():
    model, _ = build("misa", ALIGNED, preset="small", overrides=("patience=null",))
    assert model.configure_optimizer(1, 5).scheduler is None


# -- (c) end to end -----------------------------------------------------------------------------
def test_end_to_end_run(tmp_path):
    (res,) = run(RunRequest(method="misa", dataset=ALIGNED, preset="small", epochs=1, scale=0.01, device="cpu",
                            progress=False, data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs")))
    hist = json.loads((res.folder / "history.json").read_text())
    assert len(hist) == 1
    assert {"task", "difference", "cmd", "reconstruction"} <= set(hist[0]["train_loss"])
    m = json.loads((res.folder / "metrics.json").read_text())
    assert 0.0 <= m["test"]["micro_f1"] <= 1.0



def test_resume_after_kill_inside_the_warmup_continues_it(tmp_path):
    # Killed after epoch 0 of a 1-epoch warm-up: the resumed run must add the auxiliary losses in
    # epoch 1 exactly as an uninterrupted run does (the step count comes back from the checkpoint).
    common = dict(method="misa", dataset=ALIGNED, preset="small", epochs=2, scale=0.01, device="cpu",
                  overrides=("aux_warmup=1",), progress=False, data_dir=str(tmp_path / "data"))
    script = textwrap.dedent(f"""
        import os
        from mmerbench.runner import RunRequest, run
        def kill(epoch, record):
            if epoch == 0:
                os._exit(137)
        run(RunRequest(runs_dir={str(tmp_path / "killed")!r}, **{common!r}), on_epoch_end=kill)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    (resumed,) = run(RunRequest(runs_dir=str(tmp_path / "killed"), **common))
    (clean,) = run(RunRequest(runs_dir=str(tmp_path / "clean"), **common))
    assert resumed.status == "resumed" and resumed.metrics == clean.metrics
    hist = [json.loads((r.folder / "history.json").read_text()) for r in (resumed, clean)]
    # Epoch 0 of the killed run was trained in another process: its float32 loss sums may differ in
    # the last bit (vectorised kernels take alignment-dependent paths), so the history is compared to
    # 1e-6; the selected model's metrics above are exact.
    assert [set(h["train_loss"]) for h in hist[0]] == [set(h["train_loss"]) for h in hist[1]]
    for mine, theirs in zip(hist[0], hist[1]):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6, abs=0)
    first, second = hist[1][0]["train_loss"], hist[1][1]["train_loss"]
    assert first["total"] == pytest.approx(first["task"]) and second["total"] > second["task"]

# -- (d) slow: beats BR on the aligned twin -------------------------------------------------------
# The small preset (12 epochs, the first 4 on the task alone, scale 0.2) on this 2-core CPU, about a
# minute; test micro-F1 with the authors' selection (lowest validation loss): seed 1 0.591, seed 2 0.590,
# seed 3 0.546 vs BR 0.534. With the authors' gradient flow (diff_norm detached, recon_target attached)
# the same run collapses once the auxiliary losses join (0.510, the epoch picked before they did);
# without the warm-up it predicts the label priors (0.450). See methods/misa.py, choices 15-17.
@pytest.mark.slow
def test_beats_br_on_the_aligned_twin(tmp_path):
    common = dict(dataset=ALIGNED, scale=0.2, device="cpu", progress=False,
                  data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    (br,) = run(RunRequest(method="br", **common))
    (misa,) = run(RunRequest(method="misa", preset="small", **common))
    br_f1, misa_f1 = br.metrics["test"]["micro_f1"], misa.metrics["test"]["micro_f1"]
    print(f"micro-F1 on {ALIGNED} (scale 0.2): MISA {misa_f1:.4f}, BR {br_f1:.4f}")
    assert misa_f1 > br_f1


def test_bf16_autocast_runs_the_lstms_in_float32():
    model, spec = build("misa", ALIGNED, preset="small")
    batch = tiny_batch(spec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
        parts = model.loss(batch, out)
        u = model.encoder["text"](batch.inputs["text"], batch.masks["text"])
    assert u.dtype == torch.float32 and out.scores.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in parts.parts.values())
    parts.total.backward()
