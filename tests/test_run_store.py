"""The run store's guarantees: one process per seed folder, no checkpoint left after a finished run,
and a malformed metrics.json is skipped (and named), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmerbench import results
from mmerbench.cli import cli
from mmerbench.locks import file_lock
from mmerbench.runner import CHECKPOINT, LOCK, MODEL, RunRequest, prepare, run

from conftest import TINY_SCALE


def _req(twin_data_dir, runs, **kw):
    base = dict(method="mlp", dataset="synth-mosei-aligned", seeds=(3,), epochs=2,
                overrides=("hidden=16",), data_dir=str(twin_data_dir), runs_dir=str(runs),
                scale=TINY_SCALE, progress=False, device="cpu")
    base.update(kw)
    return RunRequest(**base)


_RUN = """
import sys, time
from pathlib import Path
from mmerbench.runner import RunRequest, run
req = RunRequest(method="mlp", dataset="synth-mosei-aligned", seeds=(3,), epochs=2, overrides=("hidden=16",),
                 data_dir={data!r}, runs_dir={runs!r}, scale={scale}, progress=False, device="cpu")
"""


@pytest.mark.slow  # two interpreters importing torch: ~25 s on a shared 2-core machine
def test_two_processes_on_one_seed_folder_train_it_once(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    log_b = tmp_path / "b.err"
    # A trains; at its first epoch end it waits until B has said it is waiting (B's stderr),
    # so the two really overlap. B then waits on the lock and skips the run A finished.
    a = _RUN + textwrap.dedent("""
        def hold(epoch, record):
            if epoch == 0:
                t = time.time()
                while "waiting" not in (Path({log_b!r}).read_text() if Path({log_b!r}).exists() else ""):
                    assert time.time() - t < 120, "B never waited"
                    time.sleep(0.05)
        (res,) = run(req, on_epoch_end=hold)
        print(res.status)
    """)
    b = _RUN + "(res,) = run(req)\nprint(res.status)\n"
    fmt = dict(data=str(twin_data_dir), runs=str(runs), scale=TINY_SCALE, log_b=str(log_b))
    proc_a = subprocess.Popen([sys.executable, "-c", a.format(**fmt)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = prepare(_req(twin_data_dir, runs)).folders[3]
    t = time.time()  # B starts once A is inside its first epoch's end (checkpoint written)
    while not (folder / CHECKPOINT).exists():
        assert proc_a.poll() is None, proc_a.communicate()
        assert time.time() - t < 120
        time.sleep(0.05)
    with open(log_b, "w") as err_b:
        proc_b = subprocess.run([sys.executable, "-c", b.format(**fmt)], stdout=subprocess.PIPE, stderr=err_b,
                                text=True, timeout=300)
    out_a, err_a = proc_a.communicate(timeout=300)
    assert proc_a.returncode == 0, err_a
    assert proc_b.returncode == 0, log_b.read_text()
    assert out_a.split() == ["ran"] and proc_b.stdout.split() == ["skipped"]
    lines = [ln for ln in log_b.read_text().splitlines() if "waiting" in ln]
    assert len(lines) == 1 and str(folder) in lines[0] and "another process" in lines[0]
    hist = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1]  # trained once, not twice into one folder


def test_lock_is_released_when_its_holder_dies(tmp_path):
    lock = tmp_path / "seed-1" / LOCK
    script = f"import os, fcntl; fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT); " \
             "fcntl.flock(fd, fcntl.LOCK_EX); os._exit(137)"
    lock.parent.mkdir()
    assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == 137
    with file_lock(lock, wait=False) as held:
        assert held


def test_a_held_lock_is_not_taken_twice(tmp_path):
    lock = tmp_path / LOCK
    with file_lock(lock) as first:
        assert first
        script = f"from mmerbench.locks import file_lock\nwith file_lock({str(lock)!r}, wait=False) as h: print(h)"
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "False", out.stderr
    with file_lock(lock, wait=False) as again:
        assert again


def test_a_second_run_on_a_locked_seed_folder_says_so_waits_and_skips(twin_data_dir, tmp_path, capsys):
    # The lock is per open file, so a second holder in this process conflicts like another process would.
    import threading

    runs = tmp_path / "runs"
    req = _req(twin_data_dir, runs, method="br", epochs=None, overrides=())  # quick to finish
    (first,) = run(req)
    got = []
    with file_lock(first.folder / LOCK):
        t = threading.Thread(target=lambda: got.extend(run(req)))
        t.start()
        err, deadline = "", time.time() + 60
        while "waiting" not in err and time.time() < deadline:
            time.sleep(0.02)
            err += capsys.readouterr().err
        assert t.is_alive() and not got  # it waits while the lock is held
    t.join(60)
    lines = [ln for ln in err.splitlines() if "waiting" in ln]
    assert len(lines) == 1 and str(first.folder) in lines[0] and "seed 3" in lines[0]
    assert [r.status for r in got] == ["skipped"] and got[0].metrics == first.metrics


class _Killed(BaseException):
    """Stands in for a SIGKILL: nothing after it in the runner runs."""


def test_checkpoint_left_by_a_kill_after_the_metrics_is_removed(twin_data_dir, tmp_path, monkeypatch):
    from mmerbench import runner

    runs = tmp_path / "runs"
    real = runner._finish

    def finish_then_die(*a, **k):
        real(*a, **k)
        raise _Killed  # metrics.json written, the checkpoint not yet removed

    monkeypatch.setattr(runner, "_finish", finish_then_die)
    with pytest.raises(_Killed):
        run(_req(twin_data_dir, runs))
    monkeypatch.setattr(runner, "_finish", real)
    folder = prepare(_req(twin_data_dir, runs)).folders[3]
    assert results.is_complete(folder) and (folder / CHECKPOINT).is_file() and (folder / MODEL).is_file()
    (again,) = run(_req(twin_data_dir, runs))
    assert again.status == "skipped"
    assert not (folder / CHECKPOINT).exists() and (folder / MODEL).is_file()


def _finished(twin_data_dir, runs, seed):
    (res,) = run(_req(twin_data_dir, runs, seeds=(seed,), method="br", epochs=None, overrides=()))
    return res.folder


def test_leaderboard_skips_a_run_whose_metrics_hold_a_null_or_a_string(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    good = _finished(twin_data_dir, runs, 1)
    bad = {2: None, 3: "0.5", 4: {"micro_f1": "high"}}
    folders = {}
    for seed, value in bad.items():
        folders[seed] = _finished(twin_data_dir, runs, seed)
        m = json.loads((folders[seed] / "metrics.json").read_text())
        m["test"] = value
        (folders[seed] / "metrics.json").write_text(json.dumps(m))
    out = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--data", "synthetic",
                                   "--format", "md", "--out", "-"])
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output and out.exception is None
    for seed, folder in folders.items():
        line = [ln for ln in out.output.splitlines() if str(folder) in ln]
        assert len(line) == 1 and line[0].startswith("skipped") and "metrics.json" in line[0], out.output
    assert str(good) not in out.output
    frame = results.collect(runs)
    assert set(frame["seed"]) == {1}


def _readme_run_files() -> dict[str, str]:
    """The run-store listing of the README: file name → its description."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("runs/<dataset>/<method>/<config-hash>/seed-<n>/\n", 1)[1].split("```", 1)[0]
    return dict(line.strip().split(None, 1) for line in block.splitlines() if line.strip())


def test_readme_lists_the_files_a_finished_run_holds(twin_data_dir, tmp_path):
    listed = _readme_run_files()
    assert {"model.pt", "metrics.json", "checkpoint.pt"} <= set(listed)
    runs = tmp_path / "runs"
    (neural,) = run(_req(twin_data_dir, runs))
    baseline = _finished(twin_data_dir, runs, 3)
    # a finished neural run: everything but the checkpoint (removed once finished)
    assert {p.name for p in neural.folder.iterdir()} == set(listed) - {CHECKPOINT}
    # a baseline: everything the README does not mark as the neural methods' alone
    assert {p.name for p in baseline.iterdir()} == {n for n, what in listed.items() if "neural methods" not in what}
