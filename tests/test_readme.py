"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_execute():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})


def test_readme_load_and_export_blocks_run_on_a_trained_run(tmp_path, monkeypatch):
    """The `py` blocks (load, export, serve) need a run: train a tiny one where they look."""
    from probseq.cli.main import main

    blocks = re.findall(r"```py\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2 and "probseq.load(" in blocks[0] and "saved_model" in blocks[1]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be: The question, whether tis nobler. " * 200)
    monkeypatch.chdir(tmp_path)
    flags = ["--hidden-size", "8", "--num-layers", "1", "--num-steps", "8", "--batch-size",
             "4", "--max-steps", "2", "--eval-chars", "200", "--sample-length", "5",
             "--budget-minutes", "none", "--no-progress"]  # fmt: skip
    assert main(["train", "--corpus", str(corpus), "--run-dir", "runs/shk", *flags]) == 0
    assert main(["export", "runs/shk", "exported/shk"]) == 0
    namespace = {"__name__": "readme"}
    exec("import probseq", namespace)
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["text"].startswith("The ") and len(namespace["text"]) == 204
    assert namespace["texts"].shape == [1] and namespace["nats"].shape == [1]
    assert namespace["dist"].event_shape == [50]


def test_readme_names_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
