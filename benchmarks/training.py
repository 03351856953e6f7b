r"""Pretraining throughput on this machine's CPU: train step and data tool.

Usage:

  python -m benchmarks.training [--quick] [--config=PRESET_OR_JSON]
      [--rows=ID,...] [--batch_size=N] [--seq_length=N]
      [--max_predictions=N] [--repeats=N] [--warmup=N] [--output_dir=DIR]
      [--nomemory] [--nodata] [--data_lines=N] [--data_repeats=N]
      [--dupe_factor=N]

Part 1, the train step: examples per second of one pretraining step
(forward, backward, LAMB update; masked-LM + next-sentence loss of
`training.pretraining_losses`) for the English OPT configuration (24
blocks, random weights) at batch 16 x seq 128 with 20 masked positions:

  ours              `build_pretrainer(config, with_nsp=True)`, "standard"
                    attention layout
  ours_heads_first  the same, `attention_layout="heads_first"`
  tfm               tf-models-official's MobileBERT pretrainer
                    (`official.projects.mobilebert.model_utils.
                    create_mobilebert_pretrainer`) plus the same `Dense(2)`
                    next-sentence head on its pooled output (it has none):
                    the baseline of the ratios

Every row holds the same initial weights (one checkpoint of
`checkpoint_items`, read by each), gets the same batch, the same losses and
an optimizer from the same `mobilebert_tf.optimization.create_optimizer`
call, and runs the step of `python -m training.pretrain`: `training.loop.
Trainer.train_steps` (a `tf.function`, no XLA) on the one-device strategy,
one step per call. The rows run in turn, the order rotating between
repeats; a row's figure is batch / median step time. Each row's losses at
the initial weights and after its steps (no dropout) are recorded against
ours: they show that every row computes the same thing. Peak memory: one
process per row (`--nomemory` skips it).

Part 2, the data tool: instances per second of `python -m
training.create_pretraining_data` against tf-models-official's
`official/nlp/data/create_pretraining_data.py` (its TF2 port of
google-research/bert's script; the original uses TF1's `tf.flags` and
`tf.gfile` and is not installed) on the same generated corpus and
vocabulary, each a fresh subprocess, alternating, median wall time over
repeats; also each tool's import time, and the rate without it.

Each run writes two files, atomically, into `--output_dir`:

  training-<UTC date-time>-<cpu>.json   every number, the machine, the flags
  training-<UTC date-time>-<cpu>.md     the tables (`format_report`)

The default `--output_dir` is benchmarks/results/, and build/benchmarks/
with `--quick` (a tiny config, a small batch and corpus, 1 repeat: a smoke
test), whose files end in "-quick".
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import concurrent.futures
import dataclasses
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from absl import flags

from benchmarks import latency
from benchmarks import machine as machine_lib
from benchmarks import memory as memory_lib
from benchmarks import result_files
from benchmarks import rows as rows_lib

PROGRAM = "python -m benchmarks.training"
REPO_ROOT = latency.REPO_ROOT
DEFAULT_CONFIG = latency.DEFAULT_CONFIG
# latency's tiny config with one block of one FFN (tracing a train step
# takes seconds per block) and no dropout at all: the rows' losses are then
# deterministic, and equal if the rows compute the same.
QUICK_CONFIG = dict(latency.QUICK_CONFIG, num_hidden_layers=1,
                    num_feedforward_networks=1,
                    attention_probs_dropout_prob=0.0)

BATCH_SIZE, SEQ_LENGTH, MAX_PREDICTIONS = 16, 128, 20
QUICK_BATCH_SIZE, QUICK_SEQ_LENGTH, QUICK_MAX_PREDICTIONS = 4, 16, 3
REPEATS, WARMUP = 10, 2
QUICK_REPEATS, QUICK_WARMUP = 1, 0
QUICK_MATMUL_SIZE = 256  # The full runs' 2048^3 takes seconds.
# The optimizer every row gets: the original pretraining's LAMB schedule
# (peak 1e-4 after a warm-up; far from its end during the benchmark).
OPTIMIZER_ARGS = dict(optimizer_type="lamb", learning_rate=1e-4,
                      num_train_steps=100000, num_warmup_steps=1000)
# --quick: no warm-up and a large rate, so that one step changes the loss
# visibly and equal final losses show equal updates.
QUICK_OPTIMIZER_ARGS = dict(OPTIMIZER_ARGS, learning_rate=1e-2,
                            num_warmup_steps=0)
LOSS_NAMES = ("loss", "masked_lm_loss", "next_sentence_loss")

DATA_LINES, DATA_REPEATS, DUPE_FACTOR = 5000, 3, 2
QUICK_DATA_LINES, QUICK_DATA_REPEATS, QUICK_DUPE_FACTOR = 200, 1, 1
MASKED_LM_PROB, RANDOM_SEED = 0.15, 12345


@dataclasses.dataclass(frozen=True)
class Row:
  """One way of running the train step.

  Attributes:
    id: str. The `--rows` name.
    name: str. The table's label.
    family: str. "ours" or "tfm".
    layout: str. For "ours": the `attention_layout`.
  """
  id: str
  name: str
  family: str
  layout: str = "standard"


ROWS = (
    Row("ours", "mobilebert_tf standard, tf.function", "ours"),
    Row("ours_heads_first", "mobilebert_tf heads_first, tf.function", "ours",
        layout="heads_first"),
    Row("tfm", "tf-models-official + Dense(2) NSP, tf.function", "tfm"),
)
BY_ID = {row.id: row for row in ROWS}
ROW_IDS = tuple(BY_ID)
DEFAULT_ROWS = ("ours", "ours_heads_first", "tfm")
BASELINE, REFERENCE = "tfm", "ours"
# The target: examples/s of `ours` / examples/s of `tfm`.
TARGET_RATIO = 1.25

DATA_TOOLS = {
    "ours": ("python -m training.create_pretraining_data",
             "training.create_pretraining_data"),
    "tfm": ("tf-models-official official/nlp/data/create_pretraining_data.py",
            "official.nlp.data.create_pretraining_data"),
}
_MEMORY_PREFIX = "MEMORY "


# === The train step ===


def select_rows(spec: str) -> List[str]:
  """The row ids a `--rows` value names, in table order, plus the baseline
  and the reference.

  Raises:
    cli.UsageError: an unknown id.
  """
  from mobilebert_tf import cli
  parts = [p.strip() for p in spec.split(",") if p.strip()]
  unknown = [p for p in parts if p not in BY_ID]
  if unknown or not parts:
    raise cli.UsageError(f"--rows: unknown {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(ROW_IDS)}")
  chosen = set(parts) | {BASELINE, REFERENCE}
  return [r for r in ROW_IDS if r in chosen]


def make_batch(vocab_size: int, batch: int, seq: int, predictions: int,
               seed: int = 0) -> Dict[str, object]:
  """Fixed random pretraining features (numpy), as the records give them.

  Encoder inputs as the latency benchmark's (`rows.inputs`: no padding,
  both segments); distinct masked positions, the last one of every other
  example padded (weight 0), both next-sentence labels.
  """
  import numpy as np
  features = rows_lib.inputs(dict(vocab_size=vocab_size), batch, seq, seed)
  rng = np.random.default_rng(seed + 1)
  positions = np.stack([np.sort(rng.choice(np.arange(1, seq), predictions,
                                           replace=False))
                        for _ in range(batch)]).astype(np.int32)
  ids = np.take_along_axis(features["input_word_ids"], positions, 1)
  weights = np.ones((batch, predictions), np.float32)
  weights[::2, -1] = 0.0
  features.update(
      masked_lm_positions=positions, masked_lm_ids=ids * (weights > 0),
      masked_lm_weights=weights,
      next_sentence_labels=(np.arange(batch) % 2).astype(np.int32)[:, None])
  return features


MODEL_INPUTS = ("input_word_ids", "input_mask", "input_type_ids",
                "masked_lm_positions")


def tfm_pretrainer(config):
  """tf-models-official's MobileBERT pretrainer with a next-sentence head.

  A Keras model calling `create_mobilebert_pretrainer`'s `BertPretrainerV2`
  and a `Dense(2)` on its `pooled_output` (our head: same initializer, same
  name), returning its outputs plus `next_sentence`. `checkpoint_items`
  are ours: `tf.train.Checkpoint(**items)` interchanges with
  `build_pretrainer(config, with_nsp=True)`.
  """
  import tensorflow as tf
  import tf_keras
  from official.projects.mobilebert import model_utils
  # tf-models-official 2.20.0's model_utils uses tf_keras without importing
  # it (tests/test_restore.py does the same).
  model_utils.tf_keras = tf_keras

  class TfmPretrainerWithNsp(tf_keras.Model):
    """`BertPretrainerV2` + `Dense(2)` next-sentence head."""

    def __init__(self, pretrainer, next_sentence):
      super().__init__(name="tfm_pretrainer_with_nsp")
      self.pretrainer = pretrainer
      self.next_sentence = next_sentence

    def call(self, inputs, training=None):
      outputs = dict(self.pretrainer(
          {k: inputs[k] for k in MODEL_INPUTS}, training=training))
      outputs["next_sentence"] = tf.cast(
          self.next_sentence(outputs["pooled_output"]), tf.float32)
      return outputs

    @property
    def checkpoint_items(self):
      return dict(self.pretrainer.checkpoint_items,
                  next_sentence=self.next_sentence)

  pretrainer = model_utils.create_mobilebert_pretrainer(
      model_utils.BertConfig.from_dict(config.to_dict()))
  head = tf_keras.layers.Dense(
      2, kernel_initializer=tf_keras.initializers.TruncatedNormal(
          stddev=config.initializer_range), name="next_sentence")
  head.build([None, config.hidden_size])
  return TfmPretrainerWithNsp(pretrainer, head)


def build_model(row_id: str, config):
  """The row's pretrainer with fresh random weights (variables created)."""
  row = BY_ID[row_id]
  if row.family == "tfm":
    return tfm_pretrainer(config)
  from mobilebert_tf import build_pretrainer
  return build_pretrainer(config, with_nsp=True,
                          attention_layout=row.layout)


def loss_function(model) -> Callable[[dict], Dict[str, float]]:
  """`fn(features)`: the losses at the model's current weights, without
  dropout (no update), as floats."""
  import tensorflow as tf
  from training import pretraining_losses

  @tf.function
  def evaluate(features):
    outputs = model({k: features[k] for k in MODEL_INPUTS}, training=False)
    return pretraining_losses.pretraining_loss(features, outputs)
  return lambda features: {k: float(v) for k, v in evaluate(features).items()}


@dataclasses.dataclass
class StepRunner:
  """A row ready to time: its model and the training loop's trainer."""
  model: object
  trainer: object
  iterator: object
  features: dict
  losses: Callable[[dict], Dict[str, float]]

  def __call__(self) -> None:
    """Runs one step (`Trainer.train_steps(iterator, 1)`)."""
    if not bool(self.trainer.train_steps(self.iterator, 1)):
      raise FloatingPointError("the loss is not finite")


def build_runner(row_id: str, config, features_np: dict,
                 checkpoint: Optional[str], model_dir: str,
                 optimizer_args: Mapping[str, object]) -> StepRunner:
  """The row's model (holding `checkpoint`'s weights) in the training loop.

  The step timed is `python -m training.pretrain`'s: `training.loop.
  Trainer` on the "one_device" strategy, with `pretraining_loss`, the
  CLI's metrics (masked-LM and NSP accuracy) and one step per call; the
  input is the same batch, repeated.

  Args:
    row_id: one of `ROW_IDS`.
    config: `MobileBertConfig`.
    features_np: `make_batch`'s features.
    checkpoint: str or None. A `tf.train.Checkpoint(**checkpoint_items)`
      prefix to read (None keeps fresh random weights: the memory process).
    model_dir: str. The Trainer's directory (nothing is saved).
    optimizer_args: `create_optimizer`'s arguments.
  """
  import tensorflow as tf
  from mobilebert_tf import optimization
  from training import distribution
  from training import loop
  from training import pretrain
  from training import pretraining_losses
  strategy = distribution.get_strategy("one_device")
  batch = len(features_np["input_word_ids"])
  with strategy.scope():
    model = build_model(row_id, config)
    if checkpoint:
      tf.train.Checkpoint(**model.checkpoint_items).read(
          checkpoint).assert_existing_objects_matched()
    trainer = loop.Trainer(
        strategy, model, optimization.create_optimizer(**optimizer_args),
        pretraining_losses.pretraining_loss, model_dir=model_dir,
        train_input_fn=lambda context, skip: tf.data.Dataset.from_tensors(
            features_np).repeat(),
        global_batch_size=batch, checkpoint_items=model.checkpoint_items,
        loss_names=LOSS_NAMES, metrics=pretrain.make_metrics(),
        update_metrics=pretrain.update_metrics, log=lambda line: None,
        progress=False)
  features = {k: tf.constant(v) for k, v in features_np.items()}
  return StepRunner(model, trainer, trainer.make_iterator(), features,
                    loss_function(model))


def _relative_difference(losses: Mapping[str, float],
                         reference: Mapping[str, float]) -> float:
  return max(abs(losses[k] - v) / abs(v) for k, v in reference.items())


def time_rows(row_ids: Sequence[str], config, features_np: dict,
              checkpoint: str, work_dir: str,
              optimizer_args: Mapping[str, object], warmup: int,
              repeats: int, log: Callable[[str], None]) -> Dict[str, dict]:
  """Interleaved step timings of `row_ids` (see `benchmarks.timing`).

  Args:
    row_ids: the rows; one that fails is reported with an `error`.
    config: `MobileBertConfig`.
    features_np: `make_batch`'s features.
    checkpoint: str. The shared weights (`checkpoint_items`).
    work_dir: str. The rows' Trainer directories go below it.
    optimizer_args: `create_optimizer`'s arguments, the same for every row.
    warmup: int. Untimed steps after the first.
    repeats: int. Timed steps of each row.
    log: called with progress lines.

  Returns:
    row id -> dict: `initial_losses` (dict of the loss terms at the shared
    weights, no dropout), `build_s`, `first_call_s` (tracing and the first
    step), `times` (seconds per timed step, in order), `ms_per_step`
    (median), `examples_per_s` (batch / median), `final_losses` (at the
    row's weights after all its steps, no dropout: each row trains its own
    copy from the same start, so without dropout the rows' values are
    equal), `ratio` (to `BASELINE`'s examples/s), and against `REFERENCE`
    `loss_relative_difference_vs_ours` and
    `final_loss_relative_difference_vs_ours`; or `error` (str).
  """
  from benchmarks import timing  # pylint: disable=g-import-not-at-top
  batch = len(features_np["input_word_ids"])
  runners, results = {}, {}
  for row in row_ids:
    start = time.perf_counter()
    try:
      runners[row] = build_runner(row, config, features_np, checkpoint,
                                  os.path.join(work_dir, row),
                                  optimizer_args)
      losses = runners[row].losses(runners[row].features)
      built = time.perf_counter()
      runners[row]()
      results[row] = dict(initial_losses=losses, build_s=built - start,
                          first_call_s=time.perf_counter() - built, times=[])
      for _ in range(warmup):
        runners[row]()
      log(f"  {row}: built and traced in {time.perf_counter() - start:.0f} s")
    except Exception as e:  # pylint: disable=broad-except
      log(f"  {row}: skipped ({timing.error_text(e)})")
      runners.pop(row, None)
      results[row] = dict(error=timing.error_text(e))
  active = [r for r in row_ids if r in runners]
  timed = timing.interleaved({row: runners[row] for row in active}, repeats)
  for row in active:
    results[row]["times"] = timed[row]
  for row in active:
    r = results[row]
    r["final_losses"] = runners[row].losses(runners[row].features)
    r["ms_per_step"] = statistics.median(r["times"]) * 1e3
    r["examples_per_s"] = batch / (r["ms_per_step"] / 1e3)
  reference = results.get(REFERENCE, {})
  for row in active:
    r = results[row]
    if "final_losses" in reference:
      r["loss_relative_difference_vs_ours"] = _relative_difference(
          r["initial_losses"], reference["initial_losses"])
      r["final_loss_relative_difference_vs_ours"] = _relative_difference(
          r["final_losses"], reference["final_losses"])
  base = results.get(BASELINE, {}).get("examples_per_s")
  for row in active:
    if base:
      results[row]["ratio"] = results[row]["examples_per_s"] / base
  return results


# === Peak memory: one process per row ===


def memory_child(row_id: str, config, shape: Sequence[int],
                 optimizer_args: Mapping[str, object]) -> dict:
  """In the child: imports, baseline, build and run 3 steps, peak (MiB)."""
  import importlib
  # The baseline is the size after the imports the row needs.
  for module in ("tensorflow", "tf_keras", "mobilebert_tf", "training.loop",
                 "training.pretrain", "official.projects.mobilebert."
                 "model_utils"):
    importlib.import_module(module)
  baseline = memory_lib.peak_mib()
  work_dir = tempfile.mkdtemp(prefix="mobilebert-training-memory-")
  try:
    runner = build_runner(row_id, config,
                          make_batch(config.vocab_size, *shape), None,
                          work_dir, optimizer_args)
    for _ in range(memory_lib.CALLS):
      runner()
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  peak = memory_lib.peak_mib()
  return dict(baseline_mib=baseline, peak_mib=peak,
              increment_mib=peak - baseline)


def measure_memory(row_id: str, config_file: str, shape: Sequence[int],
                   quick: bool = False, timeout: int = 1200) -> dict:
  """Runs `memory_child` in a fresh process (see `benchmarks.memory`).

  Args:
    row_id: one of `ROW_IDS`.
    config_file: str. The config's JSON file.
    shape: (batch, seq, max_predictions).
    quick: bool. With --quick's optimizer arguments. Defaults to False.
    timeout: int. Seconds. Defaults to 1200.

  Returns:
    {"baseline_mib", "peak_mib", "increment_mib"}, or {"error": str}.
  """
  command = [sys.executable, "-m", "benchmarks.training",
             f"--memory_child={row_id}", f"--config={config_file}",
             f"--batch_size={shape[0]}", f"--seq_length={shape[1]}",
             f"--max_predictions={shape[2]}", f"--quick={quick}"]
  try:
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, check=False,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  except subprocess.TimeoutExpired:
    return dict(error=f"timed out after {timeout} s")
  for line in reversed(done.stdout.splitlines()):
    if line.startswith(_MEMORY_PREFIX):
      return json.loads(line[len(_MEMORY_PREFIX):])
  lines = done.stderr.strip().splitlines()
  return dict(error=f"exit code {done.returncode}: "
                    f"{lines[-1] if lines else '(no output)'}")


# === The data tool ===

_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vo", "ne", "ti", "por",
              "gu", "da", "fe", "li", "mon", "bra")


def write_corpus(path: str, vocab_path: str, lines: int,
                 seed: int = 0) -> int:
  """Writes a made-up corpus and its word-piece vocabulary; returns lines.

  Words are one to three syllables; the vocabulary holds the specials,
  every one- and two-syllable word, each syllable as a "##" continuation
  and the punctuation, so three-syllable words split into pieces and
  capitalized words need lower-casing. One sentence per line, a blank line
  between documents of 4 to 12 sentences (the input format of both tools).
  """
  from mobilebert_tf import files
  from mobilebert_tf.vocab import SPECIAL_TOKENS
  rng = random.Random(seed)
  short = list(_SYLLABLES) + [a + b for a in _SYLLABLES for b in _SYLLABLES]
  vocab = (list(SPECIAL_TOKENS) + short + ["##" + s for s in _SYLLABLES]
           + [".", ","])
  files.write_text(vocab_path, "\n".join(vocab) + "\n", overwrite=True)
  out, document = [], 0
  while len(out) < lines:
    for _ in range(rng.randint(4, 12)):
      words = [rng.choice(short) + (rng.choice(_SYLLABLES)
                                    if rng.random() < 0.2 else "")
               for _ in range(rng.randint(5, 20))]
      if rng.random() < 0.3:
        words[rng.randrange(len(words))] += ","
      out.append(" ".join(words).capitalize() + ".")
    out.append("")
    document += 1
  files.write_text(path, "\n".join(out[:lines]) + "\n", overwrite=True)
  return lines


def data_command(tool: str, corpus: str, vocab: str, output: str,
                 seq_length: int, max_predictions: int,
                 dupe_factor: int) -> List[str]:
  """The command line of a data tool: google-research/bert's flags."""
  command = [sys.executable, "-m", DATA_TOOLS[tool][1],
             f"--input_file={corpus}", f"--output_file={output}",
             f"--vocab_file={vocab}", "--do_lower_case=true",
             f"--max_seq_length={seq_length}",
             f"--max_predictions_per_seq={max_predictions}",
             f"--masked_lm_prob={MASKED_LM_PROB}",
             f"--dupe_factor={dupe_factor}", f"--random_seed={RANDOM_SEED}"]
  if tool == "ours":
    command.append("--overwrite")
  return command


def _run_timed(command: Sequence[str], cwd: str, timeout: int = 1200):
  """(wall seconds, CompletedProcess) of a subprocess."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
  start = time.perf_counter()
  done = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout, check=False)
  return time.perf_counter() - start, done


def count_records(path: str, seq_length: int, max_predictions: int) -> int:
  """Records in a TFRecord file, each parsed with `training.records`' spec
  (so that both tools are shown to write the same format)."""
  import tensorflow as tf
  from training import records
  dataset = tf.data.TFRecordDataset(path).map(
      lambda r: tf.io.parse_single_example(
          r, records.feature_spec(seq_length, max_predictions)))
  return int(dataset.reduce(0, lambda n, _: n + 1))


def time_data_tools(work_dir: str, lines: int, seq_length: int,
                    max_predictions: int, dupe_factor: int, repeats: int,
                    log: Callable[[str], None],
                    time_imports: bool = True) -> dict:
  """Wall time of each data tool on one generated corpus, alternating.

  Args:
    work_dir: str. Where the corpus, vocabulary and outputs go.
    lines: int. Corpus lines (`write_corpus`).
    seq_length, max_predictions, dupe_factor: the tools' flags.
    repeats: int. Runs of each tool.
    log: called with progress lines.
    time_imports: bool. Also time `python -c "import MODULE"` after each
      run (one more process per run). Defaults to True.

  Returns:
    dict: `lines`, `dupe_factor`, ..., and `tools`: tool -> `times` (wall
    seconds per run), `import_times`, `instances`, `seconds` (median),
    `import_seconds` (median, None without `time_imports`),
    `instances_per_s`, `instances_per_s_without_import` (None without
    `time_imports`), `ratio` (to tfm's instances/s); or `error`.
  """
  corpus = os.path.join(work_dir, "corpus.txt")
  vocab = os.path.join(work_dir, "vocab.txt")
  write_corpus(corpus, vocab, lines)
  tools = {}
  ours_source = os.path.join(REPO_ROOT, "training",
                             "create_pretraining_data.py")
  active = []
  for tool in DATA_TOOLS:
    if tool == "ours" and not os.path.isfile(ours_source):
      tools[tool] = dict(error="training/create_pretraining_data.py does not "
                               "exist yet")
      continue
    tools[tool] = dict(times=[], import_times=[], command=data_command(
        tool, "corpus.txt", "vocab.txt", f"{tool}.tfrecord", seq_length,
        max_predictions, dupe_factor)[1:])
    active.append(tool)
  log(f"Data tools on {lines} lines, dupe_factor {dupe_factor}: "
      f"{repeats} alternating runs of {', '.join(active)}")
  for repeat in range(repeats):
    shift = repeat % max(len(active), 1)
    for tool in active[shift:] + active[:shift]:
      t = tools[tool]
      if "error" in t:
        continue
      output = os.path.join(work_dir, f"{tool}.tfrecord")
      if os.path.exists(output):
        os.remove(output)
      seconds, done = _run_timed(
          data_command(tool, corpus, vocab, output, seq_length,
                       max_predictions, dupe_factor), work_dir)
      if done.returncode != 0 or not os.path.exists(output):
        lines_ = done.stderr.strip().splitlines()
        t["error"] = (f"exit code {done.returncode}: "
                      f"{lines_[-1] if lines_ else '(no output)'}")
        log(f"  {tool}: {t['error']}")
        continue
      t["times"].append(seconds)
      t["instances"] = count_records(output, seq_length, max_predictions)
      if time_imports:
        seconds, _ = _run_timed(
            [sys.executable, "-c", f"import {DATA_TOOLS[tool][1]}"],
            work_dir)
        t["import_times"].append(seconds)
  for tool in active:
    t = tools[tool]
    if "error" in t:
      continue
    t["seconds"] = statistics.median(t["times"])
    t["instances_per_s"] = t["instances"] / t["seconds"]
    t["import_seconds"] = t["instances_per_s_without_import"] = None
    if t["import_times"]:
      t["import_seconds"] = statistics.median(t["import_times"])
      work = t["seconds"] - t["import_seconds"]
      t["instances_per_s_without_import"] = (t["instances"] / work
                                             if work > 0 else None)
    log(f"  {tool}: {t['instances']} instances in {t['seconds']:.1f} s "
        f"({t['instances_per_s']:.0f}/s)")
  base = tools["tfm"].get("instances_per_s")
  for tool in active:
    if base and "instances_per_s" in tools[tool]:
      tools[tool]["ratio"] = tools[tool]["instances_per_s"] / base
  return dict(lines=lines, dupe_factor=dupe_factor, seq_length=seq_length,
              max_predictions=max_predictions, masked_lm_prob=MASKED_LM_PROB,
              random_seed=RANDOM_SEED, repeats=repeats, tools=tools,
              tool_names={k: v[0] for k, v in DATA_TOOLS.items()},
              google_research_bert=_google_research_bert_status())


def _google_research_bert_status() -> str:
  """Whether google-research/bert's own script could run here."""
  import importlib.util
  if importlib.util.find_spec("bert") is None:
    return ("not installed (bert-tensorflow is not among the installed "
            "packages; its script needs TF1's tf.flags and tf.gfile)")
  return "installed as `bert`, not timed (TF1 API)"


# === Flags, plan, run ===


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_boolean("quick", False, "Tiny config, small batch and corpus, "
                       "1 repeat.", **define)
  flags.DEFINE_string("config", None, f"Preset name or bert_config.json path."
                      f" Default: {DEFAULT_CONFIG} (a tiny config with "
                      "--quick).", **define)
  flags.DEFINE_string("rows", ",".join(DEFAULT_ROWS),
                      f"Comma-separated row ids of {', '.join(ROW_IDS)}; "
                      f"{BASELINE} and {REFERENCE} always run.", **define)
  flags.DEFINE_integer("batch_size", None, f"Examples per step. Default: "
                       f"{BATCH_SIZE} ({QUICK_BATCH_SIZE} with --quick).",
                       **define)
  flags.DEFINE_integer("seq_length", None, f"Default: {SEQ_LENGTH} "
                       f"({QUICK_SEQ_LENGTH} with --quick).", **define)
  flags.DEFINE_integer("max_predictions", None, "Masked positions per "
                       f"example. Default: {MAX_PREDICTIONS} "
                       f"({QUICK_MAX_PREDICTIONS} with --quick).", **define)
  flags.DEFINE_integer("repeats", None, "Interleaved timed steps per row. "
                       f"Default: {REPEATS} ({QUICK_REPEATS} with --quick).",
                       **define)
  flags.DEFINE_integer("warmup", None, "Untimed steps per row after the "
                       f"first. Default: {WARMUP} ({QUICK_WARMUP} with "
                       "--quick).", **define)
  flags.DEFINE_string("output_dir", None, "Where the result files go. "
                      "Default: benchmarks/results (build/benchmarks with "
                      "--quick).", **define)
  flags.DEFINE_boolean("memory", True, "Measure peak memory per row (one "
                       "process each).", **define)
  flags.DEFINE_boolean("data", True, "Time the data tools (part 2).",
                       **define)
  flags.DEFINE_integer("data_lines", None, f"Corpus lines. Default: "
                       f"{DATA_LINES} ({QUICK_DATA_LINES} with --quick).",
                       **define)
  flags.DEFINE_integer("data_repeats", None, "Runs of each data tool. "
                       f"Default: {DATA_REPEATS} ({QUICK_DATA_REPEATS} with "
                       "--quick).", **define)
  flags.DEFINE_integer("dupe_factor", None, f"Default: {DUPE_FACTOR} "
                       f"({QUICK_DUPE_FACTOR} with --quick).", **define)
  flags.DEFINE_string("memory_child", None, "(internal) Measure one row's "
                      "peak memory and print it.", **define)
  return values


_MINIMUMS = dict(batch_size=1, seq_length=2, max_predictions=1, repeats=1,
                 warmup=0, data_lines=1, data_repeats=1, dupe_factor=1)
_DEFAULTS = dict(  # flag -> (default, --quick default)
    batch_size=(BATCH_SIZE, QUICK_BATCH_SIZE),
    seq_length=(SEQ_LENGTH, QUICK_SEQ_LENGTH),
    max_predictions=(MAX_PREDICTIONS, QUICK_MAX_PREDICTIONS),
    repeats=(REPEATS, QUICK_REPEATS), warmup=(WARMUP, QUICK_WARMUP),
    data_lines=(DATA_LINES, QUICK_DATA_LINES),
    data_repeats=(DATA_REPEATS, QUICK_DATA_REPEATS),
    dupe_factor=(DUPE_FACTOR, QUICK_DUPE_FACTOR))


def plan(values: flags.FlagValues) -> dict:
  """Validates the flags; returns the run's settings.

  Returns:
    dict: `rows`, `config`, `config_name`, `output_dir`, and each flag of
    `_DEFAULTS` with its default filled in.

  Raises:
    cli.UsageError: a bad flag value.
  """
  from mobilebert_tf import MobileBertConfig
  from mobilebert_tf import cli
  from mobilebert_tf.config import load_config
  settings = dict(rows=select_rows(values.rows))
  for name, (default, quick_default) in _DEFAULTS.items():
    value = values[name].value
    if value is not None and value < _MINIMUMS[name]:
      raise cli.UsageError(f"--{name} must be at least {_MINIMUMS[name]}. "
                           f"Received: {value}")
    settings[name] = value if value is not None else (
        quick_default if values.quick else default)
  if values.config:
    try:
      config = load_config(values.config)
    except (OSError, ValueError, TypeError) as e:
      raise cli.UsageError(f"--config: {cli.first_line(e)}") from None
    settings["config_name"] = values.config
  elif values.quick:
    config, settings["config_name"] = (MobileBertConfig.from_dict(
        QUICK_CONFIG), "quick")
  else:
    config, settings["config_name"] = load_config(DEFAULT_CONFIG), (
        DEFAULT_CONFIG)
  settings["config"] = config
  if settings["seq_length"] > config.max_position_embeddings:
    raise cli.UsageError(
        f"--seq_length ({settings['seq_length']}) exceeds the config's "
        f"max_position_embeddings ({config.max_position_embeddings})")
  if settings["max_predictions"] >= settings["seq_length"]:
    raise cli.UsageError(
        f"--max_predictions ({settings['max_predictions']}) must be less "
        f"than --seq_length ({settings['seq_length']})")
  settings["optimizer"] = dict(QUICK_OPTIMIZER_ARGS if values.quick
                               else OPTIMIZER_ARGS)
  settings["output_dir"] = os.path.abspath(
      values.output_dir or latency.default_output_dir(values.quick))
  return settings


def result_stem(machine: dict, quick: bool) -> str:
  """`training-<UTC date-time>-<cpu slug>[-quick]`: the result files' name."""
  return (f"training-{machine['timestamp']}-{machine['cpu_slug']}"
          + ("-quick" if quick else ""))


def run(values: flags.FlagValues, argv: Sequence[str], log) -> List[str]:
  """Runs the benchmark; returns the paths written (JSON, markdown)."""
  settings = plan(values)
  latency.quiet()
  import tensorflow as tf
  import tf_keras
  from benchmarks import timing
  from mobilebert_tf import files

  config, rows = settings["config"], settings["rows"]
  shape = (settings["batch_size"], settings["seq_length"],
           settings["max_predictions"])
  machine = machine_lib.machine_record()
  start = time.time()
  log(f"{PROGRAM}: {settings['config_name']}, batch {shape[0]} x seq "
      f"{shape[1]}, {shape[2]} predictions, rows {', '.join(rows)}")
  work_dir = tempfile.mkdtemp(prefix="mobilebert-training-")
  try:
    config_file = files.write_text(os.path.join(work_dir, "config.json"),
                                   config.to_json_string())
    log(f"Building the shared weights ({config.num_hidden_layers} "
        f"block{'' if config.num_hidden_layers == 1 else 's'})")
    tf_keras.utils.set_random_seed(0)
    shared = build_model(REFERENCE, config)
    checkpoint = tf.train.Checkpoint(**shared.checkpoint_items).write(
        os.path.join(work_dir, "weights", "ckpt"))
    del shared
    features = make_batch(config.vocab_size, *shape)
    matmul_size = QUICK_MATMUL_SIZE if values.quick else 2048
    matmul_before = timing.matmul_gflops(matmul_size)
    log(f"{matmul_size}^3 float32 matmul: {matmul_before:.0f} GFLOP/s")
    log(f"Train steps: warm-up, then {settings['repeats']} interleaved "
        "repeats")
    timings = time_rows(rows, config, features, checkpoint,
                        os.path.join(work_dir, "rows"),
                        settings["optimizer"], settings["warmup"],
                        settings["repeats"], log)
    for row, t in timings.items():
      if "examples_per_s" in t:
        log(f"  {row:18s} {t['examples_per_s']:8.2f} examples/s "
            f"({t['ms_per_step']:.0f} ms/step)")
    matmul_after = timing.matmul_gflops(matmul_size)
    memory = {}
    if values.memory:
      measured = [r for r in rows if "examples_per_s" in timings[r]]
      log("Peak memory, one process per row")
      with concurrent.futures.ThreadPoolExecutor(
          latency.MEMORY_WORKERS) as pool:
        futures = {r: pool.submit(measure_memory, r, config_file, shape,
                                  values.quick)
                   for r in measured}
        memory = {r: f.result() for r, f in futures.items()}
    data = (time_data_tools(work_dir, settings["data_lines"],
                            settings["seq_length"],
                            settings["max_predictions"],
                            settings["dupe_factor"],
                            settings["data_repeats"], log,
                            time_imports=not values.quick)
            if values.data else None)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  machine["load_average_end"] = list(os.getloadavg())
  result = dict(
      machine=machine, argv=list(argv[1:]),
      flags={name: values[name].value for name in sorted(values)},
      quick=values.quick, config_name=settings["config_name"],
      config=config.to_dict(), batch_size=shape[0], seq_length=shape[1],
      max_predictions=shape[2], rows=rows,
      row_names={r: BY_ID[r].name for r in rows}, baseline=BASELINE,
      reference=REFERENCE, target_ratio=TARGET_RATIO,
      optimizer=settings["optimizer"], repeats=settings["repeats"],
      warmup=settings["warmup"],
      matmul_size=matmul_size, matmul_gflops=max(matmul_before, matmul_after),
      matmul_gflops_before_after=[matmul_before, matmul_after],
      timings=timings, memory=memory, data=data,
      seconds=time.time() - start)
  stem = os.path.join(settings["output_dir"],
                      result_stem(machine, values.quick))
  return result_files.write(stem, result, format_report, start, log)


# === The report ===


def _fmt(value: Optional[float], digits: int = 2) -> str:
  return "—" if value is None else f"{value:.{digits}f}"


def target_line(result: dict) -> str:
  """The issue's target, measured: ours / tfm examples per second."""
  ratio = result["timings"].get(REFERENCE, {}).get("ratio")
  description = (f"ours >= {result['target_ratio']:.2f}x tf-models-official "
                 "examples/s")
  if ratio is None:
    return f"- {description}: not measured"
  status = "met" if ratio >= result["target_ratio"] else "NOT met"
  return f"- {description}: {ratio:.2f}x — {status}"


def format_report(result: dict, json_name: Optional[str] = None) -> str:
  """The markdown report of a result (see the module docstring)."""
  from benchmarks import report
  m, v = result["machine"], result["machine"]["versions"]
  command = " ".join([PROGRAM, *result["argv"]])
  commit = f" at commit {m['git_commit']}" if m.get("git_commit") else ""
  lines = [
      f"# MobileBERT pretraining throughput, {m['date']}", "",
      f"`{result['config_name']}` ({result['config']['num_hidden_layers']} "
      f"block{'' if result['config']['num_hidden_layers'] == 1 else 's'}, "
      f"random weights), batch {result['batch_size']} x seq "
      f"{result['seq_length']}, {result['max_predictions']} masked "
      "positions" + (", quick mode" if result["quick"] else "")
      + f"; `{command}`{commit}.", "",
      f"Machine: {m['cpu']}, {m['logical_cores']} logical cores "
      f"({m['usable_cores']} usable), Python {m['python']}; TensorFlow "
      f"{v['tensorflow']}, tf_keras {v['tf_keras']}, tf-models-official "
      f"{v['tf-models-official']}, numpy {v['numpy']}. Load average "
      f"{m['load_average_start'][0]:.2f} at the start, "
      f"{m['load_average_end'][0]:.2f} at the end.", ""]
  if json_name:
    lines += [f"Raw numbers: `{json_name}`.", ""]
  lines += ["## Train step (forward + backward + LAMB, MLM + NSP loss)", "",
            "| row | examples/s | ms/step | ratio | first step s | peak MiB "
            "| initial loss | rel. diff vs ours | final loss "
            "| rel. diff vs ours |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for row in result["rows"]:
    t = result["timings"].get(row, {})
    memory = result["memory"].get(row, {})
    differences = [t.get("loss_relative_difference_vs_ours"),
                   t.get("final_loss_relative_difference_vs_ours")]
    lines.append("| " + " | ".join([
        result["row_names"][row],
        _fmt(t.get("examples_per_s")) if "error" not in t else "skipped",
        _fmt(t.get("ms_per_step"), 1), report.format_ratio(t.get("ratio")),
        _fmt(t.get("first_call_s"), 1),
        _fmt(memory.get("increment_mib"), 0),
        _fmt(t.get("initial_losses", {}).get("loss"), 4),
        "—" if differences[0] is None else f"{differences[0]:.1e}",
        _fmt(t.get("final_losses", {}).get("loss"), 4),
        "—" if differences[1] is None else f"{differences[1]:.1e}"])
                 + " |")
  optimizer_args = ", ".join(f"{k}={x!r}"
                             for k, x in result["optimizer"].items())
  lines += [
      "", f"examples/s: batch / median step time over {result['repeats']} "
      f"interleaved steps after a first step and {result['warmup']} warm-up "
      f"step{'' if result['warmup'] == 1 else 's'}. ratio: to "
      f"{result['row_names'][result['baseline']]}. Every row starts from "
      "the same weights and gets the same batch, losses "
      "(`training.pretraining_losses`) and optimizer "
      f"(`create_optimizer({optimizer_args})`)."
      " initial loss: MLM + NSP loss at the shared weights, final loss: "
      "after the row's steps, both without dropout; rel. diff: the largest "
      "relative difference (any term) from ours' (the final ones also differ"
      " by the rows' dropout masks, if the config has dropout). "
      "peak MiB: peak RSS of a process running only that row (3 steps) "
      f"above its size after imports. A {result['matmul_size']}³ float32 "
      "tf.matmul ran at "
      f"{result['matmul_gflops']:.0f} GFLOP/s in the same run."]
  skipped = [f"{result['row_names'][r]} ({t['error']})"
             for r, t in result["timings"].items() if "error" in t]
  if skipped:
    lines += ["", "Skipped: " + "; ".join(skipped) + "."]
  layout = [result["timings"].get(r, {}).get("examples_per_s")
            for r in ("ours_heads_first", "ours")]
  if all(layout):
    lines += ["", f"Attention layouts: heads_first / standard examples/s "
              f"{layout[0] / layout[1]:.2f}x."]
  lines += ["", "Target (ratio of this run):", "", target_line(result)]
  data = result.get("data")
  if data:
    lines += ["", "## Pretraining data tool", "",
              f"{data['lines']} generated lines (one sentence each, blank "
              f"lines between documents), dupe_factor {data['dupe_factor']},"
              f" max_seq_length {data['seq_length']}, max_predictions_per_seq"
              f" {data['max_predictions']}, masked_lm_prob "
              f"{data['masked_lm_prob']}, random_seed {data['random_seed']}; "
              "each run a fresh process.", "",
              "| tool | instances | wall s | instances/s | ratio | import s "
              "| instances/s without import |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for tool, t in data["tools"].items():
      name = data["tool_names"][tool]
      if "error" in t:
        lines.append(f"| {name} | skipped: {t['error']} | | | | | |")
        continue
      lines.append("| " + " | ".join([
          name, str(t["instances"]), _fmt(t["seconds"], 1),
          _fmt(t["instances_per_s"], 0), report.format_ratio(t.get("ratio")),
          _fmt(t["import_seconds"], 1),
          _fmt(t["instances_per_s_without_import"], 0)]) + " |")
    lines += ["", f"wall s: median of {data['repeats']} alternating runs; "
              "import s: median wall time of `python -c \"import MODULE\"` "
              "(not measured in quick mode). "
              f"google-research/bert's own script: "
              f"{data['google_research_bert']}."]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
  """Runs the benchmark on `argv` (argv[0] is the program name)."""
  from mobilebert_tf import cli
  values = _define_flags()
  if cli.wants_help(argv):
    print(__doc__)
    print("Flags:\n" + values.get_help())
    return 0
  try:
    cli.parse(values, argv)
    if values.memory_child:
      if values.memory_child not in BY_ID:
        raise cli.UsageError(f"--memory_child: unknown row "
                             f"{values.memory_child!r}")
      settings = plan(values)
      latency.quiet()
      figures = memory_child(values.memory_child, settings["config"], (
          settings["batch_size"], settings["seq_length"],
          settings["max_predictions"]), settings["optimizer"])
      print(_MEMORY_PREFIX + json.dumps(figures), flush=True)
      return 0
    run(values, argv, lambda line: print(line, flush=True))
  except cli.UsageError as e:
    return cli.error(PROGRAM, str(e))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
