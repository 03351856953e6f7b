r"""Trains the demonstration MobileBERT bundled in `checkpoints/demo/`.

A small MobileBERT (bottleneck blocks, trigram input, NoNorm, stacked FFNs, as
in the published `*_OPT` models) pretrained from scratch with masked-LM and
next-sentence prediction on the docstrings of the Python standard library
(`checkpoints.demo.corpus`), with an uncased WordPiece vocabulary learned from
the same corpus. It is small enough to train on 2 CPU cores in about a quarter
of an hour and to run the exporter's demo in seconds; it is real enough that
its masked-word predictions make sense.

Usage (the command that made the bundled files; add `--overwrite` to
replace them):

  python -m checkpoints.demo.train_demo_model

writes into `--output_dir` (default: this directory):

  bert_config.json                      the model configuration
  vocab.txt                             the learned vocabulary (uncased)
  model.ckpt.index, model.ckpt.data-*   a TF1 checkpoint in the original
                                        google-research variable layout
                                        (`bert/...`, `cls/...`), no optimizer
  README.md                             how the files were made, with numbers

Data: 5% of the corpus lines (those with `is_held_out(line)`, a hash of the
text) are held out: the vocabulary and the training examples come from the
other 95%, and the held-out lines measure masked-LM accuracy at the end.
Training examples are BERT's, from the project's generator
(`training.pretraining_data`): `[CLS] A [SEP] B [SEP]` with B the lines that
follow A (50%) or lines from elsewhere (50%, NSP label 1); 15% of the word
pieces are predicted (80% `[MASK]`, 10% a random piece, 10% unchanged);
masking is redrawn every epoch. Tokenization is the project's
`mobilebert_tf.preprocessing` (BERT's WordPiece), so the ids are those the
exported preprocessor gives.

Training: AdamW from the project's one optimizer path
(`mobilebert_tf.optimization.create_optimizer`: linear warm-up and decay,
weight decay on kernels and embeddings, gradients clipped at norm 1).
Evaluation: `training.evaluation.masked_lm_metrics`; example predictions:
`mobilebert_tf.fill_mask`; the README: `checkpoints.demo.readme`.

Nothing is written until training is done; then each file is written
beside its target and renamed into place (`mobilebert_tf.files`); existing
files are kept unless `--overwrite`. Exit codes: 0 done, 2 usage error (one
line on stderr).
"""

import datetime
import json
import os
import platform
import sys
import tempfile
import time
import zlib
from typing import List, Optional, Sequence

from absl import flags
import numpy as np
import tensorflow as tf
import tf_keras

from checkpoints import tf1_io
from checkpoints.demo import corpus
from checkpoints.demo import readme
from checkpoints.demo.readme import EXAMPLE_SENTENCES
import mobilebert_tf
from mobilebert_tf import cli
from mobilebert_tf import files
from mobilebert_tf import optimization
from mobilebert_tf import preprocessing
from mobilebert_tf import vocab as vocab_lib
from mobilebert_tf.fill_mask import fill_mask
from training import evaluation
from training import pretraining_data

OUTPUT_FILES = ("bert_config.json", "vocab.txt", "model.ckpt.index",
                "model.ckpt.data-00000-of-00001", "README.md")
CHECKPOINT_PREFIX = "model.ckpt"
DEFAULT_OUTPUT_DIR = os.path.dirname(os.path.abspath(__file__))

# The demo architecture: the published MobileBERT_OPT structure, shrunk.
# `vocab_size` is set to the size of the learned vocabulary.
DEMO_CONFIG = dict(
    hidden_size=128,
    embedding_size=64,
    intra_bottleneck_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=256,
    num_feedforward_networks=2,
    hidden_act="relu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=128,
    type_vocab_size=2,
    initializer_range=0.02,
    trigram_input=True,
    use_bottleneck=True,
    use_bottleneck_attention=False,
    key_query_shared_bottleneck=True,
    normalization_type="no_norm",
    classifier_activation=False,
)

_PROGRAM = "python -m checkpoints.demo.train_demo_model"


def _define_flags() -> flags.FlagValues:
  """The CLI's flags, in a fresh `FlagValues` (no global state)."""
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string(
      "output_dir", DEFAULT_OUTPUT_DIR,
      "Directory for bert_config.json, vocab.txt, model.ckpt.* and "
      "README.md; created if missing (its parent must exist).", **define)
  flags.DEFINE_integer("steps", 3000, "Training steps.", **define)
  flags.DEFINE_integer("batch_size", 64, "Examples per step.", **define)
  flags.DEFINE_integer("seq_length", 64, "Training sequence length.",
                       **define)
  flags.DEFINE_integer("max_predictions", 10,
                       "Masked positions per example (15% of seq_length).",
                       **define)
  flags.DEFINE_float("learning_rate", 2e-3, "Learning rate (AdamW, "
                     "mobilebert_tf.optimization).", **define)
  flags.DEFINE_float("warmup_fraction", 0.05,
                     "Fraction of the steps with a linear warm-up; then "
                     "linear decay to 0.", **define)
  flags.DEFINE_float("weight_decay", 0.01,
                     "AdamW weight decay (not on biases and norms: "
                     "mobilebert_tf.optimization.uses_weight_decay).",
                     **define)
  flags.DEFINE_integer("vocab_size", 4000,
                       "Target vocabulary size; the learner may return "
                       "fewer.", **define)
  flags.DEFINE_integer("max_lines", None,
                       "Use only the first N corpus lines (for quick tests).",
                       **define)
  flags.DEFINE_integer("seed", 0, "Seed for initialization, data and "
                       "masking.", **define)
  flags.DEFINE_integer("eval_every", 500, "Report held-out accuracy every N "
                       "steps (0: only at the end).", **define)
  flags.DEFINE_integer("num_hidden_layers", DEMO_CONFIG["num_hidden_layers"],
                       "Transformer blocks.", **define)
  flags.DEFINE_boolean("jit_compile", False,
                       "Compile the training step with XLA (on 2 CPU cores "
                       "slower than without, for this small model).",
                       **define)
  flags.DEFINE_boolean("overwrite", False, "Replace existing output files.",
                       **define)
  return values


# Bad input from the command line: exit code 2, one line.
UsageError = cli.UsageError


# === Data ===


def is_held_out(line: str) -> bool:
  """Whether a corpus line belongs to the held-out 5% (hash of its text)."""
  return zlib.crc32(line.encode("utf-8")) % 20 == 0


def split_corpus(lines: Sequence[str]):
  """Returns `(train_lines, held_out_lines)`, each in corpus order."""
  train = [line for line in lines if not is_held_out(line)]
  held_out = [line for line in lines if is_held_out(line)]
  return train, held_out


# === Model ===


def demo_config(vocab_size: int, **overrides):
  """The demo `MobileBertConfig` for a vocabulary size."""
  return mobilebert_tf.MobileBertConfig.from_dict(
      dict(DEMO_CONFIG, vocab_size=vocab_size, **overrides))


def predict_masks(pretrainer, vocab: Sequence[str], vocab_file: str,
                  sentences: Sequence[str],
                  top_k: int = 5) -> List[List[List[str]]]:
  """The `top_k` tokens for each `[MASK]` of each sentence (fill-mask).

  Returns:
    For each sentence, for each mask (left to right), the `top_k` tokens,
    most likely first.
  """
  preprocessor = preprocessing.build_preprocessor(
      vocab_file, do_lower_case=True, tokenize_with_offsets=False)
  results = fill_mask(list(sentences), preprocessor, pretrainer,
                      top_k=top_k, vocab=vocab)
  return [[[p["token"] for p in mask] for mask in row] for row in results]


# === Training ===


def train(pretrainer, config, train_lines, eval_batch, special, *, steps,
          batch_size, seq_length, max_predictions, learning_rate,
          warmup_fraction, weight_decay, seed, jit_compile, eval_every,
          log=print):
  """Pretrains in place with MLM + NSP; returns a list of progress records."""
  rng = np.random.default_rng(seed)
  optimizer = optimization.create_optimizer(
      "adamw", learning_rate=learning_rate, num_train_steps=steps,
      num_warmup_steps=int(round(steps * warmup_fraction)),
      weight_decay_rate=weight_decay)
  variables = pretrainer.trainable_variables

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def train_step(inputs, mlm_ids, mlm_weights, nsp_labels):
    with tf.GradientTape() as tape:
      outputs = pretrainer(inputs, training=True)
      mlm_loss = tf_keras.losses.sparse_categorical_crossentropy(
          mlm_ids, outputs["mlm_logits"], from_logits=True)
      mlm_loss = tf.reduce_sum(mlm_loss * mlm_weights) / tf.maximum(
          tf.reduce_sum(mlm_weights), 1.0)
      nsp_loss = tf.reduce_mean(
          tf_keras.losses.sparse_categorical_crossentropy(
              nsp_labels, outputs["next_sentence"], from_logits=True))
      loss = mlm_loss + nsp_loss
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return mlm_loss, nsp_loss

  history = []
  epoch_data, cursor, epoch = None, 0, 0
  losses = []
  start = time.time()
  for step in range(1, steps + 1):
    if epoch_data is None or cursor + batch_size > len(epoch_data):
      epoch_data = pretraining_data.make_pretraining_examples(
          rng, train_lines, special, config.vocab_size, seq_length,
          max_predictions)
      if len(epoch_data) < batch_size:  # Tiny corpora: repeat the examples.
        epoch_data = epoch_data.take(
            np.arange(batch_size) % max(len(epoch_data), 1))
      cursor, epoch = 0, epoch + 1
    part = epoch_data.take(slice(cursor, cursor + batch_size))
    cursor += batch_size
    mlm_loss, nsp_loss = train_step(
        {k: tf.constant(v) for k, v in part.inputs().items()},
        tf.constant(part.masked_lm_ids), tf.constant(part.masked_lm_weights),
        tf.constant(part.next_sentence_labels))
    losses.append((float(mlm_loss), float(nsp_loss)))
    if step == steps or (eval_every and step % eval_every == 0):
      mean = np.mean(losses, axis=0)
      losses = []
      metrics = evaluation.masked_lm_metrics(pretrainer, eval_batch)
      record = dict(step=step, epoch=epoch, seconds=time.time() - start,
                    train_mlm_loss=float(mean[0]),
                    train_nsp_loss=float(mean[1]), **{
                        f"heldout_{k}": v for k, v in metrics.items()})
      history.append(record)
      log(f"step {step}/{steps} epoch {epoch} {record['seconds']:.0f}s "
          f"train mlm {mean[0]:.3f} nsp {mean[1]:.3f} | held-out mlm loss "
          f"{metrics['loss']:.3f} top1 {metrics['top1']:.3f} top5 "
          f"{metrics['top5']:.3f}")
  return history


# === Output ===


def _count_params(pretrainer) -> int:
  return int(sum(np.prod(v.shape) for v in pretrainer.trainable_variables))


def run(output_dir: str, *, steps: int, batch_size: int, seq_length: int,
        max_predictions: int, learning_rate: float, warmup_fraction: float,
        weight_decay: float, vocab_size: int, max_lines: Optional[int],
        seed: int, eval_every: int, jit_compile: bool, overwrite: bool,
        num_hidden_layers: int = DEMO_CONFIG["num_hidden_layers"],
        command: str = "", log=print) -> dict:
  """Builds the corpus and vocabulary, trains, writes the bundle.

  Returns:
    A dict of the run's numbers (what the README reports).

  Raises:
    UsageError: bad arguments, or output files exist without `overwrite`.
  """
  for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 1),
                           ("seq_length", seq_length, 8),
                           ("max_predictions", max_predictions, 1),
                           ("vocab_size", vocab_size, 32),
                           ("num_hidden_layers", num_hidden_layers, 1)):
    if value < low:
      raise UsageError(f"--{name} must be >= {low}. Received: {value}")
  if seq_length > DEMO_CONFIG["max_position_embeddings"]:
    raise UsageError(
        f"--seq_length must be <= {DEMO_CONFIG['max_position_embeddings']} "
        f"(max_position_embeddings). Received: {seq_length}")
  if max_lines is not None and max_lines < 20:
    raise UsageError(f"--max_lines must be >= 20. Received: {max_lines}")
  if not 0.0 <= warmup_fraction < 1.0:
    raise UsageError("--warmup_fraction must be in [0, 1). Received: "
                     f"{warmup_fraction}")
  output_dir = os.path.abspath(output_dir)
  parent = os.path.dirname(output_dir)
  if not os.path.isdir(parent):
    raise UsageError(f"Parent directory of --output_dir does not exist: "
                     f"{parent}")
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise UsageError(f"--output_dir is not a directory: {output_dir}")
  existing = [n for n in OUTPUT_FILES
              if os.path.exists(os.path.join(output_dir, n))]
  if existing and not overwrite:
    raise UsageError(f"{output_dir} already has {', '.join(existing)}; pass "
                     "--overwrite to replace them.")


  t0 = time.time()
  lines = corpus.stdlib_docstring_lines(max_lines=max_lines)
  train_lines, held_out_lines = split_corpus(lines)
  if not held_out_lines:  # Tiny corpora (tests): hold out the last lines.
    train_lines, held_out_lines = lines[:-5], lines[-5:]
  log(f"corpus: {len(lines)} lines ({len(train_lines)} train, "
      f"{len(held_out_lines)} held out), {time.time() - t0:.1f}s")

  # Working files (the vocabulary the tokenizer reads, the checkpoint) live
  # in a temporary directory; the bundle is written at the end.
  with tempfile.TemporaryDirectory(prefix="train_demo_model-") as work:
    t0 = time.time()
    tokens = vocab_lib.learn_wordpiece_vocab(
        train_lines, vocab_size=vocab_size, do_lower_case=True,
        learn_params=dict(lower_thresh=5))
    vocab_file = vocab_lib.write_vocab_file(
        tokens, os.path.join(work, "vocab.txt"))
    log(f"vocabulary: {len(tokens)} pieces, {time.time() - t0:.1f}s")
    special = pretraining_data.special_ids(tokens)

    t0 = time.time()
    train_ids = pretraining_data.tokenize_lines(train_lines, vocab_file)
    held_out_ids = pretraining_data.tokenize_lines(held_out_lines, vocab_file)
    num_pieces = sum(map(len, train_ids)) + sum(map(len, held_out_ids))
    log(f"tokenized: {num_pieces} pieces, {time.time() - t0:.1f}s")
    eval_batch = pretraining_data.make_eval_examples(held_out_ids, special,
                                                     seq_length)

    config = demo_config(len(tokens), num_hidden_layers=num_hidden_layers)
    tf_keras.utils.set_random_seed(seed)
    pretrainer = mobilebert_tf.build_pretrainer(config, with_nsp=True,
                                                validate_inputs=False)
    num_params = _count_params(pretrainer)
    log(f"model: {num_params:,} parameters")

    t0 = time.time()
    history = train(
        pretrainer, config, train_ids, eval_batch, special, steps=steps,
        batch_size=batch_size, seq_length=seq_length,
        max_predictions=max_predictions, learning_rate=learning_rate,
        warmup_fraction=warmup_fraction, weight_decay=weight_decay, seed=seed,
        jit_compile=jit_compile, eval_every=eval_every, log=log)
    train_seconds = time.time() - t0
    examples = predict_masks(pretrainer, tokens, vocab_file,
                             EXAMPLE_SENTENCES)
    for sentence, predictions in zip(EXAMPLE_SENTENCES, examples):
      log(f"{sentence} -> {predictions}")

    tf1_io.export_tf1_checkpoint(pretrainer, config,
                                 os.path.join(work, CHECKPOINT_PREFIX))
    contents = {"bert_config.json": (json.dumps(config.to_dict(), indent=2)
                                     + "\n").encode("utf-8")}
    for name in ("vocab.txt", CHECKPOINT_PREFIX + ".index",
                 CHECKPOINT_PREFIX + ".data-00000-of-00001"):
      with open(os.path.join(work, name), "rb") as f:
        contents[name] = f.read()
  sizes = {name: len(data) for name, data in contents.items()}
  info = dict(
      config=config.to_dict(), num_params=num_params,
      num_modules=len(corpus.STDLIB_MODULES),
      python=platform.python_version(), num_lines=len(lines),
      num_words=sum(len(line.split()) for line in lines),
      num_pieces=num_pieces, num_train_lines=len(train_lines),
      num_heldout_lines=len(held_out_lines), steps=steps,
      batch_size=batch_size, seq_length=seq_length,
      epochs=history[-1]["epoch"], learning_rate=learning_rate,
      warmup_fraction=warmup_fraction, weight_decay=weight_decay, seed=seed,
      train_seconds=train_seconds,
      machine=(f"{os.cpu_count()} CPU cores ({platform.machine()}), "
               f"TensorFlow {tf.__version__}, "
               f"{datetime.date.today().isoformat()}"),
      command=command or "python -m checkpoints.demo.train_demo_model",
      final=history[-1], history=history, examples=examples, sizes=sizes)
  contents["README.md"] = readme.render(info).encode("utf-8")
  # Each file appears complete (written beside it, then renamed); the README
  # last, so a bundle with the new README has all the new files.
  for name in OUTPUT_FILES:
    files.write_bytes(os.path.join(output_dir, name), contents[name],
                      overwrite=overwrite)
  return info


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the exit code."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(f"Usage: {_PROGRAM} [--output_dir=DIR] [--steps=N] [--overwrite] "
          "...\n\nTrains the demonstration MobileBERT.\n\nFlags:\n" +
          values.get_help())
    return 0
  try:
    cli.parse(values, argv)
  except cli.UsageError as e:
    return cli.error(_PROGRAM, str(e))
  # Recorded in the README: the flags this run set, except where to write.
  command = " ".join([_PROGRAM] + [
      (f"--{name}" if values[name].value else f"--no{name}")
      if isinstance(values[name].value, bool) else
      f"--{name}={values[name].value}"
      for name in sorted(values) if values[name].present and
      name not in ("overwrite", "output_dir")])
  try:
    run(values.output_dir, steps=values.steps, batch_size=values.batch_size,
        seq_length=values.seq_length, max_predictions=values.max_predictions,
        learning_rate=values.learning_rate,
        warmup_fraction=values.warmup_fraction,
        weight_decay=values.weight_decay, vocab_size=values.vocab_size,
        max_lines=values.max_lines, seed=values.seed,
        eval_every=values.eval_every, jit_compile=values.jit_compile,
        overwrite=values.overwrite, num_hidden_layers=values.num_hidden_layers,
        command=command, log=lambda line: print(line, flush=True))
  except UsageError as e:
    return cli.error(_PROGRAM, str(e))
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(main(sys.argv))
