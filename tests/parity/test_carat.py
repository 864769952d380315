"""CARAT against the authors' model (chengzju/CARAT), built at their train.sh settings (aligned MOSEI).

Only the parameter reconciliation is here so far: construction, no forward pass.
Adapter fixes at import time: empty ``boto3``/``botocore`` modules for their
``file_utils`` (S3 downloads, never used for local configs), and the ``numpy``
import their ``models.py`` uses as ``np`` without importing it.
"""

from __future__ import annotations

import sys
import types

import numpy
import pytest

from mmerbench.runner import parameter_count

from parity.conftest import authors_repo, on_path

D = 256
POOLER = D * D + D  # BERT pooler: Linear(d, d), computed but its output reaches neither scores nor loss
TRAIN_SH = ["--do_train", "--epochs=20", "--lr", "5e-5", "--gpu_id", "1", "--seed", "1",
            "--visual_num_hidden_layers", "4", "--text_num_hidden_layers", "6", "--audio_num_hidden_layers", "4",
            "--aligned"]
ALIGNED_LENGTH = 60  # aligned MOSEI: every modality has 60 steps, so position rows 60.. are never read


def authors_model(monkeypatch):
    repo = authors_repo("CARAT")
    pytest.importorskip("requests")  # their file_utils needs it at import time
    for name in ("boto3", "botocore", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["botocore.exceptions"].ClientError = Exception
    monkeypatch.setattr(sys, "argv", ["main.py", *TRAIN_SH])
    with on_path(repo, "main", "models", "utils", "util", "dataloaders"):
        import main
        import models.models as authors
        authors.np = numpy
        args = main.get_args()
        return authors.CARAT.from_pretrained(args.text_model, args.visual_model, args.audio_model, task_config=args)


def test_parameters_reconcile(monkeypatch):
    model = authors_model(monkeypatch)
    named = dict(model.named_parameters())
    authors = sum(p.numel() for p in named.values())
    poolers = sum(p.numel() for k, p in named.items() if ".pooler." in k)
    assert poolers == 3 * POOLER  # text, vision, audio encoders
    unread_rows = 0
    for m in ("visual", "audio"):
        table = named[f"{m}.embeddings.position_embeddings.weight"]
        assert tuple(table.shape) == (500, D)
        unread_rows += (table.shape[0] - ALIGNED_LENGTH) * D
    assert tuple(named["text.embeddings.position_embeddings.weight"].shape) == (ALIGNED_LENGTH, D)
    assert authors == 7_359_736
    assert parameter_count("carat", "mosei-aligned") == authors - poolers - unread_rows == 6_937_080
