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
Training examples are BERT's: `[CLS] A [SEP] B [SEP]` with B the lines that
follow A (50%) or lines from elsewhere (50%, NSP label 1); 15% of the word
pieces are predicted (80% `[MASK]`, 10% a random piece, 10% unchanged);
masking is redrawn every epoch. Tokenization is the project's
`mobilebert_tf.preprocessing` (BERT's WordPiece), so the ids are those the
exported preprocessor gives.

The files are written to a temporary directory inside `--output_dir` and
moved into place when complete; existing files are kept unless
`--overwrite`. Exit codes: 0 done, 2 usage error (one line on stderr).
"""

import collections
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import textwrap
import time
import zlib
from typing import Dict, List, NamedTuple, Optional, Sequence

from absl import flags
import numpy as np
import tensorflow as tf
import tf_keras

from checkpoints import name_map
from checkpoints import tf1_io
from checkpoints.demo import corpus
import mobilebert_tf
from mobilebert_tf import cli
from mobilebert_tf import preprocessing
from mobilebert_tf import vocab as vocab_lib

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

# Masked sentences shown in the README (and a sanity check for a reader).
EXAMPLE_SENTENCES = (
    "Return a new [MASK] containing the items of the iterable.",
    "If the file does not [MASK], an exception is raised.",
    "Raise ValueError if the value is not [MASK].",
    "The default [MASK] is None.",
    "Return True if the object is an [MASK] of the class.",
    "This function is not thread [MASK].",
)

# Held-out evaluation: the fraction of pieces masked, and its seed.
EVAL_MASK_RATE = 0.15
EVAL_SEED = 1234

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
  flags.DEFINE_float("learning_rate", 2e-3, "Peak learning rate (AdamW).",
                     **define)
  flags.DEFINE_float("warmup_fraction", 0.05,
                     "Fraction of the steps with a linear warm-up; then "
                     "linear decay to 0.", **define)
  flags.DEFINE_float("weight_decay", 0.01,
                     "AdamW weight decay (not on biases, norms and "
                     "embeddings).", **define)
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


def tokenize_lines(lines: Sequence[str], vocab_file: str,
                   do_lower_case: bool = True,
                   batch_size: int = 4096) -> List[np.ndarray]:
  """Word-piece ids of each line, with the project's BERT tokenizer.

  Args:
    lines: sequence of str.
    vocab_file: str. The vocabulary.
    do_lower_case: bool. Defaults to True.
    batch_size: int. Lines per tokenizer call. Defaults to 4096.

  Returns:
    A list of int32 arrays `[pieces]`, one per line (no special tokens).
  """
  tokenizer = preprocessing.BertWordpieceTokenizer(
      vocab_file=vocab_file, lower_case=do_lower_case)
  result = []
  for start in range(0, len(lines), batch_size):
    batch = tf.constant(list(lines[start:start + batch_size]))
    pieces = tokenizer(batch).merge_dims(1, 2)  # [batch, (pieces)]
    result.extend(np.asarray(row, np.int32) for row in pieces.to_list())
  return result


class Special(NamedTuple):
  pad: int
  unk: int
  cls: int
  sep: int
  mask: int


def special_ids(vocab: Sequence[str]) -> Special:
  index = {token: i for i, token in enumerate(vocab)}
  return Special(*(index[t] for t in
                   ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")))


def _mask_pieces(rng, ids, candidates, num_predict, special, vocab_size,
                 random_replace):
  """Masks `num_predict` of `candidates` positions of `ids` in place.

  Returns:
    (positions, labels), sorted by position.
  """
  chosen = np.sort(rng.choice(candidates, num_predict, replace=False))
  labels = ids[chosen].copy()
  for pos in chosen:
    draw = rng.random() if random_replace else 0.0
    if draw < 0.8:
      ids[pos] = special.mask
    elif draw < 0.9:
      ids[pos] = rng.integers(len(special), vocab_size)
    # else: keep the original piece.
  return chosen, labels


class Batch(NamedTuple):
  """Model inputs and targets, numpy arrays with a leading example axis."""
  input_word_ids: np.ndarray  # int32 [n, seq]
  input_mask: np.ndarray  # int32 [n, seq]
  input_type_ids: np.ndarray  # int32 [n, seq]
  masked_lm_positions: np.ndarray  # int32 [n, P]
  masked_lm_ids: np.ndarray  # int32 [n, P]
  masked_lm_weights: np.ndarray  # float32 [n, P]
  next_sentence_labels: np.ndarray  # int32 [n]

  def inputs(self, index=slice(None)):
    return dict(input_word_ids=self.input_word_ids[index],
                input_mask=self.input_mask[index],
                input_type_ids=self.input_type_ids[index],
                masked_lm_positions=self.masked_lm_positions[index])

  def __len__(self):
    return len(self.input_word_ids)

  def take(self, index):
    return Batch(*(array[index] for array in self))


def _pack(examples, seq_length, max_predictions):
  """Stacks `(ids, types, positions, labels, nsp)` tuples into a `Batch`."""
  n = len(examples)
  out = Batch(np.zeros([n, seq_length], np.int32),
              np.zeros([n, seq_length], np.int32),
              np.zeros([n, seq_length], np.int32),
              np.zeros([n, max_predictions], np.int32),
              np.zeros([n, max_predictions], np.int32),
              np.zeros([n, max_predictions], np.float32),
              np.zeros([n], np.int32))
  for row, (ids, types, positions, labels, nsp) in enumerate(examples):
    out.input_word_ids[row, :len(ids)] = ids
    out.input_mask[row, :len(ids)] = 1
    out.input_type_ids[row, :len(ids)] = types
    out.masked_lm_positions[row, :len(positions)] = positions
    out.masked_lm_ids[row, :len(positions)] = labels
    out.masked_lm_weights[row, :len(positions)] = 1.0
    out.next_sentence_labels[row] = nsp
  return out


def _truncate_pair(rng, a, b, max_tokens):
  """BERT's truncation: drop from the longer side's front or back."""
  a, b = list(a), list(b)
  while len(a) + len(b) > max_tokens:
    longer = a if len(a) > len(b) else b
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()
  return a, b


def make_pretraining_examples(rng: np.random.Generator,
                              lines: Sequence[np.ndarray], special: Special,
                              vocab_size: int, seq_length: int,
                              max_predictions: int) -> Batch:
  """One epoch of BERT pretraining examples (MLM + NSP) from ordered lines.

  Consecutive lines form a chunk of about `seq_length - 3` pieces (10% of
  chunks are shorter, as in BERT); the chunk is split into A and B at a line
  boundary, and half the time B is replaced by lines from a random place
  (NSP label 1). Then 15% of the pieces (at most `max_predictions`) are
  masked, 80/10/10.

  Args:
    rng: numpy random generator.
    lines: sequence of int arrays, the tokenized lines in corpus order.
    special: the special token ids.
    vocab_size: int.
    seq_length: int. Length of the examples (padded).
    max_predictions: int. Masked positions per example (padded).

  Returns:
    A `Batch` with one row per example, in a random order.
  """
  lines = [line for line in lines if len(line)]
  max_tokens = seq_length - 3
  examples = []
  i = 0
  while i < len(lines):
    target = max_tokens if rng.random() >= 0.1 else int(
        rng.integers(2, max_tokens + 1))
    chunk, length = [], 0
    while i < len(lines) and length < target:
      chunk.append(lines[i])
      length += len(lines[i])
      i += 1
    a_end = int(rng.integers(1, len(chunk))) if len(chunk) > 1 else 1
    a = np.concatenate(chunk[:a_end])
    if len(chunk) == 1 or rng.random() < 0.5:
      nsp = 1  # B is random text.
      want = max(1, target - len(a))
      j = int(rng.integers(0, len(lines)))
      pieces = []
      while j < len(lines) and sum(map(len, pieces)) < want:
        pieces.append(lines[j])
        j += 1
      b = np.concatenate(pieces) if pieces else lines[0]
      i -= len(chunk) - a_end  # Use the unused lines in the next chunk.
    else:
      nsp = 0
      b = np.concatenate(chunk[a_end:])
    if len(a) + len(b) > max_tokens:
      a, b = _truncate_pair(rng, a, b, max_tokens)
    if not len(a) or not len(b):
      continue
    ids = np.array([special.cls, *a, special.sep, *b, special.sep], np.int32)
    types = np.array([0] * (len(a) + 2) + [1] * (len(b) + 1), np.int32)
    candidates = np.array([p for p in range(len(ids))
                           if ids[p] not in (special.cls, special.sep)])
    num_predict = min(max_predictions,
                      max(1, int(round(len(candidates) * 0.15))))
    positions, labels = _mask_pieces(rng, ids, candidates, num_predict,
                                     special, vocab_size, random_replace=True)
    examples.append((ids, types, positions, labels, nsp))
  order = rng.permutation(len(examples))
  return _pack([examples[k] for k in order], seq_length, max_predictions)


def make_eval_examples(lines: Sequence[np.ndarray], special: Special,
                       vocab_size: int, seq_length: int,
                       seed: int = EVAL_SEED,
                       mask_rate: float = EVAL_MASK_RATE) -> Batch:
  """Deterministic masked-LM examples, one line each: `[CLS] line [SEP]`.

  Lines longer than `seq_length - 2` pieces are truncated; `mask_rate` of the
  pieces (at least one) are replaced by `[MASK]`. Empty lines are skipped.
  """
  rng = np.random.default_rng(seed)
  max_predictions = max(1, int(round((seq_length - 2) * mask_rate)))
  examples = []
  for line in lines:
    line = np.asarray(line)[:seq_length - 2]
    if not len(line):
      continue
    ids = np.array([special.cls, *line, special.sep], np.int32)
    num_predict = min(max_predictions,
                      max(1, int(round(len(line) * mask_rate))))
    positions, labels = _mask_pieces(
        rng, ids, np.arange(1, len(ids) - 1), num_predict, special,
        vocab_size, random_replace=False)
    examples.append((ids, np.zeros_like(ids), positions, labels, 0))
  return _pack(examples, seq_length, max_predictions)


# === Model ===


def demo_config(vocab_size: int, **overrides):
  """The demo `MobileBertConfig` for a vocabulary size."""
  return mobilebert_tf.MobileBertConfig.from_dict(
      dict(DEMO_CONFIG, vocab_size=vocab_size, **overrides))


def load_tf1_pretrainer(config, prefix: str, **encoder_overrides):
  """Builds a pretrainer (with NSP head) and loads an original TF1 checkpoint.

  Every variable of the checkpoint and of the model must match by name and
  shape (no optimizer slots are expected).

  Raises:
    ValueError: if names or shapes do not match.
  """
  pretrainer = mobilebert_tf.build_pretrainer(config, with_nsp=True,
                                              **encoder_overrides)
  values = tf1_io.read_tf1_checkpoint(prefix)
  table = name_map.tf1_to_keras(config)
  if set(values) != set(table):
    raise ValueError(
        f"Checkpoint {prefix} does not fit the config: missing "
        f"{sorted(set(table) - set(values))[:5]}, unexpected "
        f"{sorted(set(values) - set(table))[:5]}.")
  for name, entry in table.items():
    if tuple(values[name].shape) != entry.tf1_shape:
      raise ValueError(f"Shape mismatch for {name}: checkpoint "
                       f"{values[name].shape} vs model {entry.tf1_shape}.")
    variable = name_map.resolve(pretrainer.checkpoint_items, entry.keras_path)
    variable.assign(name_map.to_keras_value(values[name], entry,
                                            variable.shape))
  return pretrainer


def mlm_accuracy(pretrainer, batch: Batch, batch_size: int = 256,
                 top_k: Sequence[int] = (1, 5)) -> Dict[str, float]:
  """Top-k accuracy of the masked-LM head on a `Batch` (inference mode).

  Returns:
    `{"top1": float, "top5": float, "loss": float, "count": int}` (keys for
    each k in `top_k`; loss is the mean cross-entropy per masked piece).
  """
  hits = collections.Counter()
  total_loss, count = 0.0, 0.0
  for start in range(0, len(batch), batch_size):
    part = batch.take(slice(start, start + batch_size))
    logits = pretrainer(
        {k: tf.constant(v) for k, v in part.inputs().items()},
        training=False)["mlm_logits"].numpy()
    weights = part.masked_lm_weights
    labels = part.masked_lm_ids
    order = np.argsort(-logits, axis=-1)[..., :max(top_k)]
    for k in top_k:
      hit = (order[..., :k] == labels[..., None]).any(-1)
      hits[k] += float((hit * weights).sum())
    log_probs = tf.nn.log_softmax(logits).numpy()
    picked = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    total_loss -= float((picked * weights).sum())
    count += float(weights.sum())
  result = {f"top{k}": hits[k] / max(count, 1.0) for k in top_k}
  result.update(loss=total_loss / max(count, 1.0), count=int(count))
  return result


def fill_mask(pretrainer, vocab: Sequence[str], vocab_file: str,
              sentences: Sequence[str], top_k: int = 5,
              seq_length: int = 64) -> List[List[List[str]]]:
  """Top-k tokens for each `[MASK]` of each sentence.

  "[MASK]" in the text is replaced by the mask id (the word splitter would
  cut it into `[`, `mask`, `]`).

  Returns:
    For each sentence, for each mask (left to right), the `top_k` tokens.
  """
  special = special_ids(vocab)
  split = [sentence.split("[MASK]") for sentence in sentences]
  flat = tokenize_lines([part for parts in split for part in parts],
                        vocab_file)
  rows = []
  for parts in split:
    pieces, flat = flat[:len(parts)], flat[len(parts):]
    ids, positions = [special.cls], []
    for k, part in enumerate(pieces):
      if k:
        positions.append(len(ids))
        ids.append(special.mask)
      ids.extend(int(p) for p in part)
    ids.append(special.sep)
    rows.append((ids[:seq_length], positions))
  width = max(len(p) for _, p in rows)
  n = len(rows)
  word_ids = np.zeros([n, seq_length], np.int32)
  mask = np.zeros([n, seq_length], np.int32)
  pos = np.zeros([n, max(width, 1)], np.int32)
  for r, (ids, positions) in enumerate(rows):
    word_ids[r, :len(ids)] = ids
    mask[r, :len(ids)] = 1
    pos[r, :len(positions)] = positions
  logits = pretrainer(dict(
      input_word_ids=tf.constant(word_ids), input_mask=tf.constant(mask),
      input_type_ids=tf.zeros_like(word_ids), masked_lm_positions=pos),
                      training=False)["mlm_logits"].numpy()
  result = []
  for r, (_, positions) in enumerate(rows):
    result.append([[vocab[i] for i in np.argsort(-logits[r, m])[:top_k]]
                   for m in range(len(positions))])
  return result


# === Training ===


class WarmupLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
  """Learning-rate schedule: linear warm-up, then linear decay to zero."""

  def __init__(self, peak: float, warmup_steps: int, total_steps: int):
    super().__init__()
    self.peak = peak
    self.warmup_steps = warmup_steps
    self.total_steps = total_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = self.peak * step / max(self.warmup_steps, 1)
    decay = self.peak * tf.maximum(0.0, (self.total_steps - step) / max(
        self.total_steps - self.warmup_steps, 1))
    return tf.where(step < self.warmup_steps, warm, decay)

  def get_config(self):
    return dict(peak=self.peak, warmup_steps=self.warmup_steps,
                total_steps=self.total_steps)


def train(pretrainer, config, train_lines, eval_batch, special, *, steps,
          batch_size, seq_length, max_predictions, learning_rate,
          warmup_fraction, weight_decay, seed, jit_compile, eval_every,
          log=print):
  """Pretrains in place with MLM + NSP; returns a list of progress records."""
  rng = np.random.default_rng(seed)
  schedule = WarmupLinearDecay(learning_rate,
                               int(round(steps * warmup_fraction)), steps)
  optimizer = tf_keras.optimizers.AdamW(
      learning_rate=schedule, weight_decay=weight_decay, beta_1=0.9,
      beta_2=0.999, epsilon=1e-6, global_clipnorm=1.0)
  # No decay for biases, norm parameters and the embedding tables.
  optimizer.exclude_from_weight_decay(
      var_names=["bias", "gamma", "beta", "embeddings"])
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
      epoch_data = make_pretraining_examples(
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
      metrics = mlm_accuracy(pretrainer, eval_batch)
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


def _code(token: str) -> str:
  """A token as Markdown inline code (also a backtick)."""
  return f"`` {token} ``" if "`" in token else f"`{token}`"


def _readme(info) -> str:
  """The README of the bundled model, from the run's numbers."""
  c = info["config"]
  final = info["final"]

  def para(*parts):  # One wrapped paragraph, then a blank line.
    return textwrap.fill(" ".join(parts), width=79,
                         break_on_hyphens=False) + "\n"

  out = ["# Demonstration MobileBERT (trained on Python docstrings)\n"]
  out.append(para(
      "A small MobileBERT pretrained from scratch by",
      "`checkpoints/demo/train_demo_model.py`, for the exporter's default run",
      "(`python -m export.to_savedmodel` with no flags) and for tests. It is a",
      "real masked-LM, not random weights, but tiny and trained on a tiny",
      "corpus: it knows the language of Python documentation, not much",
      "else. This file is written by the training script."))
  out.append("## Files\n")
  out.append("| file | content | bytes |\n|---|---|---|")
  descriptions = {
      "bert_config.json": "configuration, original `bert_config.json` keys",
      "vocab.txt": "uncased WordPiece vocabulary learned from the corpus",
      "model.ckpt.index": "TF1 checkpoint (index)",
      "model.ckpt.data-00000-of-00001":
          "TF1 checkpoint (float32 weights, no optimizer slots)",
  }
  for name, description in descriptions.items():
    out.append(f"| `{name}` | {description} | {info['sizes'][name]:,} |")
  out.append("")
  out.append(para(
      "The checkpoint has the variable names and shapes of the original",
      "google-research code (`bert/embeddings/...`,",
      "`bert/encoder/layer_N/...` with `FakeLayerNorm`, `cls/predictions/...`,",
      "`cls/seq_relationship/...`), like Google's published MobileBERT",
      "checkpoints, so it goes through the same conversion path:"))
  out.append("```\n"
             "python -m checkpoints.convert \\\n"
             "  --bert_config_file=checkpoints/demo/bert_config.json \\\n"
             "  --tf1_checkpoint_path=checkpoints/demo/model.ckpt \\\n"
             "  --tf2_checkpoint_path=build/demo/model\n"
             "```\n")
  out.append("## Model\n")
  out.append(para(
      "The MobileBERT_OPT structure, shrunk:",
      f"{c['num_hidden_layers']} blocks of inter-block width",
      f"{c['hidden_size']} with a bottleneck of {c['intra_bottleneck_size']}",
      f"(key/query-shared), {c['num_attention_heads']} attention heads,",
      f"{c['num_feedforward_networks']} stacked feed-forward networks of",
      f"{c['intermediate_size']}, embeddings of {c['embedding_size']} with",
      "trigram input, NoNorm, ReLU,",
      f"{c['max_position_embeddings']} positions, {c['type_vocab_size']}",
      f"token types, a vocabulary of {c['vocab_size']}:",
      f"**{info['num_params']:,} parameters** (masked-LM and",
      "next-sentence heads included)."))
  out.append("## Data\n")
  out.append(para(
      f"The docstrings of {info['num_modules']} modules of the Python",
      f"{info['python']} standard library (`checkpoints/demo/corpus.py`;",
      "Python Software Foundation licence), split into sentences and code",
      "lines, whitespace-normalized and de-duplicated:",
      f"{info['num_lines']:,} lines, {info['num_words']:,} words,",
      f"{info['num_pieces']:,} word pieces.",
      "Lines whose CRC-32 is divisible by 20 are held out",
      f"({info['num_heldout_lines']:,} lines); the vocabulary",
      f"({c['vocab_size']:,} pieces, uncased, learned with",
      "`mobilebert_tf.vocab.learn_wordpiece_vocab`) and the training",
      f"examples come from the other {info['num_train_lines']:,}.",
      "Docstrings change between Python versions, so another version gives",
      "a slightly different corpus and model."))
  out.append("## Training\n")
  out.append(para(
      f"{info['steps']:,} steps of {info['batch_size']} examples of",
      f"{info['seq_length']} pieces ({info['epochs']} passes over the",
      "training lines): BERT's masked-LM (15% of the pieces, 80% `[MASK]`,",
      "10% random, 10% unchanged, redrawn every pass) plus next-sentence",
      "prediction (`[CLS] A [SEP] B [SEP]`, B the following lines or, half",
      "the time, lines from elsewhere); AdamW with peak learning rate",
      f"{info['learning_rate']}, {info['warmup_fraction']:.0%} linear",
      "warm-up then linear decay, weight decay",
      f"{info['weight_decay']}, gradient clipping at norm 1.0, dropout",
      f"{c['hidden_dropout_prob']}; seed {info['seed']}.",
      f"Training took {info['train_seconds'] / 60:.1f} minutes on",
      f"{info['machine']}. Command (from the repository root):"))
  out.append(f"```\n{info['command']}\n```\n")
  out.append("## Held-out masked-LM accuracy\n")
  out.append(para(
      f"On the {info['num_heldout_lines']:,} held-out lines, each as",
      "`[CLS] line [SEP]` with 15% of its pieces (at least one) replaced by",
      f"`[MASK]` (seed {EVAL_SEED}; {final['heldout_count']:,} masked",
      "pieces):"))
  out.append("| metric | value |\n|---|---|")
  out.append(f"| top-1 accuracy | {final['heldout_top1']:.1%} |")
  out.append(f"| top-5 accuracy | {final['heldout_top5']:.1%} |")
  out.append(f"| cross-entropy per masked piece | "
             f"{final['heldout_loss']:.3f} nats |")
  out.append("")
  out.append("Progress:\n")
  out.append("| step | train MLM loss | train NSP loss | held-out MLM loss "
             "| top-1 | top-5 |\n|---|---|---|---|---|---|")
  for r in info["history"]:
    out.append(f"| {r['step']} | {r['train_mlm_loss']:.3f} | "
               f"{r['train_nsp_loss']:.3f} | {r['heldout_loss']:.3f} | "
               f"{r['heldout_top1']:.1%} | {r['heldout_top5']:.1%} |")
  out.append("")
  out.append("## Example predictions (top 5, best first)\n")
  for sentence, predictions in zip(EXAMPLE_SENTENCES, info["examples"]):
    shown = "; ".join(", ".join(_code(t) for t in p) for p in predictions)
    out.append(f"- {sentence} → {shown}")
  out.append("")
  out.append("## Reproducing\n")
  out.append(para(
      "Run the command above (add `--overwrite` to replace these files).",
      "Data, initialization and masking are seeded; on another machine or",
      "TensorFlow build the numbers can differ slightly, as float32",
      "reductions depend on the CPU and the thread count."))
  return "\n".join(out)


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

  os.makedirs(output_dir, exist_ok=True)
  work = tempfile.mkdtemp(prefix=".train_demo_model-", dir=output_dir)
  try:
    t0 = time.time()
    tokens = vocab_lib.learn_wordpiece_vocab(
        train_lines, vocab_size=vocab_size, do_lower_case=True,
        learn_params=dict(lower_thresh=5))
    vocab_file = vocab_lib.write_vocab_file(
        tokens, os.path.join(work, "vocab.txt"))
    log(f"vocabulary: {len(tokens)} pieces, {time.time() - t0:.1f}s")
    special = special_ids(tokens)

    t0 = time.time()
    train_ids = tokenize_lines(train_lines, vocab_file)
    held_out_ids = tokenize_lines(held_out_lines, vocab_file)
    num_pieces = sum(map(len, train_ids)) + sum(map(len, held_out_ids))
    log(f"tokenized: {num_pieces} pieces, {time.time() - t0:.1f}s")
    eval_batch = make_eval_examples(held_out_ids, special, len(tokens),
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
    examples = fill_mask(pretrainer, tokens, vocab_file, EXAMPLE_SENTENCES)
    for sentence, predictions in zip(EXAMPLE_SENTENCES, examples):
      log(f"{sentence} -> {predictions}")

    with open(os.path.join(work, "bert_config.json"), "w",
              encoding="utf-8") as f:
      json.dump(config.to_dict(), f, indent=2)
      f.write("\n")
    tf1_io.export_tf1_checkpoint(pretrainer, config,
                                 os.path.join(work, CHECKPOINT_PREFIX))
    sizes = {n: os.path.getsize(os.path.join(work, n))
             for n in OUTPUT_FILES if n != "README.md"}
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
    with open(os.path.join(work, "README.md"), "w", encoding="utf-8") as f:
      f.write(_readme(info))
    for name in OUTPUT_FILES:
      os.replace(os.path.join(work, name), os.path.join(output_dir, name))
  finally:
    shutil.rmtree(work, ignore_errors=True)
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
