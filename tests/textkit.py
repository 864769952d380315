"""Tiny random BERT and RoBERTa checkpoints with word-level tokenisers, saved to a folder (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


def make_tiny(folder: Path, words: list[str], kind: str = "bert", hidden: int = 32, seed: int = 0) -> Path:
    """A `kind` ("bert" or "roberta") model of one layer and `hidden` units, and a tokeniser over `words`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "bert":
        special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                   "mask_token": "[MASK]"}
        order = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    else:
        special = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                   "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}
        order = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {w: i for i, w in enumerate(order + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=special["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cls, sep = special["cls_token"], special["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    PreTrainedTokenizerFast(tokenizer_object=tok, **special).save_pretrained(folder)
    torch.manual_seed(seed)
    common = dict(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=2 * hidden, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if kind == "bert":
        model = BertModel(BertConfig(max_position_embeddings=128, pad_token_id=0, **common))
    else:
        model = RobertaModel(RobertaConfig(max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                                           eos_token_id=2, **common))
    model.save_pretrained(folder)
    return folder
