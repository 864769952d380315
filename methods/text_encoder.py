"""Pretrained text encoders (``transformers`` checkpoints) read from the utterance's raw text.

The ``text_encoder`` config key of a method selects its text input:
``features`` (the dataset's text feature arrays, the default) or a
``transformers`` checkpoint name or local folder, loaded with
``AutoTokenizer``/``AutoModel``. With a checkpoint:

* the dataset's ``text_raw`` is tokenised once per dataset, tokenizer and
  ``text_max_length`` (padded/truncated to that length) and cached under the
  data root's cache (``tokens/<digest>/``), like the ``.npy`` cache;
* batches carry the token ids and attention masks (``Batch.text_ids``,
  ``Batch.text_mask``), and the method's text path reads the encoder's last
  hidden states ``[B, T, H]`` with the attention mask in place of the text
  features ``[B, L, D]``;
* the encoder is fine-tuned at its own learning rate ``text_lr`` (its own
  parameter groups) with ``text_freeze``: ``none`` (everything trains),
  ``embeddings`` (the embedding layer is frozen) or ``all`` (a fixed feature
  extractor);
* it runs inside the forward pass, so the runner's bf16 autocast on CUDA
  (``amp``) covers it.

Loading is offline: a local folder, or the Hugging Face cache
(``local_files_only=True``). ``MMERBENCH_TEXT_DOWNLOAD=1`` lets ``transformers``
download a missing checkpoint; without it a missing one is one error sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from mmerbench.data.cache import publish
from mmerbench.errors import DataError, MmerbenchError
from mmerbench.locks import file_lock

FEATURES = "features"
FREEZE = ("none", "embeddings", "all")
TOKEN_CACHE_VERSION = 1


def uses_encoder(value: Any) -> bool:
    """True when `value` (a ``text_encoder`` setting) names a checkpoint rather than ``features``."""
    if value in (None, FEATURES):
        return False
    if not isinstance(value, str) or not value.strip():
        raise MmerbenchError(f"Expected `text_encoder` to be 'features' or a checkpoint name or folder, "
                             f"but got {value!r}.")
    return True


def _transformers():
    try:
        import transformers
    except ImportError:
        raise MmerbenchError("A `text_encoder` checkpoint needs the transformers package: "
                             "pip install -e \".[text]\".") from None
    transformers.logging.set_verbosity_error()  # e.g. "some weights were not used": the pooler, by design
    return transformers


def _offline() -> bool:
    return os.environ.get("MMERBENCH_TEXT_DOWNLOAD", "") != "1"


def _missing(checkpoint: str, what: str) -> MmerbenchError:
    return MmerbenchError(
        f"The text encoder checkpoint {checkpoint!r} ({what}) is not on this machine: put it in the Hugging Face "
        f"cache ($HF_HOME, e.g. `huggingface-cli download {checkpoint}` where there is internet) or set "
        f"text_encoder to a local folder holding its config.json, weights and tokenizer files "
        f"(mmerbench downloads nothing unless MMERBENCH_TEXT_DOWNLOAD=1).")


def _source(checkpoint: str) -> str:
    path = Path(checkpoint).expanduser()
    return str(path) if path.is_dir() else checkpoint


def load_tokenizer(checkpoint: str):
    tf = _transformers()
    try:
        return tf.AutoTokenizer.from_pretrained(_source(checkpoint), local_files_only=_offline())
    except (OSError, ValueError, KeyError) as e:
        raise _missing(checkpoint, f"tokenizer: {type(e).__name__}") from None


def load_model(checkpoint: str) -> nn.Module:
    tf = _transformers()
    try:
        if torch.empty(0).device.type == "meta":
            # A dry build (`mmerbench run`'s preflight): the architecture from config.json, no weights read.
            config = tf.AutoConfig.from_pretrained(_source(checkpoint), local_files_only=_offline())
            return tf.AutoModel.from_config(config)
        return tf.AutoModel.from_pretrained(_source(checkpoint), local_files_only=_offline())
    except (OSError, ValueError, KeyError) as e:
        raise _missing(checkpoint, f"model: {type(e).__name__}") from None


class PretrainedText(nn.Module):
    """A ``transformers`` encoder: token ids and attention mask → last hidden states [B, T, H] and mask [B, T]."""

    def __init__(self, checkpoint: str, *, freeze: str = "none") -> None:
        super().__init__()
        if freeze not in FREEZE:
            raise MmerbenchError(f"Expected `text_freeze` in {'/'.join(FREEZE)}, but got {freeze!r}.")
        self.model = load_model(checkpoint)
        self.hidden_size = int(self.model.config.hidden_size)
        frozen: Iterable[nn.Parameter] = ()
        if freeze == "all":
            frozen = self.model.parameters()
        elif freeze == "embeddings":
            frozen = self.model.get_input_embeddings().parameters() if not hasattr(self.model, "embeddings") \
                else self.model.embeddings.parameters()
        for p in frozen:
            p.requires_grad_(False)

    def forward(self, ids: torch.Tensor | None, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if ids is None or mask is None:
            raise DataError("This model reads text through a pretrained encoder, but the batch carries no token ids "
                            "(the dataset has no raw text, or the batch was built without tokens).")
        out = self.model(input_ids=ids, attention_mask=mask.long())
        return out.last_hidden_state, mask.bool()


def text_input(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The text sequence and mask a method's text path reads: the encoder's hidden states when the method holds
    one (``model.text_model``), else the dataset's text features."""
    enc = getattr(model, "text_model", None)
    if enc is None:
        return batch.inputs["text"], batch.masks["text"]
    return enc(batch.text_ids, batch.text_mask)


def with_text_lr(groups: list[dict[str, Any]], text_model: nn.Module | None, text_lr: float) -> list[dict[str, Any]]:
    """Split each optimizer parameter group into its non-encoder part and its encoder part at ``text_lr``
    (frozen encoder parameters are dropped)."""
    if text_model is None:
        return groups
    enc = {id(p) for p in text_model.parameters()}
    out = []
    for g in groups:
        params = list(g["params"])
        rest = [p for p in params if id(p) not in enc]
        mine = [p for p in params if id(p) in enc and p.requires_grad]
        if rest:
            out.append({**g, "params": rest})
        if mine:
            out.append({**g, "params": mine, "lr": float(text_lr)})
    return out


# --------------------------------------------------------------------------- tokens, cached


def _text_digest(texts: np.ndarray) -> str:
    h = hashlib.sha256()
    for t in texts.tolist():
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _tokenizer_digest(tokenizer) -> str:
    what = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items()),
            "special": sorted(map(str, tokenizer.all_special_tokens)), "lower": getattr(tokenizer, "do_lower_case", None)}
    return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()


def tokenize(tokenizer, texts: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids int64 [N, T] and attention mask bool [N, T], padded and truncated to `max_length`."""
    enc = tokenizer([str(t) for t in texts.tolist()], padding="max_length", truncation=True,
                    max_length=int(max_length), return_attention_mask=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64).reshape(len(texts), int(max_length))
    mask = np.asarray(enc["attention_mask"], dtype=bool).reshape(len(texts), int(max_length))
    return ids, mask


def dataset_tokens(dataset, checkpoint: str, max_length: int, cache_root: Path,
                   splits: Iterable[str] = ("train", "valid", "test")) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split (token ids, attention mask) of the dataset's raw text, read from the cache when it holds them."""
    from mmerbench.safepath import join

    max_length = int(max_length)
    if max_length < 2:
        raise MmerbenchError(f"Expected `text_max_length` of 2 or more, but got {max_length}.")
    splits = list(splits)
    lacking = [s for s in splits if dataset[s].text_raw is None]
    if lacking:
        raise DataError(f"`text_encoder` reads each utterance's raw text, but {dataset.spec.name!r} carries none "
                        f"(split {lacking[0]}); use a release or canonical folder with text_raw, or "
                        f"text_encoder=features.")
    tokenizer = load_tokenizer(checkpoint)
    key = {"version": TOKEN_CACHE_VERSION, "tokenizer": _tokenizer_digest(tokenizer), "max_length": max_length,
           "dataset": dataset.spec.name, "texts": {s: _text_digest(dataset[s].text_raw) for s in splits}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    entry = join(Path(cache_root) / "tokens", digest)
    sizes = {s: len(dataset[s]) for s in splits}
    out = _load_tokens(entry, sizes, max_length)
    if out is not None:
        return out
    entry.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(entry.parent / f".{entry.name}.lock"):
        out = _load_tokens(entry, sizes, max_length)  # another process may have written it while we waited
        if out is None:
            out = {s: tokenize(tokenizer, dataset[s].text_raw, max_length) for s in splits}
            _write_tokens(entry, out, key)
    return out


def _load_tokens(entry: Path, sizes: dict[str, int], length: int) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    try:
        out = {}
        for s, n in sizes.items():
            ids = np.load(entry / f"{s}.ids.npy", allow_pickle=False)
            mask = np.load(entry / f"{s}.mask.npy", allow_pickle=False)
            if ids.shape != (n, length) or mask.shape != (n, length) or ids.dtype != np.int64 or mask.dtype != bool:
                return None
            out[s] = (ids, mask)
        return out
    except (OSError, ValueError):
        return None  # absent, truncated or rewritten: tokenised again


def _write_tokens(entry: Path, tokens: dict[str, tuple[np.ndarray, np.ndarray]], key: dict[str, Any]) -> None:
    """Written to a temporary sibling and published in one rename (call with the entry's lock held)."""
    tmp = entry.parent / f".{entry.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for s, (ids, mask) in tokens.items():
            np.save(tmp / f"{s}.ids.npy", ids, allow_pickle=False)
            np.save(tmp / f"{s}.mask.npy", mask, allow_pickle=False)
        (tmp / "key.json").write_text(json.dumps(key, indent=1))
        publish(tmp, entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def run_tokens(params: dict[str, Any], dataset, data_dir: str | None, splits: Iterable[str]):
    """The runner's entry: per split (ids, mask) when the config names a checkpoint, else None."""
    ckpt = params.get("text_encoder", FEATURES)
    if not uses_encoder(ckpt):
        return None
    from mmerbench.data import paths

    return dataset_tokens(dataset, ckpt, int(params.get("text_max_length", 50)), paths.cache_root(data_dir), splits)
