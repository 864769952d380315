"""The papers' tables: every YAML file validates, every row maps to a run or says why not, every mapped
method / switch / dataset exists (or the test says which branch it waits for), and `mmerbench table`
fills cells from the run store."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mmerbench import results
from mmerbench.cli import cli
from mmerbench.config import parse_override
from mmerbench.errors import MmerbenchError
from mmerbench.metrics import metric_info
from mmerbench.registry import METHODS
from mmerbench.report import papers
from mmerbench.report.papers import NotImplemented_, RunSpec, check_schema, validate

from conftest import TINY_SCALE

PAPERS_DIR = papers.default_papers_dir()
FILES = sorted(PAPERS_DIR.glob("*.yaml"))
EXPECTED_TABLES = {
    "tailor.yaml": ["tailor-t2", "tailor-t3"],
    "robmmr.yaml": ["robmmr-t1", "robmmr-t2"],
    "univa.yaml": ["univa-t1", "univa-t2", "univa-t3"],
    "fdmer.yaml": ["fdmer-t1", "fdmer-t2", "fdmer-t3", "fdmer-t4"],
    "auxloss.yaml": ["auxloss-t3", "auxloss-t4", "auxloss-t5", "auxloss-t6", "auxloss-t7"],
}


def _raw(name: str):
    return yaml.safe_load((PAPERS_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tables():
    return papers.load_papers()


def test_every_paper_table_is_there():
    assert sorted(f.name for f in FILES) == sorted(EXPECTED_TABLES)
    for name, ids in EXPECTED_TABLES.items():
        assert [t["id"] for t in _raw(name)["tables"]] == ids


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_file_validates(path):
    assert validate(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_every_row_maps_to_a_run_or_says_why_not(tables):
    for t in tables:
        for row, group, target in t.targets():
            where = f"{t.id} / {row.name} / {group.name}"
            if isinstance(target, NotImplemented_):
                assert target.reason.strip(), where
            else:
                assert target.method and target.dataset, where


def test_published_values_agree_where_two_papers_print_the_same_row(tables):
    by_id = {t.id: t for t in tables}

    def row(tid, name):
        return next(r for r in by_id[tid].rows if r.name.startswith(name))

    # TAILOR Table 2 (aligned, fractions) = RobMMR Table 1 (MOSEI, %): Acc and Micro-F1
    for tailor_name, robmmr_name in (("BR", "BR"), ("CC", "CC"), ("LP", "LP"), ("LSAN", "LASN"),
                                     ("ML-GCN", "ML-GCN"), ("MulT", "MulT"), ("HHMPN", "HHMPN")):
        a, b = row("tailor-t2", tailor_name).values, row("robmmr-t1", robmmr_name).values
        assert (round(a[0] * 100, 1), round(a[3] * 100, 1)) == (b[0], b[2]), tailor_name
    # UniVA Table 1's copied rows (♦) = RobMMR Table 1's MOSEI columns
    for name in ("MulT", "M3ER", "HHMPN", "TAILOR"):
        assert row("univa-t1", name).values[:4] == row("robmmr-t1", name).values[:4], name
    assert row("univa-t1", "RobMMR").values[:4] == row("robmmr-t1", "Ours").values[:4]
    # full models repeated in the ablations
    assert row("tailor-t3", "(12)").values == row("tailor-t2", "TAILOR").values[:4]
    assert row("robmmr-t2", "Full Model").values == row("robmmr-t1", "Ours").values
    assert row("univa-t2", "UniVA").values == row("univa-t1", "UniVA-RoBERTa").values
    fd = row("fdmer-t4", "FDMER").values
    assert fd[:2] == [row("fdmer-t1", "FDMER").values[3], row("fdmer-t1", "FDMER").values[4]]
    assert fd[2:4] == [row("fdmer-t2", "FDMER").values[3], row("fdmer-t2", "FDMER").values[4]]
    assert fd[4] == 70.55


def test_auxloss_average_is_the_per_class_mean_or_marked_ambiguous(tables):
    """A transcription check: 'Average' is the mean of the four per-class values, except in the two rows
    where the source itself disagrees, which must carry an `ambiguous` note."""
    t3 = next(t for t in tables if t.id == "auxloss-t3")
    odd = []
    for r in t3.rows:
        if sum(r.values[:4]) / 4 != pytest.approx(r.values[4], abs=0.011):
            odd.append((r.section, r.name))
            assert "Average(%)" in r.ambiguous, r.name
    assert odd == [("IEMOCAP", "A+T (w/o L_ua)"), ("MSP-Improv", "T")]


def test_metric_keys_and_directions_agree_with_the_metrics_module(tables):
    for t in tables:
        for _, m in t.columns:
            if m.key:
                assert metric_info(m.key).higher_is_better is m.higher_is_better, (t.id, m.name)


def test_every_column_names_an_existing_metric_key_and_its_definition(tables):
    """Each published column says what it computes and is compared with a metric that exists (a row's
    per-cell override included), so no cell is left without a like-for-like number."""
    from mmerbench.metrics import METRICS

    for t in tables:
        ids = {t.column_id(g, m): m for g, m in t.columns}
        for _, m in t.columns:
            assert m.key and len(m.definition) > 20, (t.id, m.name)
            assert m.key in METRICS or metric_info(m.key).name == m.key, (t.id, m.name)
        for r in t.rows:
            for col, key in r.keys.items():
                assert col in ids and key in METRICS and key != ids[col].key, (t.id, r.name, col)
                assert metric_info(key).higher_is_better is ids[col].higher_is_better


def test_tailor_precision_and_recall_columns_are_compared_crossed(tables):
    """TAILOR's code scores (predictions, labels) with a (labels, predictions) function: its P is a recall."""
    for t in (x for x in tables if x.id in ("tailor-t2", "tailor-t3")):
        keys = {(g.name, m.name): m.key for g, m in t.columns}
        for g in t.groups:
            assert keys[(g.name, "P")] == "micro_recall" and keys[(g.name, "R")] == "micro_precision", t.id
            assert keys[(g.name, "Acc")] == "acc" and keys[(g.name, "Micro-F1")] == "micro_f1"
        assert any("micro_recall" in n and "exchanged" in n for n in t.notes), t.id


def test_swapped_columns_show_the_crossed_metric_and_say_so_under_the_table(tmp_path):
    """A stored TAILOR run: the P cell shows our recall, the R cell our precision, and the footnotes say why."""
    from mmerbench.runner import RunRequest, prepare

    runs = tmp_path / "runs"
    prep = prepare(RunRequest(method="tailor", dataset="mosei-aligned", overrides=("threshold=0.35",)))
    results.write_json(results.run_dir(runs, "mosei-aligned", "tailor", prep.config_hash, 1) / "metrics.json",
                       {"valid": {}, "test": {"acc": 0.45, "micro_precision": 0.5, "micro_recall": 0.6,
                                              "micro_f1": 0.545}, "decision": {}})
    t = papers.build(papers.TableRequest(ids=("tailor-t3",), runs_dir=runs)).tables[0]
    row = next(r for r in t.rows if r.meta["name"] == "(12) TAILOR")
    p_cell, r_cell = row.cells[2], row.cells[3]
    assert p_cell.extra["metric_key"] == "micro_recall" and p_cell.extra["ours_mean"] == pytest.approx(0.6)
    assert r_cell.extra["metric_key"] == "micro_precision" and r_cell.extra["ours_mean"] == pytest.approx(0.5)
    assert p_cell.display == "0.641 → 0.600 (n=1) Δ -0.041"
    assert any(n.startswith("P: ours: mmerbench metric 'micro_recall'. Published: printed as precision")
               for n in t.footnotes)
    assert any("P is compared with our micro_recall" in n for n in t.footnotes)


def test_mult_rows_compare_f1_with_the_prediction_weighted_variant(tmp_path):
    """MulT's published F1 comes from f1_score(preds, truths, average='weighted'): its row's F1 cell reads
    f1_non0_pred_weighted, FDMER's row (no public code) the column's f1_non0."""
    from mmerbench.runner import RunRequest, prepare

    runs = tmp_path / "runs"
    test = {"acc7": 0.4, "acc2_non0": 0.8, "f1_non0": 0.79, "f1_non0_pred_weighted": 0.81, "mae": 0.9, "corr": 0.6}
    for method in ("mult", "fdmer"):
        prep = prepare(RunRequest(method=method, dataset="mosi"))
        results.write_json(results.run_dir(runs, "mosi", method, prep.config_hash, 1) / "metrics.json",
                           {"valid": {}, "test": test, "decision": {}})
    t = papers.build(papers.TableRequest(ids=("fdmer-t1",), runs_dir=runs)).tables[0]
    mult = next(r for r in t.rows if r.meta["name"] == "MulT [43]")
    fdmer = next(r for r in t.rows if r.meta["name"] == "FDMER (ours)" and r.section == "Glove-based")
    assert mult.cells[3].extra["metric_key"] == "f1_non0_pred_weighted"
    assert mult.cells[3].extra["ours_mean"] == pytest.approx(81.0)
    assert fdmer.cells[3].extra["metric_key"] == "f1_non0" and fdmer.cells[3].extra["ours_mean"] == pytest.approx(79.0)
    assert mult.cells[2].extra["metric_key"] == "acc2_non0"  # the override touches only the F1 cell
    assert any(n.startswith("MulT [43], F1: ours: mmerbench metric 'f1_non0_pred_weighted'") for n in t.footnotes)


# ---------------------------------------------------------------- the registry check

def _mapped():
    out = {}
    for t in papers.load_papers():
        for row, group, target in t.targets():
            if isinstance(target, RunSpec):
                out.setdefault(target, []).append(f"{t.id}: {row.name} [{group.name}]")
    return out


MAPPED = _mapped()


@pytest.mark.parametrize("method", sorted({s.method for s in MAPPED}))
def test_mapped_switches_and_datasets_exist_and_build(method):
    """Every mapping to `method` is accepted by `mmerbench run` (method, dataset, task, preset, switch and
    modality names), and its switch values by the method's constructor (built on the meta device)."""
    import torch

    from mmerbench.data.registry import DATASETS
    from mmerbench.runner import RunRequest, prepare

    specs = sorted((s for s in MAPPED if s.method == method), key=repr)
    if method not in METHODS:
        switches = sorted({k for s in specs for k, _ in s.set})
        pytest.skip(f"method {method!r} is not registered yet (issue 5, another branch): its switch names "
                    f"{switches} are checked once it lands")
    ready = [s for s in specs if s.dataset in DATASETS]
    if not ready:
        pytest.skip(f"datasets {sorted({s.dataset for s in specs})} are not registered yet (branch `data`)")
    problems = []
    for spec in ready:
        problem = papers.check_registry(spec)
        if problem is not None:
            problems.append(f"{MAPPED[spec][0]}: {problem}")
            continue
        prep = prepare(RunRequest(method=spec.method, dataset=spec.dataset, overrides=tuple(spec.overrides()),
                                  preset=spec.preset))
        if prep.cls.kind == "torch":
            params = dict(prep.config["params"])
            if params.get("text_encoder", "features") != "features":
                # A pretrained checkpoint (bert-base-uncased, roberta-base) is never downloaded in tests; the
                # text_encoder tests build tiny ones. The other switches are checked with the features path.
                params["text_encoder"] = "features"
            with torch.device("meta"):
                prep.cls(prep.spec, **params)
    assert problems == []


def test_modality_switches_name_the_datasets_modalities():
    """Checked even for methods still on other branches: a modality subset must use the dataset's names."""
    from mmerbench.data.registry import DATASETS, get_entry

    for spec, where in MAPPED.items():
        mods = dict(spec.set).get("modalities")
        if mods is None or spec.dataset not in DATASETS:
            continue
        known = set(get_entry(spec.dataset).spec.modalities)
        assert set(mods) <= known, f"{where[0]}: {mods} not all in {sorted(known)}"


def test_per_class_columns_name_the_datasets_labels(tables):
    from mmerbench.data.registry import DATASETS, get_entry

    for t in tables:
        for row, group, target in t.targets():
            if not isinstance(target, RunSpec):
                continue
            for m in group.metrics:
                if m.key and m.key.startswith("acc_"):
                    if target.dataset not in DATASETS:
                        continue  # checked once the dataset is registered
                    assert m.key[4:] in get_entry(target.dataset).spec.labels, (t.id, m.key)


# ---------------------------------------------------------------- the schema and the rules


def _minimal():
    return {
        "version": 1, "paper": "P", "source": "p.md",
        "tables": [{
            "id": "p-t1", "table": "Table 1", "caption": "c", "setting": "s", "dataset": "mosei-aligned",
            "groups": [{"name": "", "metrics": [{"name": "Acc", "key": "acc", "higher_is_better": True,
                                                 "unit": "fraction", "definition": "Jaccard accuracy"}]}],
            "rows": [{"name": "BR", "values": [0.2], "ours": {"method": "br"}},
                     {"name": "X", "values": [None], "not_implemented": "not in mmerbench"}],
        }],
    }


def test_minimal_document_validates():
    assert validate(_minimal()) == []


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("paper"), "missing key 'paper'"),
    (lambda d: d.update(version=2), "expected one of [1]"),
    (lambda d: d["tables"][0].update(id="Bad Id"), "does not match"),
    (lambda d: d["tables"][0].update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["tables"][0]["rows"][0].update(values=[0.2, 0.3]), "2 values for 1 columns"),
    (lambda d: d["tables"][0]["rows"][0].update(values=["0.2"]), "expected number or null"),
    (lambda d: d["tables"][0]["rows"][0].update(values=[True]), "expected number or null"),
    (lambda d: d["tables"][0]["rows"][0].update(values=[float("nan")]), "expected number or null"),
    (lambda d: d["tables"][0]["rows"][0].pop("ours"), "exactly one of `ours` and `not_implemented`"),
    (lambda d: d["tables"][0]["rows"][1].update(ours={"method": "br"}), "exactly one of"),
    (lambda d: d["tables"][0]["groups"][0]["metrics"][0].update(higher_is_better=False),
     "mmerbench.metrics says True"),
    (lambda d: d["tables"][0]["groups"][0]["metrics"][0].update(key="acuracy"), "Unknown metric 'acuracy'"),
    (lambda d: d["tables"][0]["groups"][0]["metrics"][0].update(unit="permille"), "expected one of"),
    (lambda d: d["tables"][0]["rows"][0].update(ambiguous={"F1": "?"}), "ambiguous key 'F1' is not a column"),
    (lambda d: d["tables"][0]["groups"][0]["metrics"][0].pop("definition"), "missing key 'definition'"),
    (lambda d: d["tables"][0]["rows"][0].update(keys={"F1": "micro_f1"}), "keys names 'F1', which is not a column"),
    (lambda d: d["tables"][0]["rows"][0].update(keys={"Acc": "acuracy"}), "Unknown metric 'acuracy'"),
    (lambda d: d["tables"][0]["rows"][0].update(keys={"Acc": "hamming_loss"}), "runs the other way"),
    (lambda d: d["tables"][0]["rows"][0].update(attributes={"Context": "✓"}), "not in row_attributes"),
    (lambda d: d["tables"][0]["rows"][0].update(groups={"Nope": {"not_implemented": "x"}}), "unknown group"),
    (lambda d: d["tables"][0].pop("dataset"), "no dataset for group"),
    (lambda d: d["tables"][0]["rows"][0]["ours"].update(set={"modalities": [{"a": 1}]}), "expected string"),
    (lambda d: d["tables"].append(copy.deepcopy(d["tables"][0])) or d["tables"][1]["groups"].append(
        copy.deepcopy(d["tables"][1]["groups"][0])), "group names repeat"),
])
def test_schema_and_rules_catch_mistakes(mutate, message):
    doc = _minimal()
    mutate(doc)
    errors = validate(doc)
    assert any(message in e for e in errors), errors


def test_check_schema_reports_every_problem_with_its_place():
    errors = check_schema({"a": 1, "b": "x"}, {"type": "object", "required": ["c"],
                                               "properties": {"a": {"type": "string"}}})
    assert sorted(errors) == sorted(["$: missing key 'c'", "$.a: expected string, got int 1",
                                     "$: unknown key 'b' (known: a)"])


def test_bad_files_are_one_sentence(tmp_path):
    (tmp_path / "a.yaml").write_text("tables: [unclosed\n")
    with pytest.raises(MmerbenchError, match=r"a.yaml is not valid YAML \(line 2\)"):
        papers.load_papers(tmp_path)
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MmerbenchError, match="not UTF-8"):
        papers.load_papers(tmp_path)
    (tmp_path / "a.yaml").write_text("- just\n- a list\n")
    with pytest.raises(MmerbenchError, match="is invalid: \\$: expected object"):
        papers.load_papers(tmp_path)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(_minimal()))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(_minimal()))
    with pytest.raises(MmerbenchError, match="'p-t1' appears in both a.yaml and b.yaml"):
        papers.load_papers(tmp_path)
    with pytest.raises(MmerbenchError, match="No paper tables folder"):
        papers.load_papers(tmp_path / "nowhere")


def test_unknown_table_id_suggests_one(tables):
    with pytest.raises(MmerbenchError, match="Did you mean 'tailor-t3'"):
        papers.select(tables, ["tailor-t4"])


# ---------------------------------------------------------------- cells, merging, commands


def test_switches_merge_table_group_row_override(tables):
    t5 = next(t for t in tables if t.id == "auxloss-t5")
    bilstm = next(r for r in t5.rows if r.name.startswith("Bi-LSTM"))
    targets = {g.name: t5.target(bilstm, g) for g in t5.groups}
    assert dict(targets["A"].set) == {"modalities": ("audio",), "encoder": "bilstm", "unimodal_aux": False}
    assert dict(targets["A+T"].set)["modalities"] == ("text", "audio")
    assert {t.dataset for t in targets.values()} == {"msp-improv"}
    t1 = next(t for t in tables if t.id == "univa-t1")
    roberta = next(r for r in t1.rows if r.name == "UniVA-RoBERTa")
    mosei = t1.target(roberta, t1.groups[0])  # the group's override sets the pretrained-encoder preset
    assert (mosei.dataset, mosei.preset, dict(mosei.set)) == ("mosei-aligned", "roberta", {"threshold": 0.18})
    m3ed = t1.target(roberta, t1.groups[1])
    assert (m3ed.dataset, m3ed.preset) == ("m3ed", None)


@pytest.mark.parametrize("value", [True, False, None, 3, 0.35, 1e-5, "vtac", ("text", "audio"), ["a", 1],
                                   "true", "null", "a, b", "[x", "x: y", " padded", "", "it's"])
def test_set_values_round_trip_through_the_cli_parser(value):
    spec = RunSpec("m", "d", set=(("k", value),))
    key, parsed = parse_override(spec.overrides()[0])
    assert key == "k"
    assert parsed == (list(value) if isinstance(value, tuple) else value)


def test_runs_commands_list_each_config_once(tables):
    lines = papers.run_commands(papers.TableRequest(ids=("tailor-t3",), seeds=(1, 2)))
    cmds = [ln for ln in lines if not ln.startswith("#")]
    assert len(cmds) == 12 and len(set(cmds)) == 12
    assert ("mmerbench run --method tailor --dataset mosei-aligned --set amr_losses=none threshold=0.35 "
            "--seeds 1 2") in cmds
    twin = papers.run_commands(papers.TableRequest(ids=("robmmr-t1",), data="synthetic", preset="small"))
    assert "mmerbench run --method br --dataset synth-mosei-aligned --preset small --seeds 1 2 3" in twin
    assert any(ln.startswith("# n/a here (Unknown method 'robmmr'") for ln in twin) or "robmmr" in METHODS


def test_runs_cli_prints_commands():
    res = CliRunner().invoke(cli, ["table", "tailor-t2", "--runs", "--seeds", "4", "5"])
    assert res.exit_code == 0, res.output
    assert "mmerbench run --method br --dataset mosei-aligned --seeds 4 5" in res.output
    assert "mmerbench run --method tailor --dataset mosei-unaligned --set threshold=0.35 --seeds 4 5" in res.output


def test_table_fills_cells_from_the_runs_the_commands_make(twin_data_dir, tmp_path):
    """Run the br command `--runs` prints for the twin, then the table shows exactly that run's numbers."""
    runs = tmp_path / "runs"
    req = papers.TableRequest(ids=("tailor-t2",), data="synthetic", runs_dir=runs, scale=TINY_SCALE, seeds=(1, 2))
    cmd = next(ln for ln in papers.run_commands(req) if "--method br --dataset synth-mosei-aligned" in ln)
    args = cmd.split()[1:] + ["--data-dir", str(twin_data_dir), "--runs-dir", str(runs), "-q"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    doc = papers.build(req)
    t = doc.tables[0]
    assert t.labels == ["synthetic"] and "no Δ is shown" in t.footnotes[0]
    br = next(r for r in t.rows if r.meta["name"].startswith("BR"))
    acc = br.cells[1]  # Aligned / Acc
    stored = [results.read_metrics(runs / "synth-mosei-aligned" / "br" / acc.extra["run"]["config_hash"]
                                   / f"seed-{s}")["test"]["acc"] for s in (1, 2)]
    assert acc.extra["status"] == "ran" and acc.extra["ours_n"] == 2
    assert acc.extra["ours_mean"] == pytest.approx(sum(stored) / 2)
    assert acc.display.startswith("0.222 → ") and "(n=2)" in acc.display and "Δ" not in acc.display
    unaligned = br.cells[5]
    assert unaligned.extra["status"] == "not_run" and unaligned.display == "0.233 · not run"
    sgm = next(r for r in t.rows if r.meta["name"].startswith("SGM"))
    assert sgm.cells[1].extra["status"] == "not_implemented" and sgm.cells[1].display == "0.455 · —"


def test_real_cells_show_the_difference_in_the_papers_unit(tmp_path):
    """A stored run at the config hash `mmerbench run` would use: ours × 100 for a percent column, Δ shown."""
    from mmerbench.runner import RunRequest, prepare

    runs = tmp_path / "runs"
    prep = prepare(RunRequest(method="br", dataset="mosei-aligned"))
    for seed, acc in ((1, 0.20), (2, 0.24)):
        results.write_json(results.run_dir(runs, "mosei-aligned", "br", prep.config_hash, seed) / "metrics.json",
                           {"valid": {}, "test": {"acc": acc, "hamming_loss": 0.3, "micro_f1": 0.4,
                                                  "macro_f1": 0.3}, "decision": {}})
    doc = papers.build(papers.TableRequest(ids=("robmmr-t1",), runs_dir=runs))
    br = doc.tables[0].rows[0]
    acc = br.cells[1]
    assert acc.extra["ours_mean"] == pytest.approx(22.0) and acc.extra["diff"] == pytest.approx(-0.2)
    assert acc.extra["ours_std"] == pytest.approx(2.8284271, rel=1e-6)
    assert acc.display == "22.2 → 22.0 ± 2.8 (n=2) Δ -0.2"
    hl = br.cells[2]
    assert hl.extra["ours_mean"] == pytest.approx(0.3) and hl.display.startswith("0.371 → 0.300")
    nemu = br.cells[5]
    assert nemu.extra["status"] in ("not_available", "not_run")  # `nemu` lands with the data branch
    lp = doc.tables[0].rows[2]
    assert lp.cells[5].display.startswith("21.1?")  # ambiguous in the source: marked
    assert any("'21:1'" in n for n in doc.tables[0].footnotes)


def test_table_cli_writes_all_formats(tmp_path):
    out = tmp_path / "tables"
    res = CliRunner().invoke(cli, ["table", "tailor-t3", "univa-t3", "--runs-dir", str(tmp_path / "runs"),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["tables.html", "tables.json", "tables.md"]
    data = json.loads((out / "tables.json").read_text())
    ids = [t["meta"]["id"] for s in data["sections"] for t in s["tables"]]
    assert ids == ["tailor-t3", "univa-t3"]
    res = CliRunner().invoke(cli, ["table", "nope"])
    assert res.exit_code != 0 and "Unknown table 'nope'" in str(res.exception)


def test_not_run_cell_names_the_config_that_did_run_and_what_differs(tmp_path):
    """The README's TAILOR twin run with the default 0.5 rule fills no tailor-t3 cell (the rows map to the
    paper's 0.35): the cell says another config ran, and the footnote names the setting that differs."""
    from mmerbench.runner import RunRequest, prepare

    runs = tmp_path / "runs"
    table = papers.TableRequest(ids=("tailor-t3",), data="synthetic", preset="small", runs_dir=runs)
    row_of = lambda t: next(r for r in t.rows if r.meta["name"] == "(12) TAILOR")  # noqa: E731
    alone = papers.build(table).tables[0]
    assert row_of(alone).cells[2].display.endswith("· not run") and "elsewhere" not in row_of(alone).cells[2].extra

    prep = prepare(RunRequest(method="tailor", dataset="synth-mosei-aligned", preset="small"))
    folder = results.run_dir(runs, "synth-mosei-aligned", "tailor", prep.config_hash, 1)
    results.write_yaml(folder / "config.yaml", {**prep.config, "preset": "small"})
    results.write_json(folder / "metrics.json", {"valid": {"micro_f1": 0.6}, "test": {"micro_f1": 0.6},
                                                 "decision": {}})
    t = papers.build(table).tables[0]
    cell = row_of(t).cells[2]
    assert cell.extra["status"] == "not_run" and cell.display.endswith("· not run (other config ran)")
    assert cell.extra["elsewhere"] == (f"runs exist under config {prep.config_hash} (preset small), which "
                                       "differs in: threshold 0.5 (wanted 0.35)")
    assert any(n.startswith("(12) TAILOR: not run as mapped") and "threshold 0.5 (wanted 0.35)" in n
               for n in t.footnotes)
    # an ablation row differs in two settings from that run; the nearest config is still the one named
    ablation = next(r for r in t.rows if r.meta["name"] == "(6) ψ = [v, t, a, c]").cells[2].extra["elsewhere"]
    assert "fusion_order vatc (wanted vtac), threshold 0.5 (wanted 0.35)" in ablation
    # the run the README's corrected command makes fills the cell
    prep = prepare(RunRequest(method="tailor", dataset="synth-mosei-aligned", preset="small",
                              overrides=("threshold=0.35",)))
    results.write_json(results.run_dir(runs, "synth-mosei-aligned", "tailor", prep.config_hash, 1) / "metrics.json",
                       {"valid": {}, "test": {"micro_f1": 0.6}, "decision": {}})
    assert row_of(papers.build(table).tables[0]).cells[2].extra["status"] == "ran"


def test_config_differences_are_listed_key_by_key():
    from mmerbench.report.config_diff import differences

    a = {"params": {"lr": 1e-4, "threshold": 0.5, "modalities": ["text", "audio"]}, "data": {"scale": 0.2}}
    b = {"params": {"lr": 1e-4, "threshold": 0.35, "modalities": ["text"], "extra": True}, "data": {"scale": 1.0}}
    assert differences(a, b) == ["data.scale 0.2 (wanted 1.0)", "extra unset (wanted true)",
                                 "modalities [text, audio] (wanted [text])", "threshold 0.5 (wanted 0.35)"]
    assert differences(a, a) == []


def test_readme_tailor_commands_fill_a_paper_table_cell():
    """Every `mmerbench run --method tailor` line of the README runs a config that `mmerbench table` shows."""
    import re
    import shlex

    from mmerbench.runner import RunRequest, prepare

    def chash(method, dataset, preset, sets):
        return prepare(RunRequest(method=method, dataset=dataset, preset=preset, overrides=tuple(sets))).config_hash

    shown = set()
    for data in ("real", "synthetic"):
        for pt in papers.load_papers():
            for _, _, target in pt.targets():
                spec = papers._spec_for(target, papers.TableRequest(data=data, preset="small" if data == "synthetic"
                                                                   else None))
                if isinstance(spec, RunSpec) and spec.method == "tailor":
                    shown.add(chash(spec.method, spec.dataset, spec.preset, spec.overrides()))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    lines = [ln.split("#")[0] for ln in readme.splitlines() if ln.startswith("mmerbench run --method tailor")]
    assert len(lines) >= 3
    for line in lines:
        argv = shlex.split(line)
        opt = lambda name: argv[argv.index(name) + 1] if name in argv else None  # noqa: E731
        sets = argv[argv.index("--set") + 1:] if "--set" in argv else []
        sets = [s for s in sets if re.match(r"^\w+=", s)]
        assert chash("tailor", opt("--dataset"), opt("--preset"), sets) in shown, line
