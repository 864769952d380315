"""The README's leaderboard and table commands write the files the README names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmerbench.cli import cli
from tests.report_helpers import fake_run, multilabel_metrics

README = Path(__file__).resolve().parents[1] / "README.md"
NAMED = re.compile(r"leaderboards/([\w.-]+?)\.\{md,html,json\}")


def _commands() -> list[tuple[list[str], str]]:
    """Every `mmerbench leaderboard|table` line of the README's code blocks, with its comment."""
    text = README.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():  # join continued lines
            command, _, comment = line.partition("#")
            argv = shlex.split(command)
            if argv[:1] == ["mmerbench"] and argv[1:2] in (["leaderboard"], ["table"]):
                lines.append((argv[1:], comment))
    return lines


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "runs"
    for dataset, data in (("mosei-aligned", None), ("synth-mosei-aligned", {"scale": 0.2, "seed": 0})):
        for method, f1 in (("br", 0.45), ("mlp", 0.5)):
            for seed in (1, 2):
                fake_run(root, dataset, method, method * 5, seed, multilabel_metrics(0.3, 0.2, f1 + seed / 100),
                         data=data)
    return root


def test_readme_has_the_commands_this_test_reads():
    commands = _commands()
    assert sum(NAMED.search(c) is not None for _, c in commands) >= 4
    assert any(argv[0] == "table" for argv, _ in commands)


def test_readme_commands_write_the_files_it_names(store, tmp_path):
    written: set[str] = set()
    for i, (argv, comment) in enumerate(_commands()):
        if "--out" in argv or "--runs" in argv:
            continue  # prints instead of writing
        out = tmp_path / f"out{i}"
        extra = ["--no-plots"] if argv[0] == "leaderboard" else []
        res = CliRunner().invoke(cli, [*argv, "--runs-dir", str(store), "--out", str(out), *extra])
        assert res.exit_code == 0, (argv, res.output)
        files = sorted(p.name for p in out.iterdir())
        named = NAMED.search(comment)
        if named:
            assert files == sorted(f"{named.group(1)}.{ext}" for ext in ("html", "json", "md")), (argv, files)
        written.update(files)
    # every leaderboards/<file> the README opens or names is one that a README command writes
    text = README.read_text(encoding="utf-8")
    for name in re.findall(r"leaderboards/([\w-]+\.(?:md|html|json))\b", text):
        assert name in written, f"README names leaderboards/{name}, which no README command writes"
    for stem in set(NAMED.findall(text)):
        assert {f"{stem}.md", f"{stem}.html", f"{stem}.json"} <= written, stem


def test_prose_names_each_command_variant(store, tmp_path):
    """The README's list of output names (`leaderboard.*`, …) matches what each --data writes."""
    text = README.read_text(encoding="utf-8")
    for argv in (["leaderboard"], ["leaderboard", "--data", "synthetic"], ["leaderboard", "--data", "all"],
                 ["table", "tailor-t3"], ["table", "tailor-t3", "--data", "synthetic"]):
        out = tmp_path / "-".join(argv)
        extra = ["--no-plots"] if argv[0] == "leaderboard" else []
        res = CliRunner().invoke(cli, [*argv, "--runs-dir", str(store), "--out", str(out), *extra])
        assert res.exit_code == 0, (argv, res.output)
        stems = {p.name.rsplit(".", 1)[0] for p in out.iterdir()}
        assert len(stems) == 1, stems
        assert f"`{stems.pop()}.*`" in text, argv
