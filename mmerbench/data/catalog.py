"""The datasets the papers use, beyond CMU-MOSEI multi-label (readers/mosei.py): static specs and formats.

Each entry's spec is what a method may know before any file is read: task,
label names in the release's own order, modalities (dim × sequence length)
and split sizes. Readers take dims, lengths, sizes and (where the file names
them) labels from the files; the static values below are the documented
ones, used by `mmerbench datasets` and by the synthetic twins.

Sources of the static values:

* ``iemocap``, ``mosi``, ``mosei-senti`` (and ``-unaligned``): the MulT
  authors' pickles (Tsai et al., ACL 2019): IEMOCAP text/audio/vision
  20 × 300/74/35 aligned, audio 400 and vision 500 steps unaligned, labels
  neutral, happy, sad, angry, splits 2,717 / 798 / 938; CMU-MOSI 50 steps of
  GloVe 300, COVAREP 5, FACET 20 (unaligned audio 375, vision 500 steps),
  splits 1,284 / 229 / 686; CMU-MOSEI 50 × 300/74/35 (unaligned audio and
  vision 500 steps), splits 16,326 / 1,871 / 4,659.
* ``ur-funny``: text 300 / audio 81 / visual 75 and splits 10,598 / 2,626 /
  3,290 (FDMER's §4.1); one step per punchline word, at most 50 words (our
  choice: the releases have variable length).
* ``m3ed``: UniVA's utterance-level release (7 labels in UniVA's order,
  17,427 / 2,871 / 4,151 utterances as in the M3ED paper). The release does
  not state its dims or lengths in code; text 300 is fixed by UniVA's GloVe
  path, and audio 130 × 150, vision 342 × 50, text length 50 are stand-ins
  (the reader takes the real ones from the files). CARAT's dialogue-level
  ``.pt`` (768/1024/342 × 60 utterances) is the second format.
* ``nemu``: no published statistics. Six label columns named
  ``emotion_1..6`` (the authors' loader reads multi-hot rows without names;
  a file's own ``dict['tgt']`` overrides them), picture 2048 × 1, audio
  128 × 60, comments and lyrics 768 × 50, splits 5,000 / 625 / 625 are
  stand-ins.
* ``msp-improv``: 4 classes in the auxiliary-loss paper's order (happy, sad,
  neutral, angry), audio + text; no shared feature release, so read from the
  canonical format. Audio 74 × 300, text 300 × 50 and an 80/10/10 split of
  the 7,798 four-class utterances (6,238 / 780 / 780) are stand-ins.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mmerbench.data.readers.canonical import FILES as CANONICAL_FILES
from mmerbench.data.readers.canonical import read_canonical
from mmerbench.data.readers.m3ed import M3ED_LABELS, UNIVA_ANNOTATIONS, read_carat, read_univa, univa_files
from mmerbench.data.readers.mmsa import mmsa_reader
from mmerbench.data.readers.mult import mult_reader
from mmerbench.data.readers.nemu import NEMU_LABELS, read_nemu
from mmerbench.data.readers.urfunny import SDK_FILES, read_urfunny_sdk
from mmerbench.data.registry import DataFormat, DatasetEntry, register_dataset
from mmerbench.data.dataset import Dataset
from mmerbench.data.spec import DatasetSpec, ModalitySpec
from mmerbench.errors import DataError

IEMOCAP_LABELS = ("neutral", "happy", "sad", "angry")  # MulT's file order
MSP_IMPROV_LABELS = ("happy", "sad", "neutral", "angry")  # the auxiliary-loss paper's order
__all__ = ["IEMOCAP_LABELS", "M3ED_LABELS", "MSP_IMPROV_LABELS", "NEMU_LABELS", "SPECS", "formats_of"]


def _mods(**dims_lengths: tuple[int, int]) -> dict[str, ModalitySpec]:
    return {m: ModalitySpec(dim=d, length=n) for m, (d, n) in dims_lengths.items()}


def _splits(train: int, valid: int, test: int) -> dict[str, int]:
    return {"train": train, "valid": valid, "test": test}


SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            name="m3ed", task="multilabel", labels=M3ED_LABELS,
            modalities=_mods(text=(300, 50), audio=(130, 150), vision=(342, 50)),
            splits=_splits(17427, 2871, 4151),
            description="M3ED (Chinese TV dialogues), 7 emotions multi-label per utterance, with per-modality "
                        "valence/arousal (UniVA's release).",
        ),
        DatasetSpec(
            name="nemu", task="multilabel", labels=NEMU_LABELS,
            modalities=_mods(picture=(2048, 1), audio=(128, 60), comments=(768, 50), lyrics=(768, 50)),
            splits=_splits(5000, 625, 625),
            description="NEMu music emotions multi-label: album picture, audio, listener comments, lyrics.",
        ),
        DatasetSpec(
            name="iemocap", task="multiclass", labels=IEMOCAP_LABELS,
            modalities=_mods(text=(300, 20), audio=(74, 20), vision=(35, 20)),
            splits=_splits(2717, 798, 938),
            description="IEMOCAP 4-class, word-aligned GloVe/COVAREP/FACET features (MulT's pickle).",
        ),
        DatasetSpec(
            name="iemocap-unaligned", task="multiclass", labels=IEMOCAP_LABELS,
            modalities=_mods(text=(300, 20), audio=(74, 400), vision=(35, 500)),
            splits=_splits(2717, 798, 938),
            description="IEMOCAP 4-class, unaligned features (MulT's pickle).",
        ),
        DatasetSpec(
            name="msp-improv", task="multiclass", labels=MSP_IMPROV_LABELS,
            modalities=_mods(text=(300, 50), audio=(74, 300)),
            splits=_splits(6238, 780, 780),
            description="MSP-Improv 4-class, audio + text (canonical format).",
        ),
        DatasetSpec(
            name="mosi", task="regression", labels=("sentiment",),
            modalities=_mods(text=(300, 50), audio=(5, 50), vision=(20, 50)),
            splits=_splits(1284, 229, 686),
            description="CMU-MOSI sentiment in [-3, 3], word-aligned features (MulT's or MMSA's pickle).",
        ),
        DatasetSpec(
            name="mosi-unaligned", task="regression", labels=("sentiment",),
            modalities=_mods(text=(300, 50), audio=(5, 375), vision=(20, 500)),
            splits=_splits(1284, 229, 686),
            description="CMU-MOSI sentiment in [-3, 3], unaligned features (MulT's or MMSA's pickle).",
        ),
        DatasetSpec(
            name="mosei-senti", task="regression", labels=("sentiment",),
            modalities=_mods(text=(300, 50), audio=(74, 50), vision=(35, 50)),
            splits=_splits(16326, 1871, 4659),
            description="CMU-MOSEI sentiment in [-3, 3], word-aligned features (MulT's or MMSA's pickle).",
        ),
        DatasetSpec(
            name="mosei-senti-unaligned", task="regression", labels=("sentiment",),
            modalities=_mods(text=(300, 50), audio=(74, 500), vision=(35, 500)),
            splits=_splits(16326, 1871, 4659),
            description="CMU-MOSEI sentiment in [-3, 3], unaligned features (MulT's or MMSA's pickle).",
        ),
        DatasetSpec(
            name="ur-funny", task="binary", labels=("humor",),
            modalities=_mods(text=(300, 50), audio=(81, 50), vision=(75, 50)),
            splits=_splits(10598, 2626, 3290),
            description="UR-FUNNY humour detection, punchline words (canonical format or the authors' sdk pickles).",
        ),
    )
}


def _bound(read, spec: DatasetSpec):
    return partial(read, spec=spec)


def read_registered_canonical(files: list[Path], *, spec: DatasetSpec) -> Dataset:
    """A canonical folder under the data root that stands for registered dataset `spec.name`.

    Its task and modality names must be the registered ones; its labels (of
    the registered number), dims, lengths and sizes are its own. It is loaded
    under the registered name, as real data.
    """
    ds = read_canonical(files)
    got, where = ds.spec, files[0]
    if got.task != spec.task:
        raise DataError(f"{where}: the folder's task is {got.task}, but {spec.name!r} is a {spec.task} dataset.")
    if set(got.modalities) != set(spec.modalities):
        raise DataError(f"{where}: the folder's modalities are {', '.join(got.modalities)}, but {spec.name!r} has "
                        f"{', '.join(spec.modalities)}.")
    if len(got.labels) != len(spec.labels):
        raise DataError(f"{where}: the folder names {len(got.labels)} labels ({', '.join(got.labels)}); "
                        f"{spec.name!r} has {len(spec.labels)} ({', '.join(spec.labels)}).")
    ds.spec = got.with_(name=spec.name, synthetic=False, twin_of=None)
    return ds


def formats_of(name: str) -> tuple[DataFormat, ...]:
    """The formats a dataset is read from, preferred first (`mmerbench datasets` shows the one found)."""
    spec = SPECS[name]
    mult = {"iemocap": "iemocap/iemocap_data", "mosi": "mosi/mosi_data", "mosei-senti": "mosei/mosei_senti_data"}
    base = name.removesuffix("-unaligned")
    aligned = not name.endswith("-unaligned")
    if base in mult:
        out = [DataFormat("mult-pkl", (f"{mult[base]}{'' if aligned else '_noalign'}.pkl",), mult_reader(spec),
                          "the MulT authors' pickle")]
        if base in ("mosi", "mosei-senti"):
            folder = base.split("-")[0]
            out.append(DataFormat("mmsa-pkl", (f"{folder}/{'aligned' if aligned else 'unaligned'}_50.pkl",),
                                  mmsa_reader(spec), "the MMSA authors' pickle"))
        return tuple(out)
    if name == "m3ed":
        return (DataFormat("univa-pkl", univa_files("M3ED", "m3ed"), _bound(read_univa, spec),
                           "UniVA's utterance pickles", version=2, optional=(f"m3ed/{UNIVA_ANNOTATIONS}",)),
                DataFormat("carat-pt", ("m3ed/m3ed_data_60.pt",), _bound(read_carat, spec),
                           "CARAT's dialogue-level file"))
    if name == "nemu":
        return (DataFormat("nemu-pt", ("nemu/nemu_data.pt",), _bound(read_nemu, spec), "the RobMMR authors' file"),)
    canonical = DataFormat("canonical", tuple(f"{name}/{f}" for f in CANONICAL_FILES),
                           _bound(read_registered_canonical, spec), "the canonical format")
    if name == "ur-funny":
        return (canonical, DataFormat("urfunny-sdk", tuple(f"ur-funny/{f}" for f in SDK_FILES),
                                      _bound(read_urfunny_sdk, spec), "the UR-FUNNY authors' sdk pickles"))
    return (canonical,)


for _name, _spec in SPECS.items():
    register_dataset(DatasetEntry(spec=_spec, formats=formats_of(_name)))
