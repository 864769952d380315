"""UniVA against the authors' model (NUSTM/UniVA, GloVe path, run_MOSEI_TAV_ours_glove.sh), at full size.

Their script's settings on aligned MOSEI: layers text 7 / audio 3 / vision 5, τ 0.4, α 0.2, VA-aware
SupCon on, no label-similarity prior. Ours is switched to their computation through its config:
``kl_target: softmax``, ``va_prior: false``, ``cl_normalize: false``, ``cl_duplicate_view: true``,
``cl_text_weight: 3`` (their MOSEI weighting), and the VA given as is (``va_standardize: false``; their
loader standardises before the model sees them).

The RoBERTa path (run_MOSEI_TAV_ours.sh: audio 5 / vision 3 layers, τ 0.7, α 0.45) is compared through a
tiny random RoBERTa saved to a temporary folder, each sample a one-utterance dialogue, so that their
flag mask selects the same word tokens our pooling reads.

CPU fixes applied here, never in their files: ``Tensor.cuda`` is the identity; where ``transformers`` is
not installed, a stub module (their GloVe path never calls it; the RoBERTa test is then skipped).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch

from mmerbench.data.batching import Batch
from mmerbench.data.registry import get_entry
from mmerbench.importers import import_weights
from mmerbench.methods.univa import UniVA
from mmerbench.runner import parameter_count

from parity.conftest import authors_repo, on_path

AS_THEIRS = dict(kl_target="softmax", va_prior=False, cl_normalize=False, cl_duplicate_view=True, cl_text_weight=3.0,
                 va_standardize=False, va_source="data")


def spec():
    return get_entry("mosei-aligned").spec


def hparams(sp):
    return types.SimpleNamespace(
        DATASET="MOSEI", text_plm_checkpoint="glove", KLDivLoss=True, thres_kl=0.18, SupConLoss=True, thres_dist=0.1,
        labelSimilar_regulari=False, hidden_size=768, fc_dropout=0.1, final_dropout=0.1,
        text_num_transformer_layers=7, audio_num_transformer_layers=3, vision_num_transformer_layers=5,
        num_attention_heads=12, intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12, num_multi_labels=sp.num_labels,
        get_text_utt_max_lens=sp.modalities["text"].length, get_audio_utt_max_lens=sp.modalities["audio"].length,
        get_vision_utt_max_lens=sp.modalities["vision"].length, audio_feat_dim=sp.modalities["audio"].dim,
        vision_feat_dim=sp.modalities["vision"].dim)


@pytest.fixture(scope="module")
def authors():
    repo = authors_repo("UniVA")
    mp = pytest.MonkeyPatch()
    mp.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    if importlib.util.find_spec("transformers") is None:  # only their RoBERTa path uses it
        mp.setitem(sys.modules, "transformers", types.SimpleNamespace(AutoModel=None))
    with on_path(repo, "models", "modules", "utils"):
        import models
        from utils.vaAware_supcon_loss import VA_aware_SupConLoss

        yield types.SimpleNamespace(models=models, supcon=VA_aware_SupConLoss)
    mp.undo()


@pytest.fixture(scope="module")
def pair(authors):
    torch.manual_seed(0)
    sp = spec()
    theirs = authors.models.multimodal_t_a_v_model(hparams(sp))
    ours = UniVA(sp, **AS_THEIRS)
    ours.load_state_dict(import_weights("univa", theirs.state_dict(), ours))
    return theirs.eval(), ours.eval()


def batch(seed: int, b: int = 6):
    g = torch.Generator().manual_seed(seed)
    sp = spec()
    inputs, masks, extras = {}, {}, {}
    for m, s in sp.modalities.items():
        lengths = torch.randint(s.length // 3, s.length + 1, (b,), generator=g)
        masks[m] = torch.arange(s.length)[None] < lengths[:, None]
        inputs[m] = torch.randn(b, s.length, s.dim, generator=g) * masks[m][..., None]
        va = torch.rand(b, 2, generator=g)
        va[1] = va[0] + 0.03  # one close pair: a VA positive besides the duplicate view
        extras[f"va_{m}"] = va
    labels = (torch.rand(b, sp.num_labels, generator=g) < 0.4).float()
    return Batch(inputs=inputs, masks=masks, labels=labels, index=torch.arange(b), extras=extras)


def run_theirs(authors, theirs, b: Batch, *, text=None, temperature: float = 0.4, alpha: float = 0.2):
    """Their logits, KL, SupCon and total; `text` = their (inputs, attention mask, flag mask), by default the
    GloVe path's features and mask."""
    text = text or (b.inputs["text"], b.masks["text"].float(), None)
    logits = {}
    hook = theirs.fc.register_forward_hook(lambda mod, i, o: logits.setdefault("fc", o))
    try:
        _, kl, cl = theirs(*text, b.inputs["audio"], b.masks["audio"].float(),
                           b.inputs["vision"], b.masks["vision"].float(), False, b.labels,
                           torch.nn.KLDivLoss(reduction="mean"), b.extras["va_text"], b.extras["va_audio"],
                           b.extras["va_vision"], authors.supcon(temperature=temperature))
    finally:
        hook.remove()
    return logits["fc"], kl, cl, (1 - alpha) * kl + alpha * cl  # their train.py: (1 − α)·KL + α·SupCon


def worst_gradient(theirs, ours, noise_only: tuple[str, ...] = ()) -> tuple[float, str | None]:
    """The largest max|Δ| / max|g| over our parameters, their gradients mapped through the importer.

    Floor 1e-2: a shift of every score (the pooling's score bias, the key biases) has zero true gradient.
    A parameter neither side trains (the unused pooler) has no gradient on either side. Parameters whose
    names end in `noise_only` have a true gradient of 0 and are only checked to stay below 1e-4 on both sides."""
    want = import_weights("univa", {k: p.grad if p.grad is not None else torch.zeros_like(p)
                                    for k, p in theirs.named_parameters()}, ours)
    worst, where = 0.0, None
    for key, p in ours.named_parameters():
        if p.grad is None:
            assert not want[key].any(), key
            continue
        if key.endswith(noise_only):  # (an empty tuple matches nothing)
            assert p.grad.abs().max() < 1e-4 and want[key].abs().max() < 1e-4, key
            continue
        err = (p.grad - want[key]).abs().max().item() / max(want[key].abs().max().item(), 1e-2)
        if err > worst:
            worst, where = err, key
    return worst, where


def test_logits_and_every_loss_term_match(authors, pair):
    theirs, ours = pair
    for seed in (1, 2):
        b = batch(seed)
        with torch.no_grad():
            want, kl, cl, total = run_theirs(authors, theirs, b)
            out = ours(b)
            parts = ours.loss(b, out)
        d_logit = (out.scores - want).abs().max().item()
        print(f"univa logits max|Δ| {d_logit:.2e}; KL |Δ| {abs(parts.parts['task'] - kl).item():.2e}; "
              f"SupCon |Δ| {abs(parts.parts['contrastive'] - cl).item():.2e}")
        assert d_logit <= 1e-5
        assert set(parts.parts) == {"task", "contrastive"}
        torch.testing.assert_close(parts.parts["task"], kl, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(parts.parts["contrastive"], cl, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(parts.total, total, rtol=1e-5, atol=1e-5)


def test_gradients_of_one_training_step_match(authors, pair):
    """Dropout off (eval mode); their gradients mapped through the importer onto our names."""
    theirs, ours = pair
    b = batch(3)
    theirs.zero_grad(), ours.zero_grad()
    run_theirs(authors, theirs, b)[3].backward()
    ours.loss(b, ours(b)).total.backward()
    worst, where = worst_gradient(theirs, ours)
    print(f"univa gradients: worst max|Δ| / max|g| = {worst:.2e} ({where})")
    assert worst <= 1e-4, (worst, where)


def test_parameters_are_equal_at_the_paper_settings(pair):
    """ours = authors' − nothing unused (the glove build has no label-similarity matrix) + nothing added."""
    theirs, _ = pair
    authors = sum(p.numel() for p in theirs.parameters())
    assert authors == parameter_count("univa", "mosei-aligned") == 110_334_729


# ----------------------------------------------------------------------------- the RoBERTa path

ROBERTA_T = 12  # tokens per utterance


@pytest.fixture(scope="module")
def roberta_pair(authors, tmp_path_factory):
    if authors.models.AutoModel is None:
        pytest.skip("their RoBERTa path needs the transformers package")
    from textkit import make_tiny

    tiny = make_tiny(tmp_path_factory.mktemp("roberta"), [f"w{i}" for i in range(40)], "roberta")
    torch.manual_seed(0)
    sp = spec()
    hp = hparams(sp)
    hp.text_plm_checkpoint, hp.text_plm_path = "roberta-base", str(tiny)
    hp.audio_num_transformer_layers, hp.vision_num_transformer_layers = 5, 3
    theirs = authors.models.multimodal_t_a_v_model(hp)
    ours = UniVA(sp, **AS_THEIRS, text_encoder=str(tiny), text_layers=0, audio_layers=5, vision_layers=3,
                 text_max_length=ROBERTA_T, temperature=0.7, alpha=0.45)
    ours.load_state_dict(import_weights("univa", theirs.state_dict(), ours))
    return theirs.eval(), ours.eval()


def roberta_batch(seed: int, b: int = 6):
    """`batch` plus token ids: <s> words </s> then padding; the flag mask marks the words."""
    out = batch(seed, b)
    g = torch.Generator().manual_seed(100 + seed)
    n = torch.randint(1, ROBERTA_T - 1, (b,), generator=g)
    n[0] = ROBERTA_T - 2  # one utterance fills the window
    pos = torch.arange(ROBERTA_T)[None]
    ids = torch.randint(5, 45, (b, ROBERTA_T), generator=g)
    ids = torch.where(pos == 0, 0, torch.where(pos == n[:, None] + 1, 2, torch.where(pos > n[:, None] + 1, 1, ids)))
    out.text_ids, out.text_mask = ids, pos <= n[:, None] + 1
    return out, (pos >= 1) & (pos <= n[:, None])


def run_theirs_roberta(authors, theirs, b: Batch, flags):
    """Their MOSEI RoBERTa script: τ 0.7, α 0.45."""
    return run_theirs(authors, theirs, b, text=(b.text_ids, b.text_mask.long(), flags.long()),
                      temperature=0.7, alpha=0.45)


def test_roberta_path_logits_losses_and_gradients_match(authors, roberta_pair):
    theirs, ours = roberta_pair
    for seed in (1, 2):
        b, flags = roberta_batch(seed)
        with torch.no_grad():
            want, kl, cl, total = run_theirs_roberta(authors, theirs, b, flags)
            out = ours(b)
            parts = ours.loss(b, out)
        d_logit = (out.scores - want).abs().max().item()
        print(f"univa (RoBERTa path) logits max|Δ| {d_logit:.2e}; total |Δ| {abs(parts.total - total).item():.2e}")
        assert d_logit <= 1e-5
        torch.testing.assert_close(parts.parts["task"], kl, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(parts.parts["contrastive"], cl, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(parts.total, total, rtol=1e-5, atol=1e-5)
    b, flags = roberta_batch(3)
    theirs.zero_grad(), ours.zero_grad()
    run_theirs_roberta(authors, theirs, b, flags)[3].backward()
    ours.loss(b, ours(b)).total.backward()
    worst, where = worst_gradient(theirs, ours, noise_only=("pool.v.bias",))  # shifts every score alike
    print(f"univa (RoBERTa path) gradients: worst max|Δ| / max|g| = {worst:.2e} ({where})")
    assert worst <= 1e-4, (worst, where)
