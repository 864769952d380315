"""The TAILOR, CARAT and RobMMR importers without the authors' code: errors and the class-code renumbering."""

from __future__ import annotations

import pytest
import torch

from mmerbench.importers import WeightImportError, import_weights, importable_methods
from mmerbench.importers.carat import queue_labels

from methods.helpers import build


def test_registered():
    assert {"tailor", "carat", "robmmr"} <= set(importable_methods())


@pytest.mark.parametrize("method", ["tailor", "carat", "robmmr"])
def test_an_unrelated_state_dict_is_one_clear_error(method):
    model, _ = build(method, "mosei-aligned", preset="small")
    with pytest.raises(WeightImportError, match=r"^The checkpoint lacks '[^']+', which .*needs\.$"):
        import_weights(method, {"net.weight": torch.zeros(2)}, model)


def test_robmmr_needs_decoder_norm_for_the_authors_decoder():
    model, _ = build("robmmr", "mosei-aligned", preset="small")
    with pytest.raises(WeightImportError, match="decoder_norm: true"):
        import_weights("robmmr", {"emotion_decoder.norm.weight": torch.ones(32)}, model)


def test_carat_queue_labels_renumbered_to_our_modality_order():
    """Theirs: j + C·(2i + absent) with i over (text, vision, audio); ours with i over our modalities."""
    c, mods = 6, ["text", "audio", "vision"]
    theirs = torch.tensor([0.0, 8.0, 2 * 6 + 3, 3 * 6 + 5, 4 * 6 + 1, 5 * 6 + 0, 0.37, -1.0, 36.0])
    want = [0, 8,               # text present j=0; text absent j=2
            2 * 2 * 6 + 3,      # vision present j=3: our vision is i=2
            (2 * 2 + 1) * 6 + 5,  # vision absent j=5
            2 * 6 + 1,          # audio present j=1: our audio is i=1
            3 * 6 + 0,          # audio absent j=0
            -1, -1, -1]         # their random start and out-of-range codes: empty
    assert queue_labels(theirs, mods, c).tolist() == want
