r"""Held-out masked-LM accuracy of a model of the demonstration's corpus.

Usage:

  python -m checkpoints.demo.evaluate --checkpoint=PATH
      --held_out_file=DIR/held_out.txt [--bert_config_file=CONFIG.json]
      [--vocab_file=vocab.txt] [--seq_length=64]

The numbers `checkpoints/demo/README.md` reports, measured the same way for
every version of the bundled model: each held-out line (`python -m
checkpoints.demo.data`) becomes `[CLS] line [SEP]` (at most `--seq_length`
pieces), 15% of its pieces (at least one) are replaced by `[MASK]` at
positions drawn with the fixed seed of
`training.pretraining_data.make_eval_examples`, and the model's masked-LM
head predicts them (inference mode). Prints the top-1 and top-5 accuracy,
the mean cross-entropy per masked piece, and the top 5 tokens for each
`[MASK]` of `EXAMPLE_SENTENCES` (`mobilebert_tf.fill_mask`).

`--checkpoint` is anything `mobilebert_tf` restores: the bundled TF1
checkpoint, a converted one, or a training run's directory (its latest
checkpoint). Defaults: the bundled configuration and vocabulary. Exit codes:
0 done, 2 bad input (one line on stderr).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# pylint: disable=g-import-not-at-top
import sys
from typing import Dict, List, Sequence

from absl import flags

from checkpoints import restore
from checkpoints.demo import data
from mobilebert_tf import cli
from mobilebert_tf import preprocessing
from mobilebert_tf.config import load_config
from mobilebert_tf.fill_mask import fill_mask
from mobilebert_tf.pretrainer import build_pretrainer
from training import evaluation
from training import pretraining_data

_PROGRAM = "python -m checkpoints.demo.evaluate"
DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = os.path.join(DEMO_DIR, "bert_config.json")
VOCAB_FILE = os.path.join(DEMO_DIR, "vocab.txt")
SEQ_LENGTH = 64

# Masked sentences whose predictions the README shows: a reader's check that
# the model learnt the corpus's language.
EXAMPLE_SENTENCES = (
    "Return a new [MASK] containing the items of the iterable.",
    "If the file does not [MASK], an exception is raised.",
    "Raise ValueError if the value is not [MASK].",
    "The default [MASK] is None.",
    "Return True if the object is an [MASK] of the class.",
    "This function is not thread [MASK].",
)


def held_out_metrics(pretrainer, lines: Sequence[str], vocab_file: str,
                     seq_length: int = SEQ_LENGTH) -> Dict[str, float]:
  """Masked-LM top-1/top-5 accuracy and cross-entropy on `lines`.

  Returns:
    `training.evaluation.masked_lm_metrics`'s dict: `top1`, `top5`, `loss`
    (nats per masked piece), `count` (masked pieces).
  """
  vocab = preprocessing.read_vocab(vocab_file)
  ids = pretraining_data.tokenize_lines(lines, vocab_file)
  batch = pretraining_data.make_eval_examples(
      ids, pretraining_data.special_ids(vocab), seq_length)
  return evaluation.masked_lm_metrics(pretrainer, batch)


def example_predictions(pretrainer, vocab_file: str,
                        sentences: Sequence[str] = EXAMPLE_SENTENCES,
                        top_k: int = 5) -> List[List[List[str]]]:
  """For each sentence, for each `[MASK]`, the `top_k` tokens (best first)."""
  preprocessor = preprocessing.build_preprocessor(
      vocab_file, do_lower_case=True, tokenize_with_offsets=False)
  results = fill_mask(list(sentences), preprocessor, pretrainer, top_k=top_k,
                      vocab=preprocessing.read_vocab(vocab_file))
  return [[[p["token"] for p in mask] for mask in row] for row in results]


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("checkpoint", None, "The model: a checkpoint prefix, "
                      "one of its files or a training run's directory (TF1 "
                      "or TF2).", **define)
  flags.DEFINE_string("held_out_file", None, "Text with one line per "
                      "example (blank lines are skipped), e.g. the "
                      "held_out.txt of python -m checkpoints.demo.data.",
                      **define)
  flags.DEFINE_string("bert_config_file", CONFIG_FILE, "The model's "
                      "bert_config.json, or a preset name. Default: the "
                      "bundled model's.", **define)
  flags.DEFINE_string("vocab_file", VOCAB_FILE, "The WordPiece vocabulary "
                      "(uncased). Default: the bundled one.", **define)
  flags.DEFINE_integer("seq_length", SEQ_LENGTH, "Pieces per example, "
                       "[CLS] and [SEP] included.", lower_bound=3, **define)
  return values


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the exit
  code."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(f"Usage: {_PROGRAM} --checkpoint=PATH --held_out_file=FILE "
          "[--bert_config_file=CONFIG.json] [--vocab_file=vocab.txt] "
          "[--seq_length=N]\n\nHeld-out masked-LM accuracy of a model of the "
          "demonstration corpus.\n\nFlags:\n" + values.get_help())
    return 0
  try:
    cli.parse(values, argv, required=("checkpoint", "held_out_file"))
    for flag in ("held_out_file", "vocab_file"):
      if not os.path.isfile(values[flag].value):
        raise cli.UsageError(f"--{flag}: no such file: {values[flag].value}")
    config = load_config(values.bert_config_file)
    lines = data.read_lines(values.held_out_file)
    if not lines:
      raise cli.UsageError(f"--held_out_file has no text: "
                           f"{values.held_out_file}")
    pretrainer = build_pretrainer(config, with_nsp=False)
    restore.load_checkpoint(pretrainer, config, values.checkpoint,
                            log=lambda line: None, flag="--checkpoint")
  except (cli.UsageError, OSError, ValueError) as e:
    return cli.error(_PROGRAM, cli.first_line(e))
  metrics = held_out_metrics(pretrainer, lines, values.vocab_file,
                             values.seq_length)
  print(f"{len(lines)} held-out lines, {metrics['count']} masked pieces")
  print(f"top-1 accuracy {100 * metrics['top1']:.1f}%")
  print(f"top-5 accuracy {100 * metrics['top5']:.1f}%")
  print(f"cross-entropy {metrics['loss']:.3f} nats per masked piece")
  predictions = example_predictions(pretrainer, values.vocab_file)
  for sentence, masks in zip(EXAMPLE_SENTENCES, predictions):
    print(f"{sentence} -> {' | '.join(', '.join(m) for m in masks)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
