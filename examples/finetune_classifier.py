r"""Fine-tunes a MobileBERT sentence (pair) classifier on GLUE-style TSV files.

From a TF-Hub-style export (`python -m export.to_savedmodel`):

  python -m examples.finetune_classifier \
    --train_file=train.tsv --eval_file=dev.tsv \
    --encoder=DIR/encoder --preprocessor=DIR/preprocessor \
    --export_path=OUT [--epochs=3 --batch_size=32 --learning_rate=5e-5 \
    --seq_length=128 --overwrite]

or from a converted TF2 (or original TF1) checkpoint, without SavedModels:

  python -m examples.finetune_classifier \
    --train_file=train.tsv --eval_file=dev.tsv \
    --bert_config_file=bert_config.json --init_checkpoint=CKPT \
    --vocab_file=vocab.txt --do_lower_case --export_path=OUT

Input: tab-separated files with a header line naming the columns `sentence`
and `label` (SST-2 style), or `sentence1`, `sentence2` and `label` (pairs);
other columns are ignored; no quoting. The labels are the distinct strings of
the training file's label column (sorted, numerically if all are integers);
class `i` is the `i`-th of them.

Training: `hub.KerasLayer(encoder, trainable=True)` (or the restored
`MobileBERTEncoder`) under `mobilebert_tf.heads.
MobileBertForSequenceClassification`; AdamW (tf-models-official's
`AdamWeightDecay`, weight decay off for biases and normalization) with
linear warm-up over `--warmup_proportion` of the steps and linear decay to 0
(`official.nlp.optimization`'s schedule); Keras progress bars; evaluation on
`--eval_file` after every epoch.

Output: a SavedModel at `--export_path` that takes raw strings and returns
class probabilities, preprocessing inside, ready for TF Serving:

  signature `serving_default`: `sentence` (or `sentence1`, `sentence2`)
    string `[batch]` -> `probabilities` float32 `[batch, num_classes]`,
    `label` string `[batch]` (the most probable label);
  `assets.extra/labels.txt`: the label of each class, one per line.

Before it is moved into place the SavedModel is reloaded and its
probabilities on the evaluation sentences are compared with the in-memory
model's.

Exit codes: 0 done; 2 bad input (one line on stderr naming the file and
line, nothing written); 1 a failed export verification.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import math
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import flags
import numpy as np
import tensorflow as tf
import tf_keras

from mobilebert_tf import cli
from mobilebert_tf import heads

_PROGRAM = "python -m examples.finetune_classifier"
SINGLE_COLUMNS = ("sentence",)
PAIR_COLUMNS = ("sentence1", "sentence2")
LABEL_COLUMN = "label"
LABELS_FILE = os.path.join("assets.extra", "labels.txt")
# Probabilities of the reloaded SavedModel vs the in-memory model.
VERIFY_ATOL = 1e-5


class InputError(ValueError):
  """Bad user input; the message is one line naming the file and line."""


# === TSV input ===


@dataclasses.dataclass
class TsvData:
  """Examples of one TSV file.

  Attributes:
    path: str.
    text_columns: ("sentence",) or ("sentence1", "sentence2").
    texts: one list of str per text column, one entry per example.
    labels: the label string of each example.
    line_numbers: the 1-based line of each example.
  """
  path: str
  text_columns: Tuple[str, ...]
  texts: List[List[str]]
  labels: List[str]
  line_numbers: List[int]

  def __len__(self):
    return len(self.labels)


def read_tsv(path: str) -> TsvData:
  """Reads a GLUE-style TSV file with a header line.

  Raises:
    InputError: missing or empty file, missing column, a line with too few
      fields, an empty label, invalid UTF-8, or no examples.
  """
  name = os.fspath(path)
  if not os.path.isfile(name):
    raise InputError(f"{name}: no such file")
  with open(name, "rb") as f:
    raw_lines = f.read().split(b"\n")
  if raw_lines and raw_lines[-1] == b"":
    raw_lines.pop()
  if not raw_lines or not any(line.strip() for line in raw_lines):
    raise InputError(
        f"{name}: the file is empty; expected a header line with the columns "
        "'sentence' and 'label' (or 'sentence1', 'sentence2', 'label')")
  lines = []
  for number, raw in enumerate(raw_lines, start=1):
    try:
      lines.append(raw.decode("utf-8").rstrip("\r"))
    except UnicodeDecodeError as e:
      raise InputError(f"{name} line {number}: not valid UTF-8 ({e.reason} "
                       f"at byte {e.start})") from None
  header = lines[0].split("\t")
  if LABEL_COLUMN in header and all(c in header for c in PAIR_COLUMNS):
    text_columns = PAIR_COLUMNS
  elif LABEL_COLUMN in header and SINGLE_COLUMNS[0] in header:
    text_columns = SINGLE_COLUMNS
  else:
    missing = [c for c in (SINGLE_COLUMNS + (LABEL_COLUMN,))
               if c not in header]
    if any(c in header for c in PAIR_COLUMNS):
      missing = [c for c in PAIR_COLUMNS + (LABEL_COLUMN,) if c not in header]
    raise InputError(
        f"{name} line 1: missing column {', '.join(repr(c) for c in missing)}"
        f"; the header has {header!r}, expected 'sentence' and 'label' (or "
        "'sentence1', 'sentence2', 'label'), tab-separated")
  indices = [header.index(c) for c in text_columns]
  label_index = header.index(LABEL_COLUMN)
  needed = max(indices + [label_index]) + 1
  texts = [[] for _ in text_columns]
  labels, numbers = [], []
  for number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue  # Blank lines (e.g. at the end) carry no example.
    fields = line.split("\t")
    if len(fields) < needed:
      raise InputError(
          f"{name} line {number}: expected {len(header)} tab-separated fields"
          f" ({', '.join(header)}), found {len(fields)}")
    label = fields[label_index].strip()
    if not label:
      raise InputError(f"{name} line {number}: empty label")
    for column, index in enumerate(indices):
      texts[column].append(fields[index])
    labels.append(label)
    numbers.append(number)
  if not labels:
    raise InputError(f"{name}: no examples after the header line")
  return TsvData(name, text_columns, texts, labels, numbers)


def label_names(train: TsvData) -> List[str]:
  """The distinct labels of the training data: numeric order if all ints."""
  distinct = set(train.labels)
  try:
    names = sorted(distinct, key=int)
  except ValueError:
    names = sorted(distinct)
  if len(names) < 2:
    raise InputError(f"{train.path}: all examples have the label "
                     f"{names[0]!r}; a classifier needs at least 2 labels")
  return names


def label_ids(data: TsvData, names: Sequence[str]) -> np.ndarray:
  """Class ids of `data`'s labels.

  Raises:
    InputError: a label that is not in `names`, naming file and line.
  """
  index = {n: i for i, n in enumerate(names)}
  ids = []
  for label, number in zip(data.labels, data.line_numbers):
    if label not in index:
      raise InputError(
          f"{data.path} line {number}: unknown label {label!r}; the training "
          f"data has the labels {', '.join(repr(n) for n in names)}")
    ids.append(index[label])
  return np.asarray(ids, np.int32)


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


def _special_tokens(tokenize) -> Dict[str, int]:
  special = tokenize.get_special_tokens_dict()
  return {k: int(np.asarray(v)) for k, v in special.items()}


def load_text_preprocessing(flag_values, seq_length: int):
  """The `TextToEncoderInputs` layer for the chosen source."""
  if flag_values.preprocessor:
    import tensorflow_hub as hub
    loaded = hub.load(flag_values.preprocessor)
    tokenize = hub.KerasLayer(loaded.tokenize, name="tokenize")
    special = _special_tokens(loaded.tokenize)
  else:
    from mobilebert_tf import preprocessing
    preprocessor = preprocessing.build_preprocessor(
        flag_values.vocab_file, flag_values.do_lower_case,
        seq_length=seq_length, tokenize_with_offsets=False)
    tokenize = preprocessor.tokenize
    special = _special_tokens(tokenize)
  return TextToEncoderInputs(tokenize, special, seq_length,
                             name="text_to_encoder_inputs")


def load_encoder(flag_values):
  """`hub.KerasLayer(encoder, trainable=True)`, or a restored encoder."""
  if flag_values.encoder:
    import tensorflow_hub as hub
    return hub.KerasLayer(flag_values.encoder, trainable=True, name="encoder")
  from export import hub_export
  from mobilebert_tf import MobileBertConfig
  from mobilebert_tf import build_pretrainer
  config = MobileBertConfig.from_json_file(flag_values.bert_config_file)
  hub_export.check_vocab(flag_values.vocab_file, config)
  pretrainer = build_pretrainer(config)
  hub_export.load_checkpoint(pretrainer, config, flag_values.init_checkpoint)
  return pretrainer.encoder_network


def create_optimizer(learning_rate: float, num_train_steps: int,
                     num_warmup_steps: int, weight_decay: float):
  """AdamW with linear warm-up and linear decay to 0.

  `official.nlp.optimization.create_optimizer`'s schedule and optimizer, with
  the weight decay rate as an argument and normalization weights excluded by
  this project's names too (`..._norm`, `NoNorm`).
  """
  from official.nlp import optimization
  schedule = tf_keras.optimizers.schedules.PolynomialDecay(
      initial_learning_rate=learning_rate, decay_steps=num_train_steps,
      end_learning_rate=0.0, power=1.0)
  if num_warmup_steps:
    schedule = optimization.WarmUp(
        initial_learning_rate=learning_rate, decay_schedule_fn=schedule,
        warmup_steps=num_warmup_steps)
  return optimization.AdamWeightDecay(
      learning_rate=schedule, weight_decay_rate=weight_decay, beta_1=0.9,
      beta_2=0.999, epsilon=1e-6,
      exclude_from_weight_decay=["LayerNorm", "layer_norm", "norm", "bias"])


class ServingModule(tf.Module):
  """What gets exported: the strings -> probabilities model and signature."""

  def __init__(self, model, text_columns, names):
    super().__init__()
    self.model = model
    self.text_columns = tuple(text_columns)
    self._labels = tf.constant(list(names))
    specs = [tf.TensorSpec([None], tf.string, name=c) for c in text_columns]

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
    model: the in-memory model, a list of string tensors -> probabilities.
    label_names: the label of each class.
    history: the Keras `History.history` dict (loss, accuracy, val_...).
    eval_accuracy: accuracy on the evaluation file after the last epoch.
    export_path: where the SavedModel is.
    max_abs_diff: largest |probability difference| between the reloaded
      SavedModel and `model` on the evaluation sentences.
  """
  model: tf_keras.Model
  label_names: List[str]
  history: Dict[str, List[float]]
  eval_accuracy: float
  export_path: str
  max_abs_diff: float


def _prepare_export_path(export_path: str, overwrite: bool) -> str:
  export_path = os.path.abspath(export_path)
  if os.path.exists(export_path) and not overwrite:
    raise InputError(f"--export_path {export_path} already exists; pass "
                     "--overwrite to replace it")
  parent = os.path.dirname(export_path)
  if not os.path.isdir(parent):
    raise InputError(f"--export_path: the directory {parent} does not exist")
  return export_path


def _export(module: ServingModule, names, export_path: str, verify_texts,
            expected) -> float:
  """Saves into a temporary directory, verifies, renames into place."""
  parent = os.path.dirname(export_path)
  tmp = tempfile.mkdtemp(prefix=".tmp_" + os.path.basename(export_path) + "_",
                         dir=parent)
  try:
    tf.saved_model.save(module, tmp,
                        signatures={"serving_default": module.serve})
    os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
    with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
      f.write("".join(n + "\n" for n in names))
    serve = tf.saved_model.load(tmp).signatures["serving_default"]
    got = serve(**{c: tf.constant(t) for c, t in
                   zip(module.text_columns, verify_texts)})["probabilities"]
    max_abs_diff = float(np.max(np.abs(got.numpy() - expected)))
    if not max_abs_diff <= VERIFY_ATOL:
      raise RuntimeError(
          f"The reloaded SavedModel differs from the trained model: max "
          f"|probability difference| {max_abs_diff:.3g} > {VERIFY_ATOL}")
    old = None
    if os.path.exists(export_path):
      old = tempfile.mkdtemp(prefix=".old_", dir=parent)
      os.rename(export_path, os.path.join(old, "x"))
    os.rename(tmp, export_path)
    if old:
      shutil.rmtree(old, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return max_abs_diff


def finetune(flag_values, log=print) -> FinetuneResult:
  """Reads the data, fine-tunes, exports and verifies (the CLI minus parsing).

  Args:
    flag_values: an object with the CLI's flag names as attributes.
    log: function called with progress lines.

  Raises:
    InputError: bad input files or flags (before anything is trained).
    FileNotFoundError, FileExistsError, ValueError: from loading the models.
    RuntimeError: the export failed verification.
  """
  start = time.time()
  export_path = _prepare_export_path(flag_values.export_path,
                                     flag_values.overwrite)
  train = read_tsv(flag_values.train_file)
  evaluation = read_tsv(flag_values.eval_file)
  if evaluation.text_columns != train.text_columns:
    raise InputError(
        f"{evaluation.path} line 1: has the text columns "
        f"{', '.join(evaluation.text_columns)} but {train.path} has "
        f"{', '.join(train.text_columns)}")
  names = label_names(train)
  train_y = label_ids(train, names)
  eval_y = label_ids(evaluation, names)
  log(f"Data: {len(train)} training examples ({train.path}), "
      f"{len(evaluation)} evaluation examples ({evaluation.path}), "
      f"{len(names)} labels: {', '.join(names)}")

  tf_keras.utils.set_random_seed(flag_values.seed)
  text_to_inputs = load_text_preprocessing(flag_values, flag_values.seq_length)
  encoder = load_encoder(flag_values)
  classifier = heads.MobileBertForSequenceClassification(
      encoder, num_classes=len(names),
      classifier_dropout=flag_values.classifier_dropout,
      name="classifier")

  def encode(data):
    return {k: v.numpy() for k, v in text_to_inputs(
        [tf.constant(t) for t in data.texts]).items()}

  train_x, eval_x = encode(train), encode(evaluation)
  log(f"Loaded the encoder and preprocessing, tokenized "
      f"({time.time() - start:.0f} s)")
  batch_size = flag_values.batch_size
  steps_per_epoch = math.ceil(len(train) / batch_size)
  num_train_steps = steps_per_epoch * flag_values.epochs
  num_warmup_steps = int(flag_values.warmup_proportion * num_train_steps)
  classifier.compile(
      optimizer=create_optimizer(flag_values.learning_rate, num_train_steps,
                                 num_warmup_steps, flag_values.weight_decay),
      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
  train_ds = tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(
      len(train), seed=flag_values.seed,
      reshuffle_each_iteration=True).batch(batch_size)
  eval_ds = tf.data.Dataset.from_tensor_slices((eval_x, eval_y)).batch(
      batch_size)
  log(f"Training: {flag_values.epochs} epochs of {steps_per_epoch} steps, "
      f"batch size {batch_size}, learning rate {flag_values.learning_rate} "
      f"({num_warmup_steps} warm-up steps, linear decay), seq_length "
      f"{flag_values.seq_length}")
  history = classifier.fit(train_ds, validation_data=eval_ds,
                           epochs=flag_values.epochs, verbose=1)
  eval_accuracy = float(history.history["val_accuracy"][-1])
  log(f"Trained ({time.time() - start:.0f} s)")

  # Strings in, probabilities out.
  segments = [tf_keras.Input(shape=(), dtype=tf.string, name=c)
              for c in train.text_columns]
  probabilities = tf_keras.layers.Softmax(name="probabilities")(
      classifier(text_to_inputs(segments)))
  model = tf_keras.Model(segments, probabilities, name="text_classifier")
  expected = model([tf.constant(t) for t in evaluation.texts],
                   training=False).numpy()
  module = ServingModule(model, train.text_columns, names)
  max_abs_diff = _export(module, names, export_path, evaluation.texts,
                         expected)
  log(f"Exported {export_path} (signature serving_default: "
      f"{', '.join(train.text_columns)} -> probabilities, label); reloaded "
      f"and checked on {len(evaluation)} sentences: max |difference| "
      f"{max_abs_diff:.2g}. Evaluation accuracy {eval_accuracy:.4f}. "
      f"{time.time() - start:.0f} s.")
  return FinetuneResult(model, names, dict(history.history), eval_accuracy,
                        export_path, max_abs_diff)


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
  flags.DEFINE_string("encoder", None, "TF-Hub-style encoder SavedModel "
                      "directory (export.to_savedmodel's DIR/encoder).",
                      **define)
  flags.DEFINE_string("preprocessor", None, "Its preprocessor SavedModel "
                      "directory (DIR/preprocessor).", **define)
  flags.DEFINE_string("bert_config_file", None, "Instead of --encoder: the "
                      "model's bert_config.json.", **define)
  flags.DEFINE_string("init_checkpoint", None, "With --bert_config_file: a "
                      "converted TF2 checkpoint (or an original TF1 one).",
                      **define)
  flags.DEFINE_string("vocab_file", None, "With --bert_config_file: the "
                      "WordPiece vocabulary.", **define)
  flags.DEFINE_boolean("do_lower_case", True, "With --vocab_file: lower-case "
                       "and strip accents (uncased models).", **define)
  flags.DEFINE_string("export_path", None, "Directory to write the serving "
                      "SavedModel to.", **define)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing "
                       "--export_path.", **define)
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
  return (f"Usage: {_PROGRAM} --train_file=TSV --eval_file=TSV "
          "(--encoder=DIR/encoder --preprocessor=DIR/preprocessor | "
          "--bert_config_file=JSON --init_checkpoint=CKPT --vocab_file=TXT "
          "[--[no]do_lower_case]) --export_path=OUT [--overwrite] "
          "[--epochs --batch_size --learning_rate --seq_length ...]\n\n"
          "Fine-tunes a MobileBERT classifier and exports a SavedModel from "
          "raw strings to class probabilities.\n\nFlags:\n" +
          values.get_help())


def _error(message: str) -> int:
  return cli.error(_PROGRAM, message)


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
  names = hub_flags if given_hub else ckpt_flags
  missing = [n for n in names if not values[n].value]
  if missing:
    return (f"{', '.join('--' + n for n in missing)} is required with "
            f"{', '.join('--' + n for n in (given_hub or given_ckpt))}")
  for name in names:
    path = values[name].value
    exists = (os.path.isdir(path) if name in hub_flags else
              os.path.exists(path) or name == "init_checkpoint")
    if not exists:
      return f"--{name}: {path} does not exist"
  return None


def parse_flags(argv: Sequence[str]) -> flags.FlagValues:
  """Parses and checks the command line (argv[0] is the program name).

  Returns:
    The flag values, for `finetune`.

  Raises:
    InputError: unknown or missing flags, extra arguments, or an incomplete
      or mixed choice of --encoder/--preprocessor vs checkpoint flags.
  """
  values = _define_flags()
  argv = list(argv)
  if argv and argv[0].startswith("-"):
    argv = [_PROGRAM] + argv
  try:
    cli.parse(values, argv,
              required=("train_file", "eval_file", "export_path"))
  except cli.UsageError as e:
    raise InputError(str(e)) from None
  problem = _check_source_flags(values)
  if problem:
    raise InputError(problem)
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
