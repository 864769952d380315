"""TAILOR against the authors' model (kniter1/TAILOR), built at their train.sh settings (aligned MOSEI).

Only the parameter reconciliation is here so far: construction, no forward pass.
Their ``file_utils`` imports ``boto3``/``botocore`` (S3 downloads never used for
local configs): the adapter stands in empty modules for them at import time.
"""

from __future__ import annotations

import sys
import types

import pytest

from mmerbench.runner import parameter_count

from parity.conftest import authors_repo, on_path

D = 256
POOLER = D * D + D  # BERT pooler: Linear(d, d), computed but its output reaches neither scores nor loss
TRAIN_SH = ["--do_train", "--aligned", "--output_dir", "unused", "--visual_num_hidden_layers", "4",
            "--bert_num_hidden_layers", "6", "--audio_num_hidden_layers", "4"]


def authors_model(monkeypatch):
    repo = authors_repo("TAILOR")
    pytest.importorskip("requests")  # their file_utils needs it at import time
    for name in ("boto3", "botocore", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["botocore.exceptions"].ClientError = Exception
    monkeypatch.setattr(sys, "argv", ["train.py", *TRAIN_SH])
    with on_path(repo, "src", "train", "util"):
        import train
        from src.models.models import TAILOR
        args = train.get_args()
        return TAILOR.from_pretrained(args.bert_model, args.visual_model, args.audio_model, args.cross_model,
                                      args.decoder_model, task_config=args)


def test_parameters_reconcile(monkeypatch):
    model = authors_model(monkeypatch)
    named = dict(model.named_parameters())
    authors = sum(p.numel() for p in named.values())
    poolers = sum(p.numel() for k, p in named.items() if ".pooler." in k)
    shared_head = sum(p.numel() for k, p in named.items() if k.startswith("cross_classifier."))
    per_label_head = 6 * (D + 1)  # ours: Eq. 15's separate weights per label
    assert poolers == 6 * POOLER  # text, vision, audio encoders and the three CMEs
    assert shared_head == D + 1
    assert authors == 10_798_652
    assert parameter_count("tailor", "mosei-aligned") == authors - poolers - shared_head + per_label_head \
        == 10_405_185
