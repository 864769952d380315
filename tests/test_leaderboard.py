"""`mmerbench leaderboard`: tables from a hand-written run store, checked against NumPy and the metrics metadata."""

from __future__ import annotations

import json
import statistics
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

from mmerbench.cli import cli
from mmerbench.errors import MmerbenchError
from mmerbench.metrics import metric_info
from mmerbench.report import render
from mmerbench.report.leaderboard import LeaderboardRequest, build, load_runs

from report_helpers import fake_profile, fake_run, multilabel_metrics

TWIN = {"scale": 0.2, "seed": 0}


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "runs"
    # real data: three methods, br with 3 seeds, mult with 2 configs, tailor with 1 seed
    for seed, (acc, hl, f1) in enumerate([(0.30, 0.25, 0.45), (0.32, 0.24, 0.47), (0.31, 0.26, 0.44)], 1):
        fake_run(root, "mosei-aligned", "br", "aaaaaaaaaa", seed, multilabel_metrics(acc, hl, f1),
                 params={"C": 1.0})
    for seed, f1 in ((1, 0.50), (2, 0.52)):
        fake_run(root, "mosei-aligned", "mult", "bbbbbbbbbb", seed, multilabel_metrics(0.40, 0.20, f1),
                 params={"d_model": 30, "lr": 0.001})
        fake_run(root, "mosei-aligned", "mult", "cccccccccc", seed, multilabel_metrics(0.41, 0.19, f1 + 0.01),
                 params={"d_model": 16, "lr": 0.001}, preset="small")
    fake_run(root, "mosei-aligned", "tailor", "dddddddddd", 1, multilabel_metrics(0.45, 0.18, 0.40),
             params={"threshold": 0.35}, decision={"rule": "sigmoid > threshold", "threshold": 0.35})
    # the twin: never in the real table
    for seed in (1, 2):
        fake_run(root, "synth-mosei-aligned", "br", "eeeeeeeeee", seed, multilabel_metrics(0.9, 0.01, 0.95),
                 params={"C": 1.0}, data=TWIN)
    return root


def _table(doc, dataset):
    return next(t for t in doc.tables if t.meta["dataset"] == dataset)


def _col(table, key):
    return [c.key for c in table.columns].index(key)


def test_real_table_mean_std_seeds_and_order(store):
    doc = build(LeaderboardRequest(runs_dir=store, plots=False))
    assert [s.title for s in doc.sections] == ["Real data"]
    t = _table(doc, "mosei-aligned")
    assert not t.labels and not t.meta["synthetic"]
    names = [r.cells[0].display for r in t.rows]
    assert names == ["tailor", "mult", "mult", "br"]  # by acc, best first
    br = t.rows[3]
    j = _col(t, "metric:acc")
    vals = [0.30, 0.32, 0.31]
    assert br.cells[j].value == pytest.approx(np.mean(vals))
    assert br.cells[j].extra["std"] == pytest.approx(statistics.stdev(vals))
    assert br.cells[j].display == f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}"
    assert br.cells[_col(t, "n")].display == "3"
    assert t.rows[0].cells[j].display == "0.4500"  # one seed: its value, no ± 0
    assert br.cells[j].extra["per_seed"] == {"1": 0.30, "2": 0.32, "3": 0.31}


def test_columns_carry_the_metrics_direction_and_emphasis(store):
    t = _table(build(LeaderboardRequest(runs_dir=store, plots=False)), "mosei-aligned")
    for c in t.columns:
        if c.key.startswith("metric:"):
            assert c.higher_is_better is metric_info(c.key[7:]).higher_is_better
    hl = _col(t, "metric:hamming_loss")
    assert t.columns[hl].title == "HL ↓"
    emph = {r.cells[0].display + r.meta["config_hash"]: r.cells[hl].emphasis for r in t.rows}
    assert emph["tailordddddddddd"] == "best"  # lowest Hamming loss
    assert emph["multcccccccccc"] == "second"


def test_several_configs_are_told_apart(store):
    t = _table(build(LeaderboardRequest(runs_dir=store, plots=False)), "mosei-aligned")
    k = _col(t, "config")
    configs = {r.meta["config_hash"]: r.cells[k].display for r in t.rows}
    assert configs["bbbbbbbbbb"] == "no preset · d_model=30 · bbbbbbbbbb"
    assert configs["cccccccccc"] == "preset small · d_model=16 · cccccccccc"
    assert configs["aaaaaaaaaa"] == ""  # one config: no config label needed


def test_decision_rule_is_read_from_each_run(store):
    t = _table(build(LeaderboardRequest(runs_dir=store, plots=False)), "mosei-aligned")
    k = _col(t, "decision")
    assert {r.cells[0].display: r.cells[k].display for r in t.rows}["tailor"] == "sigmoid > 0.35"
    assert {r.cells[0].display: r.cells[k].display for r in t.rows}["br"] == "sigmoid > 0.5"


def test_twins_are_labelled_and_kept_apart(store):
    doc = build(LeaderboardRequest(runs_dir=store, data="all", plots=False))
    assert [s.title for s in doc.sections] == ["Real data", "Synthetic twins"]
    real, twin = doc.sections[0].tables, doc.sections[1].tables
    assert all(r.meta["dataset"] == "mosei-aligned" for t in real for r in t.rows)
    assert [t.meta["dataset"] for t in twin] == ["synth-mosei-aligned"]
    assert twin[0].labels == ["synthetic"] and "scale 0.2" in twin[0].title
    assert "not comparable with published numbers" in twin[0].footnotes[0]
    only = build(LeaderboardRequest(runs_dir=store, data="synthetic", plots=False))
    assert [t.meta["dataset"] for t in only.tables] == ["synth-mosei-aligned"]


def test_a_twin_generated_at_another_scale_gets_its_own_table(store):
    fake_run(store, "synth-mosei-aligned", "br", "ffffffffff", 1, multilabel_metrics(0.8, 0.02, 0.9),
             params={"C": 1.0}, data={"scale": 1.0, "seed": 0})
    doc = build(LeaderboardRequest(runs_dir=store, data="synthetic", plots=False))
    assert sorted(t.title for t in doc.tables) == ["synth-mosei-aligned (scale 0.2, seed 0)",
                                                   "synth-mosei-aligned (scale 1.0, seed 0)"]


def test_metric_selection(store):
    t = _table(build(LeaderboardRequest(runs_dir=store, metrics=("micro_f1", "hamming_loss"), plots=False)),
               "mosei-aligned")
    assert [c.key for c in t.columns if c.key.startswith("metric:")] == ["metric:micro_f1", "metric:hamming_loss"]
    order = [(r.cells[0].display, r.meta["config_hash"][0]) for r in t.rows]
    assert order == [("mult", "c"), ("mult", "b"), ("br", "a"), ("tailor", "d")]  # by the first metric asked for
    with pytest.raises(MmerbenchError, match="Did you mean 'micro_f1'"):
        build(LeaderboardRequest(runs_dir=store, metrics=("micro_f", ), plots=False))


def test_efficiency_columns_and_plots_from_profiles(store):
    fake_profile(store, "mosei-aligned", "br", "aaaaaaaaaa", {"params": 2_000, "latency_ms_p50": 0.5,
                                                             "train_samples_per_s": 9000.0})
    fake_profile(store, "mosei-aligned", "tailor", "dddddddddd", {"params": 4_500_000, "latency_ms_p50": 12.0,
                                                                 "train_samples_per_s": 300.0})
    t = _table(build(LeaderboardRequest(runs_dir=store)), "mosei-aligned")
    keys = [c.key for c in t.columns]
    assert "params" in keys and "latency_ms_p50:cpu-fp32" in keys and "train_samples_per_s:cpu-fp32" in keys
    by_name = {r.cells[0].display: r for r in t.rows}
    assert by_name["tailor"].cells[keys.index("params")].display == "4.50 M"
    assert by_name["br"].cells[keys.index("latency_ms_p50:cpu-fp32")].value == 0.5
    assert by_name["mult"].cells[keys.index("params")].display == "—"
    assert t.columns[keys.index("latency_ms_p50:cpu-fp32")].higher_is_better is False
    assert sorted(f.kind for f in t.figures) == ["quality-vs-latency", "quality-vs-parameters"]
    assert all(f.mime == "image/svg+xml" and f.data for f in t.figures)
    assert any("test-cpu" in n for n in t.footnotes)


def test_no_profiles_no_efficiency_columns(store):
    doc = build(LeaderboardRequest(runs_dir=store))
    t = _table(doc, "mosei-aligned")
    assert not any(c.key.startswith(("params", "latency", "train_samples")) for c in t.columns)
    assert t.figures == []
    # The page says why it has no plots and what makes them appear.
    html = render.render(doc, "html")
    assert "No plots: " in html and "no run is profiled yet" in html and "mmerbench profile" in html
    assert "only one dataset here" in html


def test_page_with_plots_has_no_missing_plots_note_and_no_plots_says_so(store):
    for method, chash in (("br", "aaaaaaaaaa"), ("tailor", "dddddddddd")):
        fake_profile(store, "mosei-aligned", method, chash, {"params": 2_000, "latency_ms_p50": 0.5})
    assert "No plots" not in render.render(build(LeaderboardRequest(runs_dir=store)), "html")
    html = render.render(build(LeaderboardRequest(runs_dir=store, plots=False)), "html")
    assert "No plots: they were left out (--no-plots)." in html


def test_bad_files_in_the_store_do_not_break_the_board(store):
    cfg = store / "mosei-aligned" / "br" / "aaaaaaaaaa" / "seed-1" / "config.yaml"
    cfg.write_text("params: [unclosed\n")
    (store / "mosei-aligned" / "br" / "aaaaaaaaaa" / "seed-9").mkdir()
    (store / "mosei-aligned" / "br" / "aaaaaaaaaa" / "seed-9" / "metrics.json").write_text("{trunc")
    bad_profile = store / "mosei-aligned" / "br" / "aaaaaaaaaa" / "profile" / "cpu-fp32.json"
    bad_profile.parent.mkdir()
    bad_profile.write_text("\x00\x01")
    t = _table(build(LeaderboardRequest(runs_dir=store, plots=False)), "mosei-aligned")
    br = next(r for r in t.rows if r.cells[0].display == "br")
    assert br.cells[_col(t, "n")].display == "3"  # the truncated seed is not a run
    assert br.meta["config_error"] == "config.yaml is not valid YAML"
    assert any("Unreadable config.yaml for: br" in n for n in t.footnotes)


def test_missing_or_empty_store_is_one_sentence(tmp_path):
    with pytest.raises(MmerbenchError, match="No run store at"):
        build(LeaderboardRequest(runs_dir=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmerbenchError, match="No complete runs"):
        build(LeaderboardRequest(runs_dir=tmp_path / "empty"))


def test_only_twins_and_data_real_says_so(tmp_path):
    fake_run(tmp_path, "synth-mosei-aligned", "br", "eeeeeeeeee", 1, multilabel_metrics(0.9, 0.01, 0.95), data=TWIN)
    with pytest.raises(MmerbenchError, match="--data synthetic"):
        build(LeaderboardRequest(runs_dir=tmp_path))


def test_load_runs_reads_every_complete_seed(store):
    runs = {(c.method, c.config_hash): c for c in load_runs(store)}
    assert runs[("br", "aaaaaaaaaa")].seeds == [1, 2, 3]
    assert runs[("br", "aaaaaaaaaa")].values("micro_f1") == [0.45, 0.47, 0.44]
    assert runs[("br", "eeeeeeeeee")].data_setting == "scale 0.2, seed 0"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_names_in_the_store_render_as_text(tmp_path):
    evil_method = '<img src=x onerror=alert(1)>|**x**'
    evil_value = '</td><script>alert(2)</script>'
    for chash, v in (("1111111111", evil_value), ("2222222222", "plain")):
        fake_run(tmp_path, "mosei-aligned", evil_method, chash, 1, multilabel_metrics(0.3, 0.2, 0.4),
                 params={"note": v}, preset="<b>p</b>",
                 decision={"rule": "<i>rule</i> > threshold", "threshold": 0.5})
    doc = build(LeaderboardRequest(runs_dir=tmp_path, plots=False))
    html = render.to_html(doc)
    p = _Tags()
    p.feed(html)
    assert p.tags.count("script") == 1 and "img" not in p.tags and "b" not in p.tags and "i" not in p.tags
    text = "".join(p.text)
    assert evil_method in text and "preset <b>p</b> · note=" in text and "<i>rule</i> > 0.5" in text
    md = render.to_markdown(doc)
    rows = [ln for ln in md.splitlines() if ln.startswith("| <") or ln.startswith("| &lt;")]
    assert len(rows) == 2 and "<img" not in md and "<script" not in md
    data = json.loads(render.to_json(doc))
    assert data["sections"][0]["tables"][0]["rows"][0]["meta"]["method"] == evil_method


def test_cli_writes_all_three_formats(store, tmp_path):
    out = tmp_path / "boards"
    res = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(store), "--out", str(out), "--data", "all",
                                   "--no-plots"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard-all.html", "leaderboard-all.json",
                                                     "leaderboard-all.md"]
    data = json.loads((out / "leaderboard-all.json").read_text())
    assert [s["title"] for s in data["sections"]] == ["Real data", "Synthetic twins"]
    res = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(store), "--format", "md", "--out", "-",
                                   "--metric", "micro_f1,acc"])
    assert res.exit_code == 0 and res.output.startswith("# mmerbench leaderboard")
    assert "Micro-F1 ↑" in res.output and "HL ↓" not in res.output


def test_one_rule_for_every_row_is_a_footnote_not_a_column(store):
    doc = build(LeaderboardRequest(runs_dir=store, data="synthetic", plots=False))
    (t,) = [t for t in doc.tables if t.meta["dataset"] == "synth-mosei-aligned"]
    assert "decision" not in [c.key for c in t.columns]
    assert "Decision rule of every row (stored with each run, metrics.json): sigmoid > 0.5." in t.footnotes
    # rows that differ keep the column (tailor 0.35, the rest 0.5)
    real = _table(build(LeaderboardRequest(runs_dir=store, plots=False)), "mosei-aligned")
    assert "decision" in [c.key for c in real.columns]
    assert not any(n.startswith("Decision rule of every row") for n in real.footnotes)


def test_html_fits_a_laptop_sticky_first_column_and_compact_efficiency_columns(store):
    fake_profile(store, "mosei-aligned", "br", "aaaaaaaaaa", {"params": 2_000, "latency_ms_p50": 0.5,
                                                             "train_samples_per_s": 9000.0})
    doc = build(LeaderboardRequest(runs_dir=store, plots=False))
    t = _table(doc, "mosei-aligned")
    compact = {c.key: c.header for c in t.columns if c.compact}
    assert compact == {"params": "params", "train_samples_per_s:cpu-fp32": "train/s [cpu fp32]",
                       "latency_ms_p50:cpu-fp32": "p50 ms [cpu fp32]"}
    assert all(len(h) <= 18 for h in compact.values())
    html = render.to_html(doc)

    class Classes(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.wrapped = [], 0
            self._in_scroll = False

        def handle_starttag(self, tag, attrs):
            cls = dict(attrs).get("class") or ""
            if tag == "div" and "scroll" in cls.split():
                self._in_scroll = True
            if tag == "table" and self._in_scroll:
                self.wrapped += 1
            if tag == "tr":
                self.rows.append([])
            if tag in ("td", "th") and self.rows:
                self.rows[-1].append(set(cls.split()))

        def handle_endtag(self, tag):
            if tag == "div":
                self._in_scroll = False

    p = Classes()
    p.feed(html)
    assert p.wrapped == html.count("<table")  # every table scrolls in its own box, not the page
    data_rows = [r for r in p.rows if len(r) == len(t.columns)]
    assert data_rows and all("first" in r[0] and not any("first" in c for c in r[1:]) for r in data_rows)
    assert all(sum("compact" in c for c in r) == len(compact) for r in data_rows)
    assert "position: sticky; left: 0" in html
