"""Exports MobileBERT as TF-Hub SavedModels: encoder (with `.mlm`) and preprocessor.

The encoder SavedModel written by `export_encoder` implements the Common
SavedModel API for text embeddings with Transformer encoders
(https://www.tensorflow.org/hub/common_saved_model_apis/text), like
`tensorflow/small_bert/bert_en_uncased_L-12_H-512_A-8` and the SavedModels
that tf-models-official's `official/nlp/tools/export_tfhub_lib.py` writes:

```
encoder = hub.KerasLayer(export_dir + "/encoder", trainable=True)
encoder_inputs = dict(
    input_word_ids=...,  # int32 [batch, seq_length], seq_length <= max
    input_mask=...,      # int32 [batch, seq_length], 1 = token, 0 = padding
    input_type_ids=...,  # int32 [batch, seq_length], segment ids
)
outputs = encoder(encoder_inputs, training=False)  # dropout iff training
outputs["pooled_output"]    # float32 [batch, width]
outputs["default"]          # alias of pooled_output
outputs["sequence_output"]  # float32 [batch, seq_length, width]
outputs["encoder_outputs"]  # list, one [batch, seq_length, width] per block;
                            # the last one is sequence_output

mlm_inputs = dict(encoder_inputs,
                  masked_lm_positions=...)  # int32 [batch, num_predict]
mlm_outputs = hub.load(export_dir + "/encoder").mlm(mlm_inputs)
mlm_outputs["mlm_logits"]   # float32 [batch, num_predict, vocab_size]
# ... plus pooled_output, sequence_output and encoder_outputs as above.
```

Besides, the encoder SavedModel has

* `.vocab_file`: the WordPiece vocabulary, a `tf.saved_model.Asset`;
* `.do_lower_case`: a non-trainable bool `tf.Variable`, as Google's models;
* the signatures `serving_default` (the three int32 inputs -> `pooled_output`,
  `default`, `sequence_output`, `encoder_outputs_0` ... `encoder_outputs_<L-1>`)
  and `mlm` (the same plus `masked_lm_positions` -> the same plus
  `mlm_logits`), for TF Serving and `saved_model_cli`.

`hub.KerasLayer(..., trainable=True)` fine-tunes every encoder variable; the
`.mlm` head's own variables (transform, layer norm, output bias, extra output
weights) are not among the encoder's (like tf-models-official's exports).

The preprocessor SavedModel is `mobilebert_tf.preprocessing`'s
(`export_preprocessor`): the preprocessor API of
`tensorflow/bert_en_uncased_preprocess/3`.

`export_all` runs the whole pipeline: validate the inputs, build the
pretrainer, restore the checkpoint strictly (`load_checkpoint`: TF2 checkpoints
of `pretrainer.checkpoint_items`, ours or tf-models-official's, and original
TF1 checkpoints, converted on the fly), write both SavedModels into a temporary
directory beside the target, reload and verify them against the in-memory
model (`verify_export`), and rename into place.

Example:

>>> report = export_all(config, "model.ckpt", "vocab.txt", do_lower_case=True,
...                     export_path="/tmp/mobilebert_hub")
>>> print(report.format())
"""

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from checkpoints import convert
from mobilebert_tf import preprocessing
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.pretrainer import MobileBertPretrainer
from mobilebert_tf.pretrainer import build_pretrainer

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
ENCODER_OUTPUTS = ("pooled_output", "default", "sequence_output",
                   "encoder_outputs")
MLM_OUTPUTS = ("pooled_output", "sequence_output", "encoder_outputs",
               "mlm_logits")

# Relative error allowed between the reloaded SavedModel and the in-memory
# model (‖hub - model‖ / ‖model‖) in `verify_export`.
VERIFY_TOLERANCE = 1e-5

# The fixed probe batch of `verify_export`: "[MASK]" marks masked-LM probes.
PROBE_SENTENCES = (
    "Return the [MASK] of the list.",
    "Raise a [MASK] if the file does not exist.",
    "The default [MASK] is None.",
    "Create a new [MASK] and return it.",
    "Hello, World! Ça marche très bien.",
)
MASK_TEXT = "[MASK]"

_TF2_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_CHECKPOINT_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")


# === Checkpoints ===


def checkpoint_format(checkpoint_path: str) -> Tuple[str, str]:
  """Detects a checkpoint's layout from its keys.

  Args:
    checkpoint_path: str. A checkpoint prefix (`.../model.ckpt`, the files
      being `<prefix>.index` and `<prefix>.data-*`), one of those files, or a
      directory with a `checkpoint` state file.

  Returns:
    `(prefix, fmt)`: the resolved prefix and "tf2" for an object-based
    checkpoint (`tf.train.Checkpoint`, ours or tf-models-official's), "tf1"
    for an original name-based MobileBERT checkpoint (`bert/embeddings/...`).

  Raises:
    FileNotFoundError: no checkpoint at `checkpoint_path`.
    ValueError: the files are not a readable checkpoint, or neither layout.
  """
  prefix = os.fspath(checkpoint_path)
  if tf.io.gfile.isdir(prefix):
    latest = tf.train.latest_checkpoint(prefix)
    if latest is None:
      raise FileNotFoundError(
          f"No checkpoint found in directory {prefix!r}: it has no "
          "`checkpoint` state file. Pass the checkpoint prefix (the path "
          "without .index).")
    prefix = latest
  if not tf.io.gfile.exists(prefix + ".index"):  # One of its files?
    prefix = _CHECKPOINT_FILE_SUFFIX.sub("", prefix)
  if not tf.io.gfile.exists(prefix + ".index"):
    raise FileNotFoundError(
        f"Checkpoint not found: {prefix}.index does not exist. Pass the "
        "checkpoint prefix, e.g. path/to/model.ckpt.")
  keys = _checkpoint_shapes(prefix)
  if "_CHECKPOINTABLE_OBJECT_GRAPH" in keys:
    return prefix, "tf2"
  if "bert/embeddings/word_embeddings" in keys:
    return prefix, "tf1"
  raise ValueError(
      f"Checkpoint {prefix} is neither an object-based TF2 checkpoint nor an "
      "original TF1 MobileBERT checkpoint (no `bert/embeddings/"
      f"word_embeddings`). First keys: {sorted(keys)[:5]}")


def _checkpoint_shapes(prefix: str) -> Dict[str, Tuple[int, ...]]:
  """{key: shape} of a checkpoint, with a clear error for unreadable files."""
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
  except (tf.errors.OpError, ValueError) as e:
    message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    raise ValueError(f"Cannot read checkpoint {prefix}: {message}") from None
  return {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}


def _model_variables(pretrainer: MobileBertPretrainer) -> List[tf.Variable]:
  """The unique variables of `checkpoint_items` (the tied table once)."""
  seen, result = set(), []
  for obj in pretrainer.checkpoint_items.values():
    for variable in obj.variables:
      if id(variable) not in seen:
        seen.add(id(variable))
        result.append(variable)
  return result


def _expected_tf2_shapes(pretrainer) -> Dict[str, Tuple[int, ...]]:
  """{key: shape} a fitting TF2 checkpoint has for `checkpoint_items`.

  Writes the freshly built model's checkpoint to TF's in-memory file system
  and reads its keys back: the object-graph keys are exactly those of any
  `tf.train.Checkpoint(**checkpoint_items)` of the same architecture.
  """
  prefix = f"ram://mobilebert_export_{uuid.uuid4().hex}/ckpt"
  try:
    path = tf.train.Checkpoint(**pretrainer.checkpoint_items).write(prefix)
    return _checkpoint_shapes(path)
  finally:
    tf.io.gfile.rmtree(os.path.dirname(prefix))


def _model_keys(shapes, roots) -> Dict[str, Tuple[int, ...]]:
  """The variable values under `roots` (no optimizer slots, no counters)."""
  return {k: v for k, v in shapes.items()
          if k.split("/", 1)[0] in roots and k.endswith(_TF2_VARIABLE_SUFFIX)
          and ".OPTIMIZER_SLOT" not in k}


def _list_names(names, limit=5) -> str:
  names = sorted(names)
  more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
  return ", ".join(names[:limit]) + more


def _check_tf2_fits(pretrainer, prefix: str) -> None:
  """Raises ValueError listing what of a TF2 checkpoint does not fit."""
  expected = _expected_tf2_shapes(pretrainer)
  roots = set(pretrainer.checkpoint_items)
  want = _model_keys(expected, roots)
  have = _model_keys(_checkpoint_shapes(prefix), roots)
  if not have:
    raise ValueError(
        f"Checkpoint {prefix} has no variables under {sorted(roots)}: expected "
        "a checkpoint written as tf.train.Checkpoint(**pretrainer."
        "checkpoint_items) (ours, tf-models-official's, or the converter's).")
  strip = lambda names: [n[:-len(_TF2_VARIABLE_SUFFIX)] for n in names]
  missing = strip(set(want) - set(have))
  unused = strip(set(have) - set(want))
  mismatched = [
      f"{k[:-len(_TF2_VARIABLE_SUFFIX)]}: checkpoint {have[k]} vs model "
      f"{want[k]}" for k in sorted(set(want) & set(have)) if have[k] != want[k]]
  problems = []
  if mismatched:
    problems.append(f"{len(mismatched)} shape mismatches: "
                    f"{_list_names(mismatched, 3)}")
  if missing:
    problems.append(f"{len(missing)} model variables missing from the "
                    f"checkpoint: {_list_names(missing)}")
  if unused:
    problems.append(f"{len(unused)} checkpoint variables the model does not "
                    f"have: {_list_names(unused)}")
  if problems:
    raise ValueError(f"Checkpoint {prefix} does not fit the config: "
                     + "; ".join(problems) + ".")


def _restore_tf2(pretrainer, prefix: str) -> None:
  """Restores a TF2 checkpoint of `checkpoint_items` after `_check_tf2_fits`."""
  _check_tf2_fits(pretrainer, prefix)
  checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items)
  try:
    # `read`, not `restore`: no `save_counter` to match (checkpoints written
    # with `write`, like the converter's, have none).
    checkpoint.read(prefix).assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:
    raise ValueError(f"Checkpoint {prefix} does not fit the config: "
                     f"{str(e).strip().splitlines()[0]}") from None


def load_checkpoint(pretrainer: MobileBertPretrainer,
                    config: MobileBertConfig, checkpoint_path: str,
                    log: Callable[[str], None] = logging.info) -> str:
  """Restores a checkpoint into `pretrainer`; fails unless it fits exactly.

  Accepts
  * a TF2 checkpoint of `tf.train.Checkpoint(**pretrainer.checkpoint_items)`
    (the converter's, ours, or tf-models-official's MobileBERT pretrainer's;
    other objects in it, e.g. an optimizer or `next_sentence`, are ignored);
  * an original TF1 MobileBERT checkpoint (name-based, `bert/...`, `cls/...`),
    converted on the fly by `checkpoints.convert.convert` (into a temporary
    TF2 checkpoint; optimizer slots and the NSP head are dropped).

  Checks, before and after restoring: every model variable has a checkpoint
  value of its shape and no checkpoint variable under the model's roots is
  left unused (so a checkpoint of another config fails);
  `assert_existing_objects_matched()`; and every model variable was actually
  written (they are set to NaN first).

  Args:
    pretrainer: the model to restore into (`build_pretrainer(config)`).
    config: its configuration (for the TF1 name table).
    checkpoint_path: str. Checkpoint prefix or directory.
    log: callable taking one progress line (the converter's). Defaults to
      absl `logging.info`.

  Returns:
    "tf1" or "tf2", the detected format.

  Raises:
    FileNotFoundError: no checkpoint at `checkpoint_path`.
    ValueError: the checkpoint is unreadable or does not fit the model; the
      message lists the offending variable names (`convert.ConversionError`
      for TF1 checkpoints). `pretrainer`'s weights are then undefined.
  """
  prefix, fmt = checkpoint_format(checkpoint_path)
  variables = _model_variables(pretrainer)
  for variable in variables:  # Sentinel: anything not restored stays NaN.
    if variable.dtype.is_floating:
      variable.assign(tf.fill(variable.shape, float("nan")))
  if fmt == "tf1":
    # Converted by the converter's code (strict accounting, bit-exact
    # read-back) into a temporary TF2 checkpoint, then restored like any.
    with tempfile.TemporaryDirectory(prefix="mobilebert_tf1_") as tmp_dir:
      summary = convert.convert(
          config, prefix, os.path.join(tmp_dir, "converted"),
          with_nsp="next_sentence" in pretrainer.checkpoint_items, log=log)
      _restore_tf2(pretrainer, summary.tf2_checkpoint_path)
  else:
    _restore_tf2(pretrainer, prefix)
  not_restored = [v.name for v in variables if v.dtype.is_floating
                  and not np.isfinite(v.numpy()).all()]
  if not_restored:
    raise ValueError(
        f"{len(not_restored)} model variables were not restored from "
        f"{prefix} (or hold NaN/inf there): {_list_names(not_restored)}.")
  return fmt


# === Export model ===


def _attach_untracked(core_model: tf_keras.Model, name: str,
                      submodel: tf_keras.Model) -> None:
  """Sets `core_model.<name> = submodel` without adding its weights.

  The one private-API use of this module (as tf-models-official, see
  b/169210253): with `_auto_track_sub_layers` off, Keras still saves the
  attribute as a SavedModel dependency, but `core_model.weights` (and hence
  `hub.KerasLayer(...).trainable_weights`) keep only the encoder's.
  `tests/test_export.py` pins the resulting variable counts.
  """
  core_model._auto_track_sub_layers = False  # pylint: disable=protected-access
  setattr(core_model, name, submodel)


def build_export_model(pretrainer: MobileBertPretrainer) -> tf_keras.Model:
  """The Keras model that `export_encoder` saves, sharing `pretrainer`'s weights.

  Args:
    pretrainer: a built `MobileBertPretrainer`.

  Returns:
    A functional `tf_keras.Model` from the dict of `ENCODER_INPUTS` to the
    dict of `ENCODER_OUTPUTS`, with attribute `.mlm`: a functional model from
    the same inputs plus `masked_lm_positions` to `MLM_OUTPUTS`.
  """
  encoder = pretrainer.encoder_network
  inputs = {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name)
            for name in ENCODER_INPUTS}
  outputs = encoder(inputs)
  core_model = tf_keras.Model(
      inputs=inputs,
      outputs=dict(
          pooled_output=outputs["pooled_output"],
          # For interchangeability with other text representations.
          default=outputs["pooled_output"],
          sequence_output=outputs["sequence_output"],
          encoder_outputs=outputs["encoder_outputs"]),
      name="mobilebert_hub_encoder")
  mlm_inputs = dict(inputs)
  mlm_inputs["masked_lm_positions"] = tf_keras.Input(
      shape=(None,), dtype=tf.int32, name="masked_lm_positions")
  mlm_outputs = pretrainer(mlm_inputs)
  mlm_model = tf_keras.Model(
      inputs=mlm_inputs,
      outputs={k: mlm_outputs[k] for k in MLM_OUTPUTS},
      name="mobilebert_hub_mlm")
  _attach_untracked(core_model, "mlm", mlm_model)
  return core_model


def _serving_signatures(core_model: tf_keras.Model):
  """`serving_default` and `mlm` signatures with flat, named outputs."""
  spec = lambda name: tf.TensorSpec([None, None], tf.int32, name=name)

  def flat(outputs):
    result = {k: outputs[k] for k in MLM_OUTPUTS + ENCODER_OUTPUTS
              if k in outputs and k != "encoder_outputs"}
    for i, tensor in enumerate(outputs["encoder_outputs"]):
      result[f"encoder_outputs_{i}"] = tensor
    return result

  @tf.function(input_signature=[spec(n) for n in ENCODER_INPUTS])
  def serve(input_word_ids, input_mask, input_type_ids):
    return flat(core_model(dict(input_word_ids=input_word_ids,
                                input_mask=input_mask,
                                input_type_ids=input_type_ids),
                           training=False))

  @tf.function(input_signature=[
      spec(n) for n in ENCODER_INPUTS + ("masked_lm_positions",)])
  def serve_mlm(input_word_ids, input_mask, input_type_ids,
                masked_lm_positions):
    return flat(core_model.mlm(dict(input_word_ids=input_word_ids,
                                    input_mask=input_mask,
                                    input_type_ids=input_type_ids,
                                    masked_lm_positions=masked_lm_positions),
                               training=False))

  return {"serving_default": serve.get_concrete_function(),
          "mlm": serve_mlm.get_concrete_function()}


def _copy_to_hashed_dir(path: str, tmp_dir: str) -> str:
  """Copies `path` to `tmp_dir/<sha1 of its dir>/<basename>` (as Model Garden).

  The SavedModel then refers to the file only as `assets/<basename>`; the
  source path never appears in `saved_model.pb`.
  """
  source_dir, basename = os.path.split(os.path.abspath(path))
  target_dir = os.path.join(tmp_dir,
                            hashlib.sha1(source_dir.encode()).hexdigest())
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, basename)
  shutil.copyfile(path, target)
  return target


def _prepare_target(export_dir: str, overwrite: bool) -> str:
  export_dir = os.path.abspath(os.fspath(export_dir))
  if os.path.exists(export_dir) and not overwrite:
    raise FileExistsError(
        f"Export directory {export_dir} already exists. Pass --overwrite "
        "(overwrite=True) to replace it.")
  os.makedirs(os.path.dirname(export_dir), exist_ok=True)
  return export_dir


def _move_into_place(tmp_dir: str, export_dir: str) -> None:
  """Renames `tmp_dir` to `export_dir`, replacing an old one last."""
  old = None
  if os.path.exists(export_dir):
    old = tempfile.mkdtemp(prefix=".old_" + os.path.basename(export_dir) + "_",
                           dir=os.path.dirname(export_dir))
    os.rename(export_dir, os.path.join(old, "x"))
  os.rename(tmp_dir, export_dir)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def export_encoder(pretrainer: MobileBertPretrainer, vocab_file: str,
                   do_lower_case: bool, export_dir: str,
                   overwrite: bool = False) -> str:
  """Writes the encoder SavedModel (with `.mlm`, vocab and signatures).

  See the module docstring for the SavedModel's contract. Writes to a
  temporary directory beside `export_dir` and renames it at the end.

  Args:
    pretrainer: a `MobileBertPretrainer` holding the weights to export.
    vocab_file: str. The WordPiece vocabulary the model was trained with;
      copied into the SavedModel as an asset.
    do_lower_case: bool. Whether the vocabulary is uncased; stored as the
      `do_lower_case` variable.
    export_dir: str. Target directory.
    overwrite: bool. Replace an existing `export_dir`. Defaults to False.

  Returns:
    The absolute `export_dir`.

  Raises:
    FileExistsError: `export_dir` exists and `overwrite` is False.
    FileNotFoundError: `vocab_file` does not exist.
  """
  export_dir = _prepare_target(export_dir, overwrite)
  if not os.path.isfile(vocab_file):
    raise FileNotFoundError(f"Vocab file not found: {vocab_file}")
  core_model = build_export_model(pretrainer)
  tmp_export = tempfile.mkdtemp(
      prefix=".tmp_" + os.path.basename(export_dir) + "_",
      dir=os.path.dirname(export_dir))
  try:
    with tempfile.TemporaryDirectory() as tmp_vocab_dir:
      core_model.vocab_file = tf.saved_model.Asset(
          _copy_to_hashed_dir(vocab_file, tmp_vocab_dir))
      core_model.do_lower_case = tf.Variable(bool(do_lower_case),
                                             trainable=False,
                                             name="do_lower_case")
      core_model.save(tmp_export, include_optimizer=False, save_format="tf",
                      signatures=_serving_signatures(core_model))
    _move_into_place(tmp_export, export_dir)
  except BaseException:
    shutil.rmtree(tmp_export, ignore_errors=True)
    raise
  return export_dir


# === Inputs ===


def check_vocab(vocab_file: str, config: MobileBertConfig) -> List[str]:
  """Reads the vocabulary and checks it against the config.

  Returns:
    The tokens.

  Raises:
    FileNotFoundError: `vocab_file` does not exist.
    ValueError: not a BERT vocabulary (no special tokens, duplicates, ...) or
      its size differs from `config.vocab_size`.
  """
  tokens = preprocessing.read_vocab(vocab_file)
  if len(tokens) != config.vocab_size:
    raise ValueError(
        f"Vocab file {vocab_file} has {len(tokens)} tokens but the config's "
        f"vocab_size is {config.vocab_size}: the vocabulary does not belong "
        "to this model.")
  return tokens


def _check_seq_length(seq_length, config: MobileBertConfig) -> None:
  if isinstance(seq_length, bool) or not isinstance(seq_length, int) or not (
      3 <= seq_length <= config.max_position_embeddings):
    raise ValueError(
        "`seq_length` must be an int in [3, max_position_embeddings="
        f"{config.max_position_embeddings}]. Received: seq_length="
        f"{seq_length!r}")


# === Verification ===


@dataclasses.dataclass
class ExportReport:
  """What `export_all` wrote and measured.

  Attributes:
    export_path: the directory holding `encoder/` and `preprocessor/`.
    checkpoint_format: "tf1" or "tf2".
    sizes: {"encoder": bytes, "preprocessor": bytes} on disk.
    num_parameters: {"encoder": n, "mlm_head": n}: encoder parameters, and
      those the `.mlm` head adds.
    signatures: {"encoder": {name: (inputs, outputs)}, "preprocessor": ...}.
    callables: {"encoder": [...], "preprocessor": [...]}: the sub-objects.
    output_shapes: {output name: shape} of the encoder on the probe batch.
    max_relative_error: {output name: max relative error} hub vs in-memory.
    predictions: [(sentence, [[top-k tokens] per [MASK]])].
    seconds: wall time of the export.
  """
  export_path: str
  checkpoint_format: str = ""
  sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
  num_parameters: Dict[str, int] = dataclasses.field(default_factory=dict)
  signatures: Dict[str, Dict[str, Tuple[List[str], List[str]]]] = (
      dataclasses.field(default_factory=dict))
  callables: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
  output_shapes: Dict[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=dict)
  max_relative_error: Dict[str, float] = dataclasses.field(
      default_factory=dict)
  predictions: List[Tuple[str, List[List[str]]]] = dataclasses.field(
      default_factory=list)
  seconds: float = 0.0

  def format(self, with_predictions: bool = True) -> str:
    """A short human-readable report (predictions optional)."""
    mib = lambda n: f"{n / 2**20:.1f} MiB"
    lines = [f"Exported to {self.export_path} in {self.seconds:.1f} s "
             f"(checkpoint: {self.checkpoint_format})"]
    for part in ("encoder", "preprocessor"):
      if part in self.sizes:
        callables = self.callables.get(part)
        lines.append(f"  {part}/: {mib(self.sizes[part])}" + (
            f", callables: {', '.join(callables)}" if callables else ""))
      for name, (ins, outs) in sorted(self.signatures.get(part, {}).items()):
        lines.append(f"    signature {name}: ({', '.join(ins)}) -> "
                     f"({', '.join(outs)})")
    if self.num_parameters:
      lines.append("  parameters: " + ", ".join(
          f"{k} {v:,}" for k, v in self.num_parameters.items()))
    if self.output_shapes:
      lines.append("  encoder outputs on the probe batch: " + ", ".join(
          f"{k} {list(v)}" for k, v in self.output_shapes.items()))
    if self.max_relative_error:
      worst = max(self.max_relative_error.values())
      lines.append(f"  reloaded vs in-memory: max relative error {worst:.2e} "
                   f"(tolerance {VERIFY_TOLERANCE:.0e}) over "
                   f"{', '.join(self.max_relative_error)}")
    for sentence, masks in (self.predictions if with_predictions else []):
      shown = "; ".join(" ".join(tokens) for tokens in masks)
      lines.append(f"  {sentence!r} -> [MASK] top-{len(masks[0])}: {shown}")
    return "\n".join(lines)


class VerificationError(RuntimeError):
  """The reloaded SavedModels do not reproduce the in-memory model."""


def _dir_size(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)


def _relative_error(value, reference) -> float:
  value = np.asarray(value, np.float64)
  reference = np.asarray(reference, np.float64)
  norm = np.linalg.norm(reference)
  diff = np.linalg.norm(value - reference)
  return float(diff / norm) if norm > 0 else float(diff)


def _signature_summary(loaded) -> Dict[str, Tuple[List[str], List[str]]]:
  result = {}
  for name, fn in loaded.signatures.items():
    _, kwargs = fn.structured_input_signature
    result[name] = (sorted(kwargs), sorted(fn.structured_outputs))
  return result


def mask_probe_inputs(preprocessor, sentences: Sequence[str], seq_length: int,
                      mask_id: int) -> Dict[str, np.ndarray]:
  """Encoder + `.mlm` inputs for sentences where "[MASK]" marks masked words.

  The text between the "[MASK]"s is tokenized with `preprocessor.tokenize`
  (which would split a literal "[MASK]" like any bracketed word, as the
  original BERT does), the mask id is put in between, and the result is
  packed with `preprocessor.bert_pack_inputs`.

  Args:
    preprocessor: a preprocessor (in memory or `hub.load`-ed).
    sentences: str sentences with at least one "[MASK]" each.
    seq_length: int. Packed length.
    mask_id: int. Id of "[MASK]".

  Returns:
    The encoder inputs plus `masked_lm_positions` `[batch, max masks]`
    (rows with fewer masks repeat their last position).
  """
  parts = [s.split(MASK_TEXT) for s in sentences]
  flat = [p for ps in parts for p in ps]
  pieces = preprocessor.tokenize(tf.constant(flat)).merge_dims(-2, -1)
  pieces = pieces.to_list()  # [len(flat)] lists of ids
  rows, k = [], 0
  for ps in parts:
    row = []
    for i in range(len(ps)):
      if i:
        row.append(mask_id)
      row.extend(pieces[k])
      k += 1
    rows.append(row)
  packed = preprocessor.bert_pack_inputs(
      [tf.ragged.constant(rows, dtype=tf.int32)],
      seq_length=tf.constant(seq_length, tf.int32))
  inputs = {k: np.asarray(v) for k, v in packed.items()}
  positions = [np.flatnonzero(row == mask_id).tolist()
               for row in inputs["input_word_ids"]]
  width = max(1, max(len(p) for p in positions))
  inputs["masked_lm_positions"] = np.array(
      [(p or [0]) + [(p or [0])[-1]] * (width - len(p or [0]))
       for p in positions], np.int32)
  return inputs


def top_k_tokens(mlm_logits, masked_lm_positions, input_word_ids, mask_id,
                 vocab: Sequence[str], k: int = 5) -> List[List[List[str]]]:
  """Per row, per [MASK]: the `k` most likely tokens."""
  mlm_logits = np.asarray(mlm_logits)
  result = []
  for row, positions in enumerate(np.asarray(masked_lm_positions)):
    row_result, seen = [], set()
    for j, position in enumerate(positions):
      if input_word_ids[row][position] != mask_id or position in seen:
        continue
      seen.add(position)
      best = np.argsort(-mlm_logits[row, j], kind="stable")[:k]
      row_result.append([vocab[i] for i in best])
    result.append(row_result)
  return result


def verify_export(export_path: str, pretrainer: MobileBertPretrainer,
                  vocab: Sequence[str], seq_length: int,
                  sentences: Sequence[str] = PROBE_SENTENCES,
                  report: Optional[ExportReport] = None,
                  top_k: int = 5) -> ExportReport:
  """Reloads both SavedModels with tensorflow_hub and checks them.

  Runs `sentences` through the reloaded preprocessor, then through the
  reloaded encoder (`hub.KerasLayer`) and `.mlm`, and compares every output
  with the in-memory `pretrainer` (relative error <= `VERIFY_TOLERANCE`);
  checks `default == pooled_output`, the vocab asset and `do_lower_case`.

  Args:
    export_path: str. Directory with `encoder/` and `preprocessor/`.
    pretrainer: the in-memory model that was exported.
    vocab: the vocabulary's tokens.
    seq_length: int. Probe length for the masked-LM probes.
    sentences: probe sentences; those with "[MASK]" also probe `.mlm`.
    report: an `ExportReport` to fill in; a new one by default.
    top_k: int. Predictions to report per [MASK]. Defaults to 5.

  Returns:
    The report with sizes, signatures, shapes, errors and predictions.

  Raises:
    VerificationError: an output differs or the SavedModel lacks a part.
  """
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  report = report or ExportReport(export_path=export_path)
  encoder_dir = os.path.join(export_path, "encoder")
  preprocessor_dir = os.path.join(export_path, "preprocessor")
  encoder_layer = hub.KerasLayer(encoder_dir, trainable=True)
  encoder = encoder_layer.resolved_object
  preprocessor = hub.load(preprocessor_dir)
  errors = {}

  def compare(name, hub_value, reference):
    error = _relative_error(hub_value, reference)
    errors[name] = max(errors.get(name, 0.0), error)

  # Preprocessor -> encoder (root callable, at the preprocessor's length).
  inputs = {k: v.numpy() for k, v in
            preprocessor(tf.constant(list(sentences))).items()}
  hub_out = encoder_layer(inputs, training=False)
  model_out = pretrainer.encoder_network(inputs, training=False)
  for name in ("pooled_output", "sequence_output"):
    compare(name, hub_out[name], model_out[name])
  if len(hub_out["encoder_outputs"]) != len(model_out["encoder_outputs"]):
    raise VerificationError(
        f"The reloaded encoder has {len(hub_out['encoder_outputs'])} "
        f"encoder_outputs; the model has {len(model_out['encoder_outputs'])}.")
  for got, want in zip(hub_out["encoder_outputs"],
                       model_out["encoder_outputs"]):
    compare("encoder_outputs", got, want)
  if not np.array_equal(hub_out["default"], hub_out["pooled_output"]):
    raise VerificationError("`default` differs from `pooled_output`.")
  report.output_shapes = {
      k: tuple(hub_out[k].shape) for k in ("pooled_output", "sequence_output")}
  report.output_shapes["encoder_outputs"] = (
      len(hub_out["encoder_outputs"]),) + tuple(
          hub_out["encoder_outputs"][0].shape)

  # Masked-LM probes through .mlm, at a short length.
  special = {k: int(v) for k, v in
             preprocessor.tokenize.get_special_tokens_dict().items()}
  masked = [s for s in sentences if MASK_TEXT in s]
  if masked:
    mlm_inputs = mask_probe_inputs(preprocessor, masked, seq_length,
                                   special["mask_id"])
    hub_mlm = encoder.mlm(mlm_inputs, training=False)
    model_mlm = pretrainer(mlm_inputs, training=False)
    for name in ("mlm_logits", "pooled_output", "sequence_output"):
      compare("mlm/" + name, hub_mlm[name], model_mlm[name])
    tokens = top_k_tokens(hub_mlm["mlm_logits"],
                          mlm_inputs["masked_lm_positions"],
                          mlm_inputs["input_word_ids"], special["mask_id"],
                          vocab, top_k)
    report.predictions = list(zip(masked, tokens))

  bad = {k: v for k, v in errors.items() if not v <= VERIFY_TOLERANCE}
  if bad:
    raise VerificationError(
        "The reloaded SavedModel differs from the in-memory model: "
        + ", ".join(f"{k} relative error {v:.2e}" for k, v in bad.items())
        + f" (tolerance {VERIFY_TOLERANCE:.0e}).")
  with tf.io.gfile.GFile(encoder.vocab_file.asset_path.numpy(), "r") as f:
    if f.read().split("\n")[:len(vocab)] != list(vocab):
      raise VerificationError("The encoder's vocab_file asset differs from "
                              "the vocabulary.")
  if special["vocab_size"] != len(vocab):
    raise VerificationError(
        f"The preprocessor's vocab_size {special['vocab_size']} differs from "
        f"the vocabulary's {len(vocab)}.")

  report.max_relative_error = errors
  report.sizes = {"encoder": _dir_size(encoder_dir),
                  "preprocessor": _dir_size(preprocessor_dir)}
  report.signatures = {"encoder": _signature_summary(encoder),
                       "preprocessor": _signature_summary(preprocessor)}
  report.callables = {
      "encoder": ["__call__"] + [n for n in ("mlm", "vocab_file",
                                             "do_lower_case")
                                 if hasattr(encoder, n)],
      "preprocessor": ["__call__"] + [
          n for n in ("tokenize", "tokenize_with_offsets", "bert_pack_inputs",
                      "vocab_file") if hasattr(preprocessor, n)]}
  return report


# === Whole pipeline ===


@dataclasses.dataclass
class PreparedExport:
  """The validated inputs of an export (see `prepare_export`).

  Attributes:
    config: the model configuration.
    pretrainer: the model with the checkpoint restored.
    vocab: the vocabulary's tokens.
    vocab_file: str. Path of the vocabulary.
    do_lower_case: bool.
    checkpoint_format: "tf1" or "tf2".
    warnings: list of str. Suspicious but allowed inputs (e.g. an uncased
      vocabulary with `do_lower_case=False`).
  """
  config: MobileBertConfig
  pretrainer: MobileBertPretrainer
  vocab: List[str]
  vocab_file: str
  do_lower_case: bool
  checkpoint_format: str
  warnings: List[str] = dataclasses.field(default_factory=list)


def case_warning(vocab: Sequence[str], do_lower_case: bool) -> Optional[str]:
  """A warning when `do_lower_case` looks wrong for the vocabulary, else None.

  Lower-cased input can never produce a token with an upper-case letter, and
  cased input would mostly miss an all-lower-case vocabulary.
  """
  upper = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))
           and t != t.lower()]
  if do_lower_case and len(upper) > max(10, len(vocab) // 100):
    return (f"do_lower_case is true but {len(upper)} vocabulary tokens have "
            f"upper-case letters (e.g. {', '.join(upper[:3])}): a cased "
            "model? Those tokens are unreachable.")
  if not do_lower_case and not upper:
    return ("do_lower_case is false but the vocabulary has no upper-case "
            "tokens: an uncased model? Capitalized words will map to [UNK] "
            "or word pieces.")
  return None


def prepare_export(config: MobileBertConfig, checkpoint_path: str,
                   vocab_file: str, do_lower_case: bool, export_path: str,
                   seq_length: int = 128, overwrite: bool = False,
                   log: Callable[[str], None] = logging.info
                   ) -> PreparedExport:
  """Checks every input and restores the model; writes nothing.

  Args: as `export_all`.

  Returns:
    A `PreparedExport` for `write_export`.

  Raises:
    TypeError: `config` is not a `MobileBertConfig`.
    FileNotFoundError: a missing vocab file or checkpoint.
    FileExistsError: `export_path` exists and `overwrite` is False.
    ValueError: a vocabulary or checkpoint that does not fit the config, or
      a bad `seq_length`.
  """
  if not isinstance(config, MobileBertConfig):
    raise TypeError("`config` must be a MobileBertConfig. Received: "
                    f"{type(config).__name__}")
  _check_seq_length(seq_length, config)
  export_path = os.path.abspath(os.fspath(export_path))
  if os.path.exists(export_path) and not overwrite:
    raise FileExistsError(
        f"Export directory {export_path} already exists. Pass --overwrite "
        "(overwrite=True) to replace it.")
  vocab = check_vocab(vocab_file, config)
  prefix, fmt = checkpoint_format(checkpoint_path)  # Fail before building.
  log(f"Restoring {'and converting the TF1 ' if fmt == 'tf1' else 'the TF2 '}"
      f"checkpoint {prefix} ({config.num_hidden_layers} blocks, vocab "
      f"{len(vocab):,})")
  pretrainer = build_pretrainer(config)
  fmt = load_checkpoint(pretrainer, config, prefix)
  warning = case_warning(vocab, do_lower_case)
  return PreparedExport(config=config, pretrainer=pretrainer, vocab=vocab,
                        vocab_file=vocab_file,
                        do_lower_case=bool(do_lower_case),
                        checkpoint_format=fmt,
                        warnings=[warning] if warning else [])


def write_export(prepared: PreparedExport, export_path: str,
                 seq_length: int = 128, overwrite: bool = False,
                 verify: bool = True,
                 sentences: Sequence[str] = PROBE_SENTENCES,
                 log: Callable[[str], None] = logging.info) -> ExportReport:
  """Writes, verifies and renames into place the two SavedModels.

  Args: as `export_all`; `prepared` from `prepare_export`.

  Returns:
    An `ExportReport`.

  Raises:
    FileExistsError: `export_path` exists and `overwrite` is False.
    VerificationError: the reloaded SavedModels differ from the model.
  """
  start = time.time()
  pretrainer = prepared.pretrainer
  export_path = _prepare_target(export_path, overwrite)
  tmp_export = tempfile.mkdtemp(
      prefix=".tmp_" + os.path.basename(export_path) + "_",
      dir=os.path.dirname(export_path))
  try:
    log(f"Writing the encoder SavedModel (with .mlm) into {tmp_export}")
    export_encoder(pretrainer, prepared.vocab_file, prepared.do_lower_case,
                   os.path.join(tmp_export, "encoder"))
    log("Writing the preprocessor SavedModel")
    preprocessing.export_preprocessor(
        prepared.vocab_file, prepared.do_lower_case,
        os.path.join(tmp_export, "preprocessor"), seq_length=seq_length)
    report = ExportReport(export_path=export_path,
                          checkpoint_format=prepared.checkpoint_format)
    count = lambda variables: int(sum(np.prod(v.shape) for v in variables))
    encoder_params = count(pretrainer.encoder_network.trainable_variables)
    report.num_parameters = {
        "encoder": encoder_params,
        "mlm_head": count(_model_variables(pretrainer)) - encoder_params}
    if verify:
      log("Reloading both with tensorflow_hub and comparing with the model")
      verify_export(tmp_export, pretrainer, prepared.vocab, seq_length,
                    sentences=sentences, report=report)
    else:
      report.sizes = {part: _dir_size(os.path.join(tmp_export, part))
                      for part in ("encoder", "preprocessor")}
    _move_into_place(tmp_export, export_path)
  except BaseException:
    shutil.rmtree(tmp_export, ignore_errors=True)
    raise
  report.seconds = time.time() - start
  return report


def export_all(config: MobileBertConfig, checkpoint_path: str,
               vocab_file: str, do_lower_case: bool, export_path: str,
               seq_length: int = 128, overwrite: bool = False,
               verify: bool = True,
               sentences: Sequence[str] = PROBE_SENTENCES,
               log: Callable[[str], None] = logging.info) -> ExportReport:
  """Exports `export_path/encoder` and `export_path/preprocessor`, verified.

  Steps (`prepare_export`, then `write_export`): check the vocabulary against
  the config; build the pretrainer and restore the checkpoint strictly
  (`load_checkpoint`), all before anything is written; write both
  SavedModels into a temporary directory beside `export_path`; reload and
  verify them (`verify_export`); rename into place.

  Args:
    config: the model configuration.
    checkpoint_path: str. TF2 or original TF1 checkpoint (prefix or dir).
    vocab_file: str. WordPiece vocabulary of `config.vocab_size` tokens with
      `[PAD] [UNK] [CLS] [SEP] [MASK]`.
    do_lower_case: bool. True for uncased vocabularies.
    export_path: str. Target directory; must not exist unless `overwrite`.
      Missing parent directories are created.
    seq_length: int. The preprocessor's default length, in
      [3, max_position_embeddings]. Defaults to 128.
    overwrite: bool. Replace an existing `export_path`. Defaults to False.
    verify: bool. Reload and compare before renaming. Defaults to True.
    sentences: probe sentences for `verify_export`.
    log: callable taking one progress line. Defaults to absl `logging.info`.

  Returns:
    An `ExportReport`.

  Raises:
    TypeError: `config` is not a `MobileBertConfig`.
    FileNotFoundError: a missing vocab file or checkpoint.
    FileExistsError: `export_path` exists and `overwrite` is False.
    ValueError: a vocabulary or checkpoint that does not fit the config, or
      a bad `seq_length`.
    VerificationError: the reloaded SavedModels differ from the model.
  """
  start = time.time()
  prepared = prepare_export(config, checkpoint_path, vocab_file,
                            do_lower_case, export_path, seq_length=seq_length,
                            overwrite=overwrite, log=log)
  report = write_export(prepared, export_path, seq_length=seq_length,
                        overwrite=overwrite, verify=verify,
                        sentences=sentences, log=log)
  report.seconds = time.time() - start
  return report
