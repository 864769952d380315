"""CARAT-specific tests: pinned sizes, the supervised contrastive loss against a direct reference,
prototypes, the queue as checkpointed state, shuffled aggregation, switches, an M3ED-shaped spec,
an end-to-end run with the authors' threshold, and (slow) BR beaten."""

from __future__ import annotations

import copy
import functools
import json
import math

import pytest
import torch

from mmerbench.errors import MmerbenchError
from mmerbench.methods.carat import Carat, momentum_prototypes, supervised_contrastive_loss
from mmerbench.runner import RunRequest, parameter_count, run

from methods.helpers import assert_padding_ignored, build, tiny_batch

ALIGNED, UNALIGNED = "synth-mosei-aligned", "synth-mosei-unaligned"

M3ED = "synth-m3ed"  # 7 labels; text 50, audio 150, vision 50 steps


def _small(dataset=ALIGNED, *overrides, seed=0):
    return build("carat", dataset, preset="small", overrides=overrides, seed=seed)


# -- (a) the paper config's size ---------------------------------------------------------------------


def test_paper_config_parameter_count():
    # A BERT layer (d 256, FFN 256): attention 4·(256²+256) + FFN 2·(256²+256) + 2 LayerNorms = 395,776.
    # Encoders: Linear(in, 256) + 60 positions·256 + LayerNorm + layers:
    #   text 300·256+256 + 15,360 + 512 + 6·395,776 = 2,467,584; audio (74, 4 layers) 1,618,176;
    #   vision (35, 4 layers) 1,608,192. Input LayerNorms 2·(300+74+35) = 818.
    # Per modality: label attention 256·6 = 1,536; projector 256→128→64 = 41,152; decoder 64→128→256 =
    #   41,344; fusion Linear(768, 256) = 196,864; classifier 6·256 = 1,536 → 282,432 · 3 = 847,296.
    # Aggregator Linear(1536, 256) + Linear(256, 6) = 395,014.
    want = 2_467_584 + 1_618_176 + 1_608_192 + 818 + 847_296 + 395_014
    assert parameter_count("carat", "mosei-aligned") == want == 6_937_080
    # Unaligned: audio and vision keep 500 steps, so their position tables grow by 440 rows each.
    assert parameter_count("carat", "mosei-unaligned") == want + 2 * 440 * 256


def test_paper_config_parameter_count_m3ed():
    # Encoders: text as MOSEI 2,467,584; audio 130·256+256 + 150 positions·256 + 512 + 4 layers = 1,655,552;
    #   vision 342·256+256 + 60·256 + 512 + 4 layers = 1,686,784; input LayerNorms 2·(300+130+342) = 1,544.
    # Per modality with 7 labels: 1,792 + 41,152 + 41,344 + 196,864 + 1,792 = 282,944 (· 3 = 848,832).
    # Aggregator Linear(7·256, 256) + Linear(256, 7) = 460,807.
    want = 2_467_584 + 1_655_552 + 1_686_784 + 1_544 + 848_832 + 460_807
    assert parameter_count("carat", "m3ed") == want == 7_121_103


# -- (b) the supervised contrastive loss ---------------------------------------------------------------


def _supcon_reference(anchors, anchor_labels, others, other_labels, t, tb):
    """Khosla et al.'s formula, one anchor at a time, straight from the definition."""
    contrast = torch.cat([anchors, others])
    labels = torch.cat([anchor_labels, other_labels])
    losses = []
    for i in range(len(anchors)):
        keep = [j for j in range(len(contrast)) if j != i and labels[j] >= 0]
        denom = sum(math.exp(float(anchors[i] @ contrast[j]) / t) for j in keep)
        pos = [j for j in keep if labels[j] == anchor_labels[i]]
        if pos:
            losses.append(-(t / tb) * sum(float(anchors[i] @ contrast[p]) / t - math.log(denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def test_supervised_contrastive_loss_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(7, 5, generator=g), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=-1)
    la = torch.tensor([0, 1, 0, 2, 1, 3, 0])  # label 3 has no other member: that anchor is skipped
    lq = torch.tensor([1, -1, 2, -1, 0, 4])  # -1: empty queue slots, left out entirely
    for t, tb in ((0.07, 0.07), (0.5, 0.07)):
        got = supervised_contrastive_loss(a, la, q, lq, t, tb)
        assert float(got) == pytest.approx(_supcon_reference(a, la, q, lq, t, tb), rel=1e-5)


def test_supervised_contrastive_loss_rewards_clustered_classes():
    la = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]])
    empty = torch.zeros(0, 2)
    none = torch.zeros(0, dtype=torch.long)
    assert supervised_contrastive_loss(clustered, la, empty, none) < 0.01 < \
        supervised_contrastive_loss(mixed, la, empty, none)
    assert float(supervised_contrastive_loss(clustered, torch.arange(4), empty, none)) == 0.0  # no positive


def test_contrastive_classes_separate_modality_label_and_polarity():
    model, _ = _small()
    y = torch.tensor([[1.0, 0, 0, 0, 0, 1]])
    cls = model.contrastive_labels(y)[0]  # [M, C]
    c = 6
    assert cls[0].tolist() == [0, 1 + c, 2 + c, 3 + c, 4 + c, 5]  # first modality: present j, absent j + C
    assert cls[1, 0] == 2 * c and cls[2, 0] == 4 * c  # other modalities get their own classes
    assert len(set(model.contrastive_labels(torch.tensor([[1.0] * 6, [0.0] * 6])).flatten().tolist())) == 36


# -- (c) prototypes and the queue -------------------------------------------------------------------------


def test_momentum_prototypes_equal_the_sequential_update():
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(4, 3, generator=g)
    feats = torch.randn(6, 4, 3, generator=g)
    select = torch.rand(6, 4, generator=g) < 0.5
    select[:, 0] = False  # a prototype no sample updates stays as it is
    want = protos.clone()
    for b in range(6):
        for c in range(4):
            if select[b, c]:
                want[c] = 0.9 * want[c] + 0.1 * feats[b, c]
    got = momentum_prototypes(protos, feats, select, 0.9)
    assert torch.allclose(got, want, atol=1e-6) and torch.equal(got[0], protos[0])


def _train_steps(model, spec, n, opt=None, seed=0):
    opt = opt or model.configure_optimizer(10, 1).optimizer
    model.train()
    for i in range(n):
        torch.manual_seed(100 + i)
        model.training_step(tiny_batch(spec, seed=seed + i), opt)
    return opt


def test_training_step_fills_the_queue_as_a_ring_and_moves_the_prototypes():
    model, spec = _small(ALIGNED, "queue_size=200")
    per_batch = 3 * 3 * 3 * 6  # B · 3 latents · M · C = 162
    _train_steps(model, spec, 1)
    assert int(model.queue_ptr) == per_batch and int((model.queue_label >= 0).sum()) == per_batch
    assert torch.allclose(model.queue[:per_batch].norm(dim=1), torch.ones(per_batch), atol=1e-5)
    assert model.pos_protos.abs().sum() > 0 and model.neg_protos.abs().sum() > 0
    _train_steps(model, spec, 1, seed=1)
    assert int(model.queue_ptr) == (2 * per_batch) % 200 and bool((model.queue_label >= 0).all())


def test_scoring_changes_no_state():
    model, spec = _small()
    _train_steps(model, spec, 1)
    state = copy.deepcopy(model.state_dict())
    model.eval()
    with torch.no_grad():
        batch = tiny_batch(spec, seed=3)
        model.loss(batch, model(batch))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_queue_and_prototypes_survive_checkpoint_and_resume():
    """Train 3 steps straight, or 1 step → state_dict → fresh model → 2 steps: bit-identical."""
    straight, spec = _small()
    _train_steps(straight, spec, 3)
    first, _ = _small()
    opt = _train_steps(first, spec, 1)
    saved = {"model": copy.deepcopy(first.state_dict()), "optimizer": copy.deepcopy(opt.state_dict())}
    assert {"queue", "queue_label", "queue_ptr", "pos_protos", "neg_protos"} <= set(saved["model"])
    resumed, _ = _small(ALIGNED, seed=9)  # other initial weights, empty queue: everything must come from the file
    resumed.load_state_dict(saved["model"])
    opt2 = resumed.configure_optimizer(10, 1).optimizer
    opt2.load_state_dict(saved["optimizer"])
    model = resumed
    model.train()
    for i in range(1, 3):
        torch.manual_seed(100 + i)
        model.training_step(tiny_batch(spec, seed=i), opt2)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_fill_uses_the_prototype_mixture_in_training_and_the_nearer_one_in_inference():
    model, _ = _small()
    c, p = 6, 16
    model.pos_protos.copy_(torch.nn.functional.normalize(torch.randn(3, c, p), dim=-1))
    model.neg_protos.copy_(-model.pos_protos)
    z = model.pos_protos[None] * 2.0 + 0.01  # near the positive prototypes
    model.eval()
    assert torch.allclose(model._fill(z), model.pos_protos[None].expand_as(z))
    model.train()
    fill = model._fill(z)
    sim = torch.einsum("bmcp,mcp->bmc", torch.nn.functional.normalize(z, dim=-1), model.pos_protos)
    w = torch.sigmoid(2 * sim)[..., None]  # softmax over (sim, −sim)
    assert torch.allclose(fill, w * model.pos_protos + (1 - w) * model.neg_protos, atol=1e-6)


# -- (d) aggregation, switches, shapes ---------------------------------------------------------------------


def test_shuffle_indices_permute_samples_and_modalities():
    torch.manual_seed(0)
    sample, modality = Carat._shuffle_indices(5, 3, 6, "cpu")
    assert sample.shape == modality.shape == (5, 3, 6)
    for m in range(3):
        for c in range(6):
            assert sorted(sample[:, m, c].tolist()) == list(range(5))
    for b in range(5):
        for c in range(6):
            assert sorted(modality[b, :, c].tolist()) == list(range(3))


def test_shuffled_aggregation_targets_follow_their_samples():
    model, spec = _small()
    model.train()
    batch = tiny_batch(spec, batch_size=4)
    out = model(batch)
    sample = out.aux["shuffle_sample"]
    b, m, c = sample.shape
    # The target of every shuffled slot is the label of the sample its feature came from.
    parts = model.loss(batch, out).parts
    label = torch.arange(c).expand(b, m, c)
    want = torch.nn.functional.binary_cross_entropy_with_logits(out.aux["agg_shuffled"],
                                                                batch.labels[sample, label])
    assert torch.allclose(parts["shuffle_agg_clf"], want)
    # With one sample and one modality there is nothing to shuffle.
    one, spec1 = _small(ALIGNED, "modalities=[text]")
    one.train()
    o = one(tiny_batch(spec1, batch_size=1))
    assert torch.allclose(o.aux["agg_shuffled"], o.aux["agg"])


def test_loss_is_the_weighted_sum_and_weights_switch_terms():
    model, spec = _small(ALIGNED, "beta_mse_weight=0.5")
    model.train()
    batch = tiny_batch(spec)
    parts = model.loss(batch, model(batch))
    p = parts.parts
    assert set(p) == {"task", "lsr_clf", "aug_clf", "recon_mse", "aug_mse", "beta_mse", "agg_clf", "contrastive",
                      "shuffle_agg_clf"}
    want = p["task"] + 0.01 * p["lsr_clf"] + 0.1 * p["aug_clf"] + p["recon_mse"] + p["aug_mse"] \
        + 0.5 * p["beta_mse"] + p["agg_clf"] + p["contrastive"] + 0.1 * p["shuffle_agg_clf"]
    assert torch.allclose(parts.total, want)
    off, _ = _small(ALIGNED, "cl_weight=0")
    off.train()
    assert "contrastive" not in off.loss(batch, off(batch)).parts
    off.eval()
    assert set(off.loss(batch, off(batch)).parts) == {"task", "lsr_clf", "aug_clf", "recon_mse", "aug_mse",
                                                        "agg_clf"}


def test_prediction_averages_the_aggregator_and_the_classifier():
    model, spec = _small()
    model.eval()
    with torch.no_grad():
        out = model(tiny_batch(spec))
    want = 0.5 * (torch.sigmoid(out.aux["agg"]).mean(1) + torch.sigmoid(out.aux["clf_beta"]))
    assert torch.allclose(model.probabilities(out), want)
    assert torch.allclose(torch.sigmoid(out.scores), want, atol=1e-5)


@pytest.mark.parametrize("dataset", [ALIGNED, UNALIGNED])
def test_padded_steps_change_nothing(dataset):
    model, spec = _small(dataset)
    assert_padding_ignored(model, spec)


def test_modality_subset_and_m3ed():
    text_only, spec = _small(ALIGNED, "modalities=[text]")
    assert text_only.modalities == ["text"] and text_only.fusion["text"].in_features == 32
    with pytest.raises(MmerbenchError, match="Unknown modalities"):
        _small(ALIGNED, "modalities=[lyrics]")
    model, m3ed = _small(M3ED)
    assert model.classifier.shape == (3, 7, 32) and model.aggregator[-1].out_features == 7
    _train_steps(model, m3ed, 1)
    assert int(model.queue_ptr) == 3 * 3 * 3 * 7


def test_training_step_under_bf16_autocast():
    """What CUDA runs do (bf16 autocast), tried on the CPU: the float32-guarded parts keep it finite."""
    model, spec = _small(M3ED)
    model.train()
    autocast = functools.partial(torch.autocast, device_type="cpu", dtype=torch.bfloat16)
    parts = model.training_step(tiny_batch(spec), model.configure_optimizer(10, 1).optimizer, autocast=autocast)
    assert torch.isfinite(parts.total) and all(torch.isfinite(v) for v in parts.parts.values())
    assert model.queue.dtype == torch.float32 and torch.isfinite(model.pos_protos).all()
    model.eval()
    with torch.no_grad(), autocast():
        prob = model.probabilities(model(tiny_batch(spec)))
    assert prob.dtype == torch.float32 and ((prob >= 0) & (prob <= 1)).all()


# -- (e) end to end ---------------------------------------------------------------------------------------


def test_end_to_end_run_with_the_authors_threshold(tmp_path):
    [res] = run(RunRequest(method="carat", dataset=ALIGNED, preset="small", epochs=1, scale=0.01, device="cpu",
                           overrides=("threshold=0.25",), progress=False, data_dir=str(tmp_path / "data"),
                           runs_dir=str(tmp_path / "runs")))
    history = json.loads((res.folder / "history.json").read_text())
    assert {"task", "contrastive", "shuffle_agg_clf"} <= set(history[0]["train_loss"])
    metrics = json.loads((res.folder / "metrics.json").read_text())
    assert metrics["decision"]["threshold"] == 0.25
    state = torch.load(res.folder / "model.pt", weights_only=True)["model"]
    assert int((state["queue_label"] >= 0).sum()) > 0  # the stored weights carry the queue


# -- (f) slow: better than BR on the aligned twin ------------------------------------------------------------


@pytest.mark.slow
def test_beats_binary_relevance_on_the_aligned_twin(tmp_path):
    common = dict(dataset=ALIGNED, scale=0.2, device="cpu", progress=False,
                  data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    [br] = run(RunRequest(method="br", **common))
    [carat] = run(RunRequest(method="carat", preset="small", **common))
    f_br, f_carat = br.metrics["test"]["micro_f1"], carat.metrics["test"]["micro_f1"]
    print(f"test micro-F1: CARAT {f_carat:.4f}, BR {f_br:.4f}")
    assert f_carat > f_br
