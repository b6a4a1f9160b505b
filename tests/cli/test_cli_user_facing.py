"""What a person sees: the human-readable output of every command, and the rough edges.

Regressions for issue 11: `evaluate` without `--json` crashed on every MAP run
(`KeyError: 'seed'`); the unknown-character error told a CLI user to pass a Python
keyword; `--num-steps 0` was ignored; no `--cell`, no `--version`; resuming with a
relative corpus path was refused; TensorFlow's C++ logs on every command; the
subpackages were not reachable from `import probseq`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import probseq
from probseq.cli.main import main
from probseq.cli.quiet import is_tensorflow_log_line

from .test_cli import TINY_FLAGS, _train, corpus_file  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_file) -> dict[str, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("runs")
    out = {"map": root / "map", "variational": root / "vi"}
    assert _train(out["map"], corpus_file, "--max-steps", "4") == 0
    vi_flags = ["--max-steps", "4", "--method", "variational", "--eval-draws", "3"]
    assert _train(out["variational"], corpus_file, *vi_flags) == 0
    return out


@pytest.mark.parametrize("mode", ["windows", "stream"])
@pytest.mark.parametrize("method", ["map", "variational"])
def test_evaluate_prints_a_readable_report(runs, capsys, method, mode):
    capsys.readouterr()
    assert main(["evaluate", str(runs[method]), "--split", "valid", "--mode", mode]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    report = captured.out
    assert f"({method}, checkpoint ckpt-4)" in report
    for label in ("NLL per window:", "NLL per char:", "bits per char:", "perplexity:"):
        assert label in report
    assert ("one stream" in report) == (mode == "stream")
    if method == "variational":
        assert "posterior predictive bits per char:" in report
        assert "posterior draws:      3 (seed 0)" in report
        assert "plug-in bits per char (posterior mean):" in report
    else:
        assert "posterior" not in report and "seed" not in report
    # The same numbers as --json.
    assert main(["evaluate", str(runs[method]), "--split", "valid", "--mode", mode, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert f"{result['bits_per_char']:.4f}" in report


@pytest.mark.parametrize("method", ["map", "variational"])
def test_sample_and_train_print_readable_text(runs, corpus_file, capsys, method):  # noqa: F811
    capsys.readouterr()
    assert main(["sample", str(runs[method]), "--prime", "the ", "--length", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the ") and len(out.rstrip("\n")) == 24
    assert _train(runs[method], corpus_file, "--max-steps", "5") == 0
    out = capsys.readouterr().out
    assert out.startswith("step 5: validation")
    assert ("posterior predictive" in out) == (method == "variational")


def test_unknown_characters_name_the_flags(runs, tmp_path, capsys):
    text = tmp_path / "held_out.txt"
    text.write_text("the king and queen of rome speak ZZ thou Q\n" * 5)
    capsys.readouterr()
    assert main(["evaluate", str(runs["map"]), "--text", str(text)]) == 2
    err = capsys.readouterr().err
    assert "'Z' (x10, first at position 33)" in err
    assert "--on-unknown skip" in err and "--on-unknown replace" in err
    assert "on_unknown=" not in err
    base = ["evaluate", str(runs["map"]), "--text", str(text), "--mode", "stream"]
    assert main([*base, "--on-unknown", "replace"]) == 0
    out = capsys.readouterr().out
    assert "unknown characters:   15 replaced" in out
    assert f"({len(text.read_text()):,} chars scored)" in out  # replaced by spaces, kept
    assert main([*base, "--on-unknown", "skip"]) == 0
    out = capsys.readouterr().out
    assert "unknown characters:   15 skipped" in out
    assert f"({len(text.read_text()) - 15:,} chars scored)" in out
    args = ["evaluate", str(runs["map"]), "--text", str(text), "--on-unknown", "replace",
            "--replacement", "#"]  # fmt: skip
    assert main(args) == 2
    assert "replacement" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "RUN", "--num-steps", "0"],
        ["evaluate", "RUN", "--draws", "-1"],
        ["sample", "RUN", "--length", "0"],
    ],
)
def test_non_positive_counts_are_refused(runs, capsys, args):
    args = [str(runs["map"]) if a == "RUN" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"probseq {probseq.__version__}"


def test_cell_flag_trains_and_loads_that_cell(tmp_path, corpus_file, capsys):  # noqa: F811
    run = tmp_path / "gru"
    assert _train(run, corpus_file, "--max-steps", "2", "--cell", "gru") == 0
    assert json.loads((run / "config.json").read_text())["cell"] == "gru"
    assert probseq.load(run).network.cell == "gru"
    assert main(["evaluate", str(run), "--split", "valid"]) == 0
    assert _train(run, corpus_file, "--max-steps", "3", "--cell", "lstm") == 2
    assert "cell: run has 'gru', requested 'lstm'" in capsys.readouterr().err


def test_runs_written_before_the_cell_setting_still_load(runs, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for item in runs["map"].iterdir():
        target = old / item.name
        if item.is_dir():
            target.symlink_to(item, target_is_directory=True)
        else:
            target.write_bytes(item.read_bytes())
    config = json.loads((old / "config.json").read_text())
    del config["cell"]
    (old / "config.json").write_text(json.dumps(config))
    assert probseq.load(old).network.cell == "lstm"


def test_resume_accepts_the_corpus_by_relative_or_absolute_path(
    tmp_path,
    corpus_file,  # noqa: F811
    monkeypatch,
):
    monkeypatch.chdir(corpus_file.parent)
    run = tmp_path / "run"
    assert _train(run, Path(corpus_file.name), "--max-steps", "2") == 0
    stored = json.loads((run / "config.json").read_text())["corpus"]
    assert stored == str(corpus_file.resolve())  # usable from any working directory
    assert _train(run, Path(corpus_file.name), "--max-steps", "3") == 0
    assert _train(run, corpus_file.resolve(), "--max-steps", "4") == 0
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run), "--split", "valid"]) == 0


def test_import_probseq_is_light_and_reaches_every_subpackage():
    code = (
        "import sys, probseq\n"
        "assert 'tensorflow' not in sys.modules, 'import probseq imported TensorFlow'\n"
        "print(probseq.inference.fit_map.__name__, probseq.evaluation.evaluate.__name__,\n"
        "      probseq.data.load_corpus.__name__, probseq.load.__name__,\n"
        "      probseq.LSTMAutoregressive.__name__, probseq.nn.cell_logits.__name__,\n"
        "      probseq.forecasting.DeepARForecaster.__name__,\n"
        "      probseq.distribute.make_strategy.__name__, probseq.machine.cpu_info.__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "fit_map", "evaluate", "load_corpus", "load", "LSTMAutoregressive", "cell_logits",
        "DeepARForecaster", "make_strategy", "cpu_info",
    ]  # fmt: skip
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        probseq.nope  # noqa: B018


def test_console_script_prints_no_tensorflow_logs(runs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    cmd = [sys.executable, "-m", "probseq.cli.main", "evaluate", str(runs["map"]),
           "--split", "valid", "--mode", "stream"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=300, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"bits per char:" in proc.stdout
    assert proc.stderr == b"", proc.stderr.decode()
    # The filter knows the formats it drops, and keeps everything else.
    assert is_tensorflow_log_line(
        b"W0000 00:00:1796118175.178489    6278 assert_op.cc:38] Ignoring Assert operator"
    )
    assert is_tensorflow_log_line(b"2026-12-01 09:39:21.487790: I tensorflow/core/util/port.cc")
    assert not is_tensorflow_log_line(b"probseq evaluate: error: --text x: no such file.")


def test_replacement_errors_and_warnings_speak_to_a_command_line_user(runs, tmp_path, capsys):
    text = tmp_path / "held_out.txt"
    text.write_text("the king ZZ\n" * 5)
    base = ["evaluate", str(runs["map"]), "--text", str(text)]
    capsys.readouterr()
    assert main([*base, "--replacement", " "]) == 2
    assert "--replacement is used with --on-unknown replace only" in capsys.readouterr().err
    assert main([*base, "--on-unknown", "replace", "--replacement", "#"]) == 2
    err = capsys.readouterr().err
    assert "'#' is not a symbol of the run's vocabulary" in err and "on_unknown=" not in err
    args = ["compare", str(runs["map"]), str(runs["variational"]), "--split", "valid",
            "--draws", "4"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "probseq compare: warning: model" in err and "has only 4 posterior draws" in err
    assert "warnings.warn(" not in err and ".py:" not in err
