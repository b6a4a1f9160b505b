"""text8 LSTM language model with probseq (the text8 tutorial).

1-layer LSTM with 512 units over the 27-symbol text8 corpus (first 90M / next 5M /
last 5M characters), 64-character windows at uniformly random positions, batch 128,
Adam with learning rate 5e-3. Reports the tutorial's metric, the NLL summed over each
64-character window from a zero state (reference: ~78.4 nats at epoch 50, ~76.14 at
epoch 200 = 1.716 bits/char), plus bits/char and the streaming bits/char of the test
split.

    python experiments/text8_lstm.py --budget-minutes 30
    python experiments/text8_lstm.py --tiny --corpus some_text_file.txt   # smoke test

text8 is downloaded (100 MB zip, sha256-checked) into the cache dir on first use;
where it cannot be downloaded the script stops with a message saying how to supply
the file by hand.
"""

from __future__ import annotations

import argparse

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

from char_lm_driver import add_experiment_arguments, run_char_lm_experiment

SETTINGS = dict(
    hidden_size=512,
    num_layers=1,
    num_steps=64,
    batch_size=128,
    learning_rate=5e-3,
    warmup_steps=100,
    clip_norm=5.0,
    max_steps=5000,
    eval_every=500,
    checkpoint_every=250,
)


def main(args: argparse.Namespace) -> dict:
    return run_char_lm_experiment("text8_lstm", args, SETTINGS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_experiment_arguments(parser, corpus="text8", run_dir="runs/text8_lstm")
    parser.set_defaults(prime="the ")
    try:
        main(parser.parse_args())
    except OSError as error:  # DownloadError, CacheDirError
        raise SystemExit(f"text8_lstm: {error}") from None
