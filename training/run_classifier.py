r"""Fine-tunes a MobileBERT sentence (pair) classifier on GLUE-style TSV files.

From a TF-Hub-style export (`python -m export.to_savedmodel`):

  python -m training.run_classifier \
    --train_file=train.tsv --eval_file=dev.tsv \
    --encoder=DIR/encoder --preprocessor=DIR/preprocessor \
    --export_path=OUT [--epochs=3 --batch_size=32 --learning_rate=5e-5 \
    --seq_length=128 --overwrite]

or from a converted TF2 (or original TF1) checkpoint, without SavedModels:

  python -m training.run_classifier \
    --train_file=train.tsv --eval_file=dev.tsv \
    --bert_config_file=bert_config.json --init_checkpoint=CKPT \
    --vocab_file=vocab.txt --do_lower_case --export_path=OUT

or on a GLUE task (or XNLI) in its own directory and file layout, with
either source:

  python -m training.run_classifier \
    --task_name=mnli --data_dir=glue_data/MNLI --output_dir=RESULTS \
    [--do_predict] --encoder=DIR/encoder --preprocessor=DIR/preprocessor \
    --export_path=OUT

`--bert_config_file` also takes a preset name
(`mobilebert_tf.config.PRESETS`).

Input: GLUE-style TSV files (`training.tsv`): a header line naming the
columns `sentence` and `label` (SST-2 style), or `sentence1`, `sentence2`
and `label` (pairs); other columns are ignored; no quoting. The labels are
the distinct strings of the training file's label column (sorted,
numerically if all are integers); class `i` is the `i`-th of them.

With `--task_name` (cola, sst-2, mrpc, sts-b, qqp, mnli, qnli, rte, wnli,
xnli; any case) instead: the task's files in `--data_dir`, its fixed label
list and its metrics (`training.glue`, `training.glue_metrics`). After
every epoch each dev set (MNLI: dev_matched and dev_mismatched) is scored
by the task's metrics (CoLA: Matthews correlation; MRPC, QQP: accuracy and
F1; STS-B: Pearson and Spearman; the others: accuracy; classification
tasks also report accuracy) and the loss; `--output_dir/eval_results.json`
holds the last epoch's (`results`) and every epoch's (`per_epoch`) values,
`{dev set: {metric: value, "loss": ..., "examples": n}}`, null where a
correlation is undefined. `--do_predict` also writes the GLUE submission
file of each test set into `--output_dir` (CoLA.tsv, ..., MNLI-m.tsv and
MNLI-mm.tsv): `index<TAB>prediction`, one row per test example. STS-B is a
regression: one output trained with mean squared error.

Training: `hub.KerasLayer(encoder, trainable=True)` (or the restored
`MobileBERTEncoder`) under `mobilebert_tf.heads.
MobileBertForSequenceClassification`; AdamW from the project's one
optimizer path (`mobilebert_tf.optimization.create_optimizer`: weight decay
off for biases and normalization, gradients clipped at global norm 1) with
linear warm-up over `--warmup_proportion` of the steps and linear decay to
0; Keras progress bars; evaluation on `--eval_file` (the dev sets) after
every epoch.

Output: a SavedModel at `--export_path` that takes raw strings and returns
class probabilities, preprocessing inside, ready for TF Serving:

  signature `serving_default`: `sentence` (or `sentence1`, `sentence2`)
    string `[batch]` -> `probabilities` float32 `[batch, num_classes]`,
    `label` string `[batch]` (the most probable label); for STS-B `score`
    float32 `[batch]` instead;
  `assets.extra/labels.txt`: the label of each class, one per line (not
    for STS-B).

With `--tflite_file=FILE` (checkpoint sources only) also a TFLite
classifier (`export.classifier_tflite`): `input_word_ids`, `input_mask`,
`input_type_ids` int32 `[1, --seq_length]` -> `probabilities` float32
`[1, num_classes]`; `--tflite_quantization` none (float32), dynamic
(int8 weights) or int8 (full integer: the activations calibrated on
`--num_calibration_examples` training examples, or the learnt ranges of
`--quantization_aware`, which starts them from the activations of the
first `--num_calibration_examples` training examples). Before it is
written it runs in LiteRT on the (first) evaluation set: float32 must give
the in-memory probabilities to 1e-4, a quantized model may lose at most
`--tflite_max_accuracy_drop` points of accuracy (default 1), else nothing
is written (exit 1). With
`--tflite_file` and no `--export_path`, the TFLite classifier is the only
output (no SavedModel).

The SavedModel is written beside `--export_path` and renamed into place
(`mobilebert_tf.files`) only after it was reloaded and its outputs on
the (first) evaluation set's sentences were compared with the in-memory
model's. The files in `--output_dir` are written after it.

Exit codes: 0 done; 2 bad input (one line on stderr naming the file and
line, nothing written); 1 a failed export verification.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import json
import math
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import flags
import numpy as np
import tensorflow as tf
import tf_keras

from mobilebert_tf import cli
from mobilebert_tf.config import PRESETS
from mobilebert_tf import files
from mobilebert_tf import heads
from mobilebert_tf import optimization
from mobilebert_tf import preprocessing
from training import glue
from training import tsv

_PROGRAM = "python -m training.run_classifier"
LABELS_FILE = os.path.join("assets.extra", "labels.txt")
# With --task_name: the dev sets' metrics, in --output_dir.
RESULTS_FILE = "eval_results.json"
# Probabilities of the reloaded SavedModel vs the in-memory model.
VERIFY_ATOL = 1e-5


class InputError(ValueError):
  """Bad user input; the message is one line naming the file and line."""


# === Model ===


class TextToEncoderInputs(tf_keras.layers.Layer):
  """Raw strings (1 or 2 segments) -> the encoder's int32 inputs.

  Tokenizes each segment with the preprocessor's `.tokenize` and packs
  `[CLS] a [SEP] (b [SEP])` to `seq_length` with Model Garden's
  `BertPackInputs` (round-robin truncation), as TF Hub's BERT tutorials do.

  Args:
    tokenize: the preprocessor's `.tokenize` (a Keras model, or a
      `hub.KerasLayer` of a loaded preprocessor's `.tokenize`).
    special_tokens_dict: dict of the special token ids.
    seq_length: int.

  Call args:
    segments: list of 1 or 2 string tensors `[batch]`.

  Returns:
    dict of int32 `input_word_ids`, `input_mask`, `input_type_ids`
    `[batch, seq_length]`.
  """

  def __init__(self, tokenize, special_tokens_dict, seq_length, **kwargs):
    super().__init__(**kwargs)
    from official.nlp.modeling import layers as nlp_layers
    self.tokenize = tokenize
    self.pack = nlp_layers.BertPackInputs(
        seq_length=seq_length, special_tokens_dict=special_tokens_dict)

  def call(self, segments):
    return self.pack([self.tokenize(s) for s in segments])


def load_text_preprocessing(flag_values, seq_length: int):
  """The `TextToEncoderInputs` layer for the chosen source."""
  if flag_values.preprocessor:
    # The preprocessor SavedModel holds tensorflow_text ops (TFText>...):
    # importing the library registers them; hub.load fails without it.
    import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    loaded = hub.load(flag_values.preprocessor)
    tokenize = hub.KerasLayer(loaded.tokenize, name="tokenize")
    special = preprocessing.special_token_ids(loaded.tokenize)
  else:
    preprocessor = preprocessing.build_preprocessor(
        flag_values.vocab_file, flag_values.do_lower_case,
        seq_length=seq_length, tokenize_with_offsets=False)
    tokenize = preprocessor.tokenize
    special = preprocessing.special_token_ids(tokenize)
  return TextToEncoderInputs(tokenize, special, seq_length,
                             name="text_to_encoder_inputs")


def _check_seq_length(seq_length: int, config, source: str) -> None:
  if seq_length > config.max_position_embeddings:
    raise InputError(
        f"--seq_length ({seq_length}) exceeds the max_position_embeddings "
        f"({config.max_position_embeddings}) of {source}; pass "
        f"--seq_length={config.max_position_embeddings} or less")


def load_encoder(flag_values):
  """`hub.KerasLayer(encoder, trainable=True)`, or a restored encoder.

  Returns:
    `(encoder, config)`: the config of a checkpoint's encoder (QAT's with
    --quantization_aware); None for a SavedModel.

  Raises:
    InputError: `--seq_length` is longer than the encoder's positions.
  """
  if flag_values.encoder:
    # pylint: disable=g-import-not-at-top
    import tensorflow_hub as hub
    from export import encoder_savedmodel
    # pylint: enable=g-import-not-at-top
    try:
      config = encoder_savedmodel.read_config(flag_values.encoder)
    except ValueError:
      config = None  # Another exporter's encoder: no config to check.
    if config is not None:
      _check_seq_length(flag_values.seq_length, config, flag_values.encoder)
    return hub.KerasLayer(flag_values.encoder, trainable=True,
                          name="encoder"), None
  # pylint: disable=g-import-not-at-top
  from checkpoints import restore
  from mobilebert_tf import build_pretrainer
  from mobilebert_tf import config as config_lib
  # pylint: enable=g-import-not-at-top
  config = config_lib.load_config(flag_values.bert_config_file)
  if flag_values.quantization_aware:
    try:
      config = config.for_quantization_aware_training()
    except ValueError as e:
      raise InputError(f"--quantization_aware: {e}") from None
  _check_seq_length(flag_values.seq_length, config,
                    flag_values.bert_config_file)
  preprocessing.check_vocab(flag_values.vocab_file, config)
  pretrainer = build_pretrainer(config)
  restore.load_checkpoint(pretrainer, config, flag_values.init_checkpoint,
                          flag="--init_checkpoint")
  return pretrainer.encoder_network, config


class ServingModule(tf.Module):
  """What gets exported: the strings -> outputs model and its signature.

  Args:
    model: list of string tensors `[batch]` -> probabilities `[batch,
      num_classes]`, or scores `[batch, 1]` for regression.
    text_columns: the names of the string inputs.
    names: the label of each class, or None for regression.
  """

  def __init__(self, model, text_columns, names):
    super().__init__()
    self.model = model
    self.text_columns = tuple(text_columns)
    specs = [tf.TensorSpec([None], tf.string, name=c) for c in text_columns]
    if names is None:
      self.output_key = "score"

      @tf.function(input_signature=specs)
      def serve(*texts):
        return dict(score=self.model(list(texts), training=False)[:, 0])
    else:
      self.output_key = "probabilities"
      self._labels = tf.constant(list(names))

      @tf.function(input_signature=specs)
      def serve(*texts):
        probabilities = self.model(list(texts), training=False)
        label = tf.gather(self._labels, tf.argmax(probabilities, axis=-1))
        return dict(probabilities=probabilities, label=label)

    self.serve = serve


@dataclasses.dataclass
class FinetuneResult:
  """What `finetune` produced.

  Attributes:
    model: the in-memory model, a list of string tensors -> probabilities
      (scores `[batch, 1]` for regression).
    label_names: the label of each class; None for regression (STS-B).
    history: the Keras `History.history` dict (loss, accuracy, val_...;
      with --task_name `<dev set>_<metric>` after each epoch).
    eval_accuracy: accuracy on the (first) evaluation set after the last
      epoch; None for regression.
    export_path: where the SavedModel is; None without --export_path
      (a TFLite classifier only).
    max_abs_diff: largest |output difference| between the reloaded
      SavedModel and `model` on the evaluation sentences; None without
      --export_path.
    eval_results: with --task_name: each dev set's metrics after the last
      epoch (as in `eval_results.json`); else empty.
    output_files: the files written into --output_dir (eval_results.json,
      the submission files).
    tflite_report: with --tflite_file: the TFLite classifier scored on the
      (first) evaluation set (`export.classifier_tflite.ClassifierReport`).
  """
  model: tf_keras.Model
  label_names: Optional[List[str]]
  history: Dict[str, List[float]]
  eval_accuracy: Optional[float]
  export_path: Optional[str]
  max_abs_diff: Optional[float]
  eval_results: Dict[str, Dict[str, float]] = dataclasses.field(
      default_factory=dict)
  output_files: List[str] = dataclasses.field(default_factory=list)
  tflite_report: Optional[object] = None


@dataclasses.dataclass
class _Data:
  """The examples of a run, read and checked before any model is loaded.

  Attributes:
    text_columns: tuple of str. The text inputs.
    names: the label of each class, or None for regression.
    train: `tsv.TsvData`.
    train_y: the training targets (class ids or scores).
    evals: list of (name, `tsv.TsvData`, targets): the evaluation sets.
    tests: list of (submission file name, `glue.TestData`).
    task: `glue.Task` or None (generic TSV files).
  """
  text_columns: Tuple[str, ...]
  names: Optional[List[str]]
  train: tsv.TsvData
  train_y: np.ndarray
  evals: List[Tuple[str, tsv.TsvData, np.ndarray]]
  tests: List[Tuple[str, glue.TestData]]
  task: Optional[glue.Task]


def _read_tsv_files(flag_values) -> _Data:
  """--train_file and --eval_file; the labels are the training file's."""
  train = tsv.read_tsv(flag_values.train_file)
  evaluation = tsv.read_tsv(flag_values.eval_file)
  if evaluation.text_columns != train.text_columns:
    raise InputError(
        f"{evaluation.path} line 1: has the text columns "
        f"{', '.join(evaluation.text_columns)} but {train.path} has "
        f"{', '.join(train.text_columns)}")
  names = tsv.label_names(train)
  return _Data(train.text_columns, names, train, tsv.label_ids(train, names),
               [("eval", evaluation, tsv.label_ids(evaluation, names))], [],
               None)


def _read_glue_files(flag_values, task: glue.Task) -> _Data:
  """The task's files in --data_dir (test files with --do_predict)."""
  data_dir = flag_values.data_dir
  train = glue.read_examples(task, task.train, data_dir)
  evals = []
  for name, layout in task.dev:
    data = glue.read_examples(task, layout, data_dir)
    evals.append((name, data, glue.targets(task, data)))
  tests = [(file, glue.read_test(task, layout, data_dir))
           for file, layout in task.test] if flag_values.do_predict else []
  names = None if task.is_regression else list(task.labels)
  return _Data(task.text_columns, names, train, glue.targets(task, train),
               evals, tests, task)


def _prepare_export_path(export_path: str, overwrite: bool) -> str:
  """The absolute `--export_path`, checked before anything is trained."""
  try:
    export_path = files.check_target(export_path, overwrite)
  except FileExistsError:
    raise InputError(f"--export_path {os.path.abspath(export_path)} already "
                     "exists; pass --overwrite to replace it") from None
  except NotADirectoryError as e:
    raise InputError(f"--export_path: {e}") from None
  parent = os.path.dirname(export_path)
  if not os.path.isdir(parent):
    raise InputError(f"--export_path: the directory {parent} does not exist")
  return export_path


def _prepare_output_files(flag_values, data: _Data,
                          export_path: str) -> Dict[str, str]:
  """File name -> absolute path in --output_dir, checked before training."""
  output_dir = os.path.abspath(flag_values.output_dir)
  if export_path and os.path.commonpath([output_dir,
                                         export_path]) == export_path:
    raise InputError(f"--output_dir {output_dir} is inside --export_path "
                     f"{export_path}, which the export replaces; choose "
                     "another directory")
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise InputError(f"--output_dir: {output_dir} is a file, not a directory")
  targets = {}
  for name in [RESULTS_FILE] + [file for file, _ in data.tests]:
    try:
      targets[name] = files.check_target(os.path.join(output_dir, name),
                                         flag_values.overwrite)
    except FileExistsError:
      raise InputError(
          f"--output_dir: {os.path.join(output_dir, name)} already exists; "
          "pass --overwrite to replace it") from None
    except NotADirectoryError as e:
      raise InputError(f"--output_dir: {e}") from None
  return targets


def _export(module: ServingModule, names, export_path: str, overwrite: bool,
            verify_texts, expected) -> float:
  """Saves beside `export_path`, verifies, renames into place.

  Returns:
    The largest |output difference| of the reloaded SavedModel.

  Raises:
    RuntimeError: the reloaded SavedModel differs (nothing is written).
  """
  with files.staged_directory(export_path, overwrite) as tmp:
    tf.saved_model.save(module, tmp,
                        signatures={"serving_default": module.serve})
    if names is not None:
      os.makedirs(os.path.join(tmp, os.path.dirname(LABELS_FILE)))
      with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in names))
    serve = tf.saved_model.load(tmp).signatures["serving_default"]
    got = serve(**{c: tf.constant(t) for c, t in
                   zip(module.text_columns, verify_texts)})[module.output_key]
    max_abs_diff = float(np.max(np.abs(got.numpy() - expected)))
    if not max_abs_diff <= VERIFY_ATOL:
      raise RuntimeError(
          f"The reloaded SavedModel differs from the trained model: max "
          f"|{module.output_key} difference| {max_abs_diff:.3g} > "
          f"{VERIFY_ATOL}")
  return max_abs_diff


def _prepare_tflite_file(flag_values) -> Optional[str]:
  """The absolute --tflite_file (None without it), checked before training."""
  if not flag_values.tflite_file:
    return None
  try:
    return files.check_target(flag_values.tflite_file, flag_values.overwrite)
  except FileExistsError:
    raise InputError(f"--tflite_file {os.path.abspath(flag_values.tflite_file)}"
                     " already exists; pass --overwrite to replace it") from None
  except NotADirectoryError as e:
    raise InputError(f"--tflite_file: {e}") from None


def _export_tflite(flag_values, classifier, config, train_x, evaluation,
                   tflite_file: str, log):
  """Converts, scores on the evaluation set, checks, then writes.

  Raises:
    RuntimeError: the TFLite classifier fails its bar (nothing written).
  """
  # pylint: disable=g-import-not-at-top
  from export import classifier_tflite
  from export import tflite_convert
  # pylint: enable=g-import-not-at-top
  quantization = flag_values.tflite_quantization
  batches = None
  if quantization == "int8":
    count = min(flag_values.num_calibration_examples,
                len(train_x["input_word_ids"]))
    batches = [{k: v[i:i + 1] for k, v in train_x.items()}
               for i in range(count)]
  try:
    flatbuffer = classifier_tflite.convert_classifier(
        classifier, config, flag_values.seq_length, quantization, batches)
  except Exception as e:  # The converter raises bare RuntimeErrors.
    raise tflite_convert.conversion_failure(quantization, e) from e
  name, eval_x, eval_y = evaluation
  expected = tf.nn.softmax(classifier.predict(
      eval_x, batch_size=flag_values.batch_size, verbose=0)).numpy()
  report = classifier_tflite.evaluate_classifier(flatbuffer, eval_x, eval_y,
                                                 expected)
  classifier_tflite.check_classifier(report, quantization,
                                     flag_values.tflite_max_accuracy_drop)
  files.write_bytes(tflite_file, flatbuffer, overwrite=flag_values.overwrite)
  log(f"Wrote {tflite_file} ({len(flatbuffer) / 2**20:.1f} MiB, "
      f"{quantization}; serving_default: input_word_ids, input_mask, "
      f"input_type_ids int32 [1, {flag_values.seq_length}] -> probabilities); "
      f"on {name}: {report.format()}.")
  return report


def _calibrate_quantization_ranges(flag_values, classifier, train_x, log):
  """QAT: the activation ranges from the first training examples."""
  # pylint: disable=g-import-not-at-top
  from mobilebert_tf.layers import quantization
  # pylint: enable=g-import-not-at-top
  count = min(flag_values.num_calibration_examples,
              len(train_x["input_word_ids"]))
  size = flag_values.batch_size
  calibrated = quantization.calibrate_ranges(
      classifier, [{k: v[i:i + size] for k, v in train_x.items()}
                   for i in range(0, count, size)])
  log(f"Calibrated {calibrated} quantization ranges on {count} training "
      "examples")


class TaskEvaluation(tf_keras.callbacks.Callback):
  """After each epoch: a GLUE task's metrics on each of its dev sets.

  Adds `<dev set>_<metric>` to the epoch's logs (so to `History`) and logs
  one line per epoch.

  Args:
    task: `glue.Task`.
    evals: list of (name, encoder inputs dict, targets).
    loss: the training loss (a Keras loss on targets and model outputs).
    batch_size: int.
    log: function called with each epoch's line.

  Attributes:
    per_epoch: list, one dict per epoch: dev set name -> {metric: value,
      "loss": float, "examples": int}.
  """

  def __init__(self, task, evals, loss, batch_size, log=print):
    super().__init__()
    self.task = task
    self.evals = evals
    self.loss = loss
    self.batch_size = batch_size
    self.log = log
    self.per_epoch = []

  def on_epoch_end(self, epoch, logs=None):
    results = {}
    for name, inputs, y in self.evals:
      outputs = self.model.predict(inputs, batch_size=self.batch_size,
                                   verbose=0)
      metrics = glue.evaluate(self.task, y, outputs)
      # Targets of the outputs' rank: Keras would broadcast [n] scores
      # against [n, 1] outputs.
      y = np.reshape(y, (len(y), -1)) if self.task.is_regression else y
      metrics["loss"] = float(self.loss(y, outputs))
      if logs is not None:
        logs.update({f"{name}_{k}": v for k, v in metrics.items()})
      results[name] = dict(metrics, examples=len(y))
    self.per_epoch.append(results)
    self.log(f"Epoch {epoch + 1} evaluation: " + "; ".join(
        f"{name} " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()
                               if k != "examples")
        for name, r in results.items()))


def _json_value(value):
  """NaN (an undefined correlation) as null: strict JSON has no NaN."""
  if isinstance(value, dict):
    return {k: _json_value(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_json_value(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _write_task_outputs(data: _Data, evaluation: TaskEvaluation,
                        classifier, encode, targets: Dict[str, str],
                        flag_values, log) -> List[str]:
  """eval_results.json and (with --do_predict) the submission files."""
  os.makedirs(os.path.dirname(targets[RESULTS_FILE]), exist_ok=True)
  written = []
  for file, test in data.tests:
    outputs = classifier.predict(encode(test),
                                 batch_size=flag_values.batch_size, verbose=0)
    written.append(files.write_text(
        targets[file], glue.submission_tsv(data.task, test, outputs),
        overwrite=flag_values.overwrite))
    log(f"Wrote {written[-1]} ({len(test)} predictions for {test.path})")
  results = dict(task=data.task.name, epochs=len(evaluation.per_epoch),
                 results=evaluation.per_epoch[-1],
                 per_epoch=evaluation.per_epoch)
  text = json.dumps(_json_value(results), indent=2, allow_nan=False)
  written.insert(0, files.write_text(targets[RESULTS_FILE], text + "\n",
                                     overwrite=flag_values.overwrite))
  log(f"Wrote {written[0]}")
  return written


def finetune(flag_values, log=print) -> FinetuneResult:
  """Reads the data, fine-tunes, exports and verifies (the CLI minus parsing).

  Args:
    flag_values: an object with the CLI's flag names as attributes.
    log: function called with progress lines.

  Raises:
    InputError, tsv.TsvError: bad input files or flags (before anything is
      trained).
    FileNotFoundError, FileExistsError, ValueError: from loading the models.
    RuntimeError: the export failed verification.
  """
  start = time.time()
  # Without --export_path (parse_flags: only with --tflite_file) no
  # SavedModel: an on-device classifier needs none.
  export_path = (_prepare_export_path(flag_values.export_path,
                                      flag_values.overwrite)
                 if flag_values.export_path else None)
  tflite_file = _prepare_tflite_file(flag_values)
  task = (glue.get_task(flag_values.task_name, flag_values.xnli_language)
          if flag_values.task_name else None)
  data = (_read_glue_files(flag_values, task) if task else
          _read_tsv_files(flag_values))
  output_targets = (_prepare_output_files(flag_values, data, export_path)
                    if task else {})
  names, train = data.names, data.train
  if tflite_file and not names:
    raise InputError("--tflite_file: the TFLite export is a classifier "
                     "(probabilities); this task is a regression (one score)")
  parts = [f"{len(train)} training examples ({train.path})"]
  parts += [f"{len(d)} evaluation examples ({d.path})" for _, d, _ in
            data.evals]
  parts += [f"{len(t)} test examples ({t.path})" for _, t in data.tests]
  parts.append(f"{len(names)} labels: {', '.join(names)}" if names else
               "regression (one score)")
  log("Data: " + ", ".join(parts))

  tf_keras.utils.set_random_seed(flag_values.seed)
  text_to_inputs = load_text_preprocessing(flag_values, flag_values.seq_length)
  encoder, config = load_encoder(flag_values)
  classifier = heads.MobileBertForSequenceClassification(
      encoder, num_classes=len(names) if names else 1,
      classifier_dropout=flag_values.classifier_dropout,
      name="classifier")

  def encode(examples):
    return {k: v.numpy() for k, v in text_to_inputs(
        [tf.constant(t) for t in examples.texts]).items()}

  train_x = encode(train)
  evals = [(name, encode(d), y) for name, d, y in data.evals]
  log(f"Loaded the encoder and preprocessing, tokenized "
      f"({time.time() - start:.0f} s)")
  if config is not None and config.use_quantized_training:
    _calibrate_quantization_ranges(flag_values, classifier, train_x, log)
  batch_size = flag_values.batch_size
  steps_per_epoch = math.ceil(len(train) / batch_size)
  num_train_steps = steps_per_epoch * flag_values.epochs
  num_warmup_steps = int(flag_values.warmup_proportion * num_train_steps)
  if names:
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    metrics = [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
  else:
    loss, metrics = tf_keras.losses.MeanSquaredError(), []
  classifier.compile(
      optimizer=optimization.create_optimizer(
          "adamw", learning_rate=flag_values.learning_rate,
          num_train_steps=num_train_steps, num_warmup_steps=num_warmup_steps,
          weight_decay_rate=flag_values.weight_decay),
      loss=loss, metrics=metrics)
  train_ds = tf.data.Dataset.from_tensor_slices(
      (train_x, data.train_y)).shuffle(
          len(train), seed=flag_values.seed,
          reshuffle_each_iteration=True).batch(batch_size)
  log(f"Training: {flag_values.epochs} epochs of {steps_per_epoch} steps, "
      f"batch size {batch_size}, learning rate {flag_values.learning_rate} "
      f"({num_warmup_steps} warm-up steps, linear decay), seq_length "
      f"{flag_values.seq_length}")
  if task:
    # The task's metrics on every dev set (MNLI: both) after each epoch.
    evaluation = TaskEvaluation(task, evals, loss, batch_size, log=log)
    history = classifier.fit(train_ds, epochs=flag_values.epochs,
                             callbacks=[evaluation], verbose=1)
    first = evaluation.per_epoch[-1][evals[0][0]]
    eval_accuracy = first.get("accuracy")
  else:
    _, eval_x, eval_y = evals[0]
    eval_ds = tf.data.Dataset.from_tensor_slices((eval_x, eval_y)).batch(
        batch_size)
    history = classifier.fit(train_ds, validation_data=eval_ds,
                             epochs=flag_values.epochs, verbose=1)
    eval_accuracy = float(history.history["val_accuracy"][-1])
  log(f"Trained ({time.time() - start:.0f} s)")

  # Strings in, probabilities (or the score) out.
  segments = [tf_keras.Input(shape=(), dtype=tf.string, name=c)
              for c in data.text_columns]
  outputs = classifier(text_to_inputs(segments))
  if names:
    outputs = tf_keras.layers.Softmax(name="probabilities")(outputs)
  model = tf_keras.Model(segments, outputs, name="text_classifier")
  max_abs_diff = None
  if export_path:
    verify = data.evals[0][1]
    expected = model([tf.constant(t) for t in verify.texts],
                     training=False).numpy()
    if not names:
      expected = expected[:, 0]
    module = ServingModule(model, data.text_columns, names)
    max_abs_diff = _export(module, names, export_path, flag_values.overwrite,
                           verify.texts, expected)
    log(f"Exported {export_path} (signature serving_default: "
        f"{', '.join(data.text_columns)} -> {module.output_key}"
        f"{', label' if names else ''}); reloaded and checked on "
        f"{len(verify)} sentences: max |difference| {max_abs_diff:.2g}.")
  if eval_accuracy is not None:
    log(f"Evaluation accuracy {eval_accuracy:.4f}.")
  tflite_report = None
  if tflite_file:
    tflite_report = _export_tflite(flag_values, classifier, config,
                                   train_x, evals[0], tflite_file, log)
  output_files, eval_results = [], {}
  if task:
    output_files = _write_task_outputs(data, evaluation, classifier, encode,
                                       output_targets, flag_values, log)
    eval_results = evaluation.per_epoch[-1]
  log(f"Done in {time.time() - start:.0f} s.")
  return FinetuneResult(model, names, dict(history.history), eval_accuracy,
                        export_path, max_abs_diff, eval_results, output_files,
                        tflite_report)


# === Command line ===


def _define_flags() -> flags.FlagValues:
  # A fresh FlagValues per call: no values left over between in-process calls.
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("train_file", None, "Training TSV (header with "
                      "sentence, label or sentence1, sentence2, label).",
                      **define)
  flags.DEFINE_string("eval_file", None, "Evaluation TSV, same columns.",
                      **define)
  flags.DEFINE_enum("task_name", None, glue.TASK_NAMES, "Instead of "
                    "--train_file and --eval_file: a GLUE task (or XNLI), "
                    "read from --data_dir in its own file layout, scored by "
                    "its metrics (any case).", case_sensitive=False,
                    **define)
  flags.DEFINE_string("data_dir", None, "With --task_name: the task's "
                      "directory (GLUE's, e.g. glue_data/MNLI).", **define)
  flags.DEFINE_string("output_dir", None, "With --task_name: where "
                      f"{RESULTS_FILE} (each dev set's metrics) and, with "
                      "--do_predict, the GLUE submission files go (created "
                      "if missing).", **define)
  flags.DEFINE_boolean("do_predict", False, "With --task_name: predict the "
                       "test set(s) and write the GLUE submission file(s) "
                       "(MNLI-m.tsv, ...) into --output_dir.", **define)
  flags.DEFINE_string("xnli_language", glue.XNLI_DEFAULT_LANGUAGE, "With "
                      "--task_name=xnli: the language (training file "
                      "multinli/multinli.train.LANG.tsv, the LANG rows of "
                      "xnli.dev.tsv).", **define)
  flags.DEFINE_string("encoder", None, "TF-Hub-style encoder SavedModel "
                      "directory (export.to_savedmodel's DIR/encoder).",
                      **define)
  flags.DEFINE_string("preprocessor", None, "Its preprocessor SavedModel "
                      "directory (DIR/preprocessor).", **define)
  flags.DEFINE_string("bert_config_file", None, "Instead of --encoder: the "
                      "model's bert_config.json, or a preset name.", **define)
  flags.DEFINE_string("init_checkpoint", None, "With --bert_config_file: a "
                      "converted TF2 checkpoint (or an original TF1 one).",
                      **define)
  flags.DEFINE_string("vocab_file", None, "With --bert_config_file: the "
                      "WordPiece vocabulary.", **define)
  flags.DEFINE_boolean("do_lower_case", True, "With --vocab_file: lower-case "
                       "and strip accents (uncased models).", **define)
  flags.DEFINE_boolean("quantization_aware", False, "With "
                       "--bert_config_file: quantization-aware training "
                       "(8-bit fake quantization as the original's QAT; "
                       "relu becomes relu6, the mask rule "
                       "quantization_friendly), for a full-integer TFLite "
                       "model: see docs/tflite.md.", **define)
  flags.DEFINE_string("export_path", None, "Directory to write the serving "
                      "SavedModel to (may be left out with --tflite_file: "
                      "then only the TFLite classifier is written).",
                      **define)
  flags.DEFINE_string("tflite_file", None, "With --bert_config_file: also "
                      "write a TFLite classifier (three int32 encoder inputs "
                      "[1, --seq_length] -> probabilities), scored on the "
                      "evaluation set before it is written.", **define)
  flags.DEFINE_enum("tflite_quantization", "none",
                    ["none", "dynamic", "int8"], "With --tflite_file: "
                    "float32, dynamic-range int8 weights, or full integer "
                    "(activations calibrated on training examples; after "
                    "--quantization_aware, the learnt ranges).", **define)
  flags.DEFINE_float("tflite_max_accuracy_drop", 1.0, "With a quantized "
                     "--tflite_file: the most accuracy (points, on the "
                     "evaluation set) it may lose against the in-memory "
                     "model; float32 must match it to 1e-4.", **define)
  flags.DEFINE_integer("num_calibration_examples", 100, "Training examples "
                       "that calibrate the activation ranges: of "
                       "--tflite_quantization=int8, and with "
                       "--quantization_aware the fake quantization's "
                       "before training.", lower_bound=1, **define)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing "
                       "--export_path (and result files in --output_dir).",
                       **define)
  flags.DEFINE_integer("epochs", 3, "Training epochs.", lower_bound=1,
                       **define)
  flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1,
                       **define)
  flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.",
                     lower_bound=0.0, **define)
  flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the steps with "
                     "linear warm-up.", lower_bound=0.0, upper_bound=1.0,
                     **define)
  flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay rate.",
                     lower_bound=0.0, **define)
  flags.DEFINE_float("classifier_dropout", None, "Dropout before the "
                     "classifier; default: the encoder's hidden dropout "
                     "(0.1 for SavedModels).", lower_bound=0.0,
                     upper_bound=0.99, **define)
  flags.DEFINE_integer("seq_length", 128, "Packed sequence length.",
                       lower_bound=3, **define)
  flags.DEFINE_integer("seed", 0, "Random seed.", **define)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} (--train_file=TSV --eval_file=TSV | "
          "--task_name=TASK --data_dir=DIR --output_dir=DIR [--do_predict]) "
          "(--encoder=DIR/encoder --preprocessor=DIR/preprocessor | "
          "--bert_config_file=JSON --init_checkpoint=CKPT --vocab_file=TXT "
          "[--[no]do_lower_case]) (--export_path=OUT | --tflite_file=FILE) "
          "[--overwrite] "
          "[--epochs --batch_size --learning_rate --seq_length ...]\n\n"
          "Fine-tunes a MobileBERT classifier (or, for STS-B, a regressor) "
          "and exports a SavedModel from raw strings to class probabilities "
          "(the score).\n\nFlags:\n" + values.get_help())


def _error(message: str) -> int:
  return cli.error(_PROGRAM, message)


def _check_data_flags(values) -> Optional[str]:
  """An error message if the TSV-file and --task_name flags are mixed."""
  task = values.task_name
  if not task:
    task_only = [f"--{n}" for n in ("data_dir", "output_dir", "xnli_language")
                 if values[n].present]
    task_only += ["--do_predict"] if values.do_predict else []
    return (f"{', '.join(task_only)}: only with --task_name" if task_only
            else None)
  given = [f"--{n}" for n in ("train_file", "eval_file") if values[n].present]
  if given:
    return (f"--task_name reads the task's files from --data_dir; drop "
            f"{', '.join(given)}")
  if values["xnli_language"].present and task != "xnli":
    return "--xnli_language is for --task_name=xnli only"
  try:
    definition = glue.get_task(task, values.xnli_language)
  except ValueError:
    return (f"--xnli_language must be an XNLI language code such as 'de'; "
            f"got {values.xnli_language!r}")
  if values.do_predict and not definition.test:
    return (f"--do_predict: {definition.title} has no test set to predict "
            "(the original reads its train and dev files only)")
  return None


def _check_source_flags(values) -> Optional[str]:
  """An error message if the source flags are incomplete or mixed."""
  hub_flags = ("encoder", "preprocessor")
  ckpt_flags = ("bert_config_file", "init_checkpoint", "vocab_file")
  given_hub = [n for n in hub_flags if values[n].value]
  given_ckpt = [n for n in ckpt_flags if values[n].value]
  if given_hub and given_ckpt:
    return (f"pass either --encoder and --preprocessor or --bert_config_file, "
            f"--init_checkpoint and --vocab_file, not both (got "
            f"{', '.join('--' + n for n in given_hub + given_ckpt)})")
  if not given_hub and not given_ckpt:
    return ("pass --encoder and --preprocessor (SavedModels), or "
            "--bert_config_file, --init_checkpoint and --vocab_file")
  if given_hub and values.tflite_file:
    return ("--tflite_file needs --bert_config_file, --init_checkpoint and "
            "--vocab_file: the TFLite model is rebuilt from the config")
  if given_hub and values.quantization_aware:
    return ("--quantization_aware needs --bert_config_file, "
            "--init_checkpoint and --vocab_file: a SavedModel's graph cannot "
            "take fake-quantization ops")
  names = hub_flags if given_hub else ckpt_flags
  missing = [n for n in names if not values[n].value]
  if missing:
    return (f"{', '.join('--' + n for n in missing)} is required with "
            f"{', '.join('--' + n for n in (given_hub or given_ckpt))}")
  for name in names:
    path = values[name].value
    if name in hub_flags:
      exists = os.path.isdir(path)
    elif name == "bert_config_file":
      exists = os.path.isfile(path) or path in PRESETS
    elif name == "vocab_file":
      exists = os.path.isfile(path)
    else:  # --init_checkpoint: a prefix; restore's errors list what is there.
      exists = True
    if not exists:
      hint = (f" (and is not a preset: {', '.join(sorted(PRESETS))})"
              if name == "bert_config_file" else "")
      return f"--{name}: {path} does not exist{hint}"
  return None


def parse_flags(argv: Sequence[str]) -> flags.FlagValues:
  """Parses and checks the command line (argv[0] is the program name).

  Returns:
    The flag values, for `finetune`.

  Raises:
    InputError: unknown or missing flags, extra arguments, TSV files mixed
      with --task_name (or its flags without it), a missing --data_dir, or
      an incomplete or mixed choice of --encoder/--preprocessor vs
      checkpoint flags.
  """
  values = _define_flags()
  argv = list(argv)
  if argv and argv[0].startswith("-"):
    argv = [_PROGRAM] + argv
  try:
    cli.parse(values, argv)
    problem = _check_data_flags(values)
    if problem:
      raise InputError(problem)
    cli.require(values, (("data_dir", "output_dir") if values.task_name else
                         ("train_file", "eval_file")))
    if not values.export_path and not values.tflite_file:
      raise InputError("--export_path is required (or --tflite_file alone, "
                       "for a TFLite classifier without a SavedModel)")
  except cli.UsageError as e:
    raise InputError(str(e)) from None
  if values.task_name and not os.path.isdir(values.data_dir):
    raise InputError(f"--data_dir: {values.data_dir} is not a directory")
  problem = _check_source_flags(values)
  if problem:
    raise InputError(problem)
  tflite_only = [f"--{n}" for n in ("tflite_quantization",
                                    "tflite_max_accuracy_drop",
                                    "num_calibration_examples")
                 if values[n].present]
  if tflite_only and not values.tflite_file:
    raise InputError(f"{', '.join(tflite_only)}: only with --tflite_file")
  return values


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0]: the program name); returns the exit code."""
  if cli.wants_help([_PROGRAM] + list(argv)):
    print(_usage(_define_flags()))
    return 0
  try:
    values = parse_flags(argv)
  except InputError as e:
    return _error(str(e))
  try:
    finetune(values, log=lambda line: print(line, flush=True))
  except (InputError, OSError, ValueError) as e:
    return _error(cli.first_line(e, limit=None))
  except RuntimeError as e:
    print(f"{_PROGRAM}: {cli.first_line(e, limit=None)}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
