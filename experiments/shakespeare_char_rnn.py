"""Shakespeare char-rnn with probseq: the main job of the README (`make demo`).

The char-rnn tutorial's model (2-layer LSTM, 256 units, 50-character windows, batch 128,
Adam, gradient clipping at global norm 5, samples primed with "The ") trained on the
complete works of Shakespeare (`--corpus shakespeare`, contiguous 90/5/5 split) within a
CPU time budget. Prints held-out NLL per window, NLL per character and bits per
character on the test split (independent windows and one stream), and a primed sample;
writes a results JSON.

    python experiments/shakespeare_char_rnn.py                     # 9-minute default
    python experiments/shakespeare_char_rnn.py --budget-minutes 30 --max-steps 6000
    python experiments/shakespeare_char_rnn.py --tiny              # smoke test (seconds)

Rerunning with the same `--run-dir` resumes the run from its last checkpoint.
Departures from the tutorial, chosen for a ~10-minute CPU budget: Adam's peak learning
rate 2e-3 with 100 warm-up steps and cosine decay to 5% of the peak by the end of the
budget (or of max_steps, if that comes first); the tutorial uses a constant 1e-3.
"""

from __future__ import annotations

import argparse

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

from char_lm_driver import add_experiment_arguments, run_char_lm_experiment

# The tutorial's model. The cosine learning-rate decay ends at max_steps or at the end of
# the time budget, whichever comes first (on this 2-core machine: the time budget).
SETTINGS = dict(
    hidden_size=256,
    num_layers=2,
    num_steps=50,
    batch_size=128,
    learning_rate=2e-3,
    warmup_steps=100,
    clip_norm=5.0,
    max_steps=3000,
    eval_every=250,
    checkpoint_every=250,
)


def main(args: argparse.Namespace) -> dict:
    return run_char_lm_experiment("shakespeare_char_rnn", args, SETTINGS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_experiment_arguments(parser, corpus="shakespeare", run_dir="runs/shakespeare_char_rnn")
    main(parser.parse_args())
