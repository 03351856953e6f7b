"""Converts an exported encoder to a fixed-shape TFLite flatbuffer.

The encoder SavedModel is not converted as saved: its Keras model is rebuilt
from the SavedModel's config asset and restored by object graph
(`export.rebuild`), with the input checks left out (`validate_inputs=False`:
TFLite has no Assert op), and traced in the standard attention layout (the
default of `build_encoder`), which the converter turns into FULLY_CONNECTED
ops that XNNPACK runs as one delegated graph and that quantize. A SavedModel
that cannot be rebuilt (no config asset, another object graph) is refused
with the reason and the fix (re-export); there is no fallback.

Quantizations (`QUANTIZATIONS`): "none" (float32), "dynamic" (int8 weights,
float32 activations quantized on the fly), "float16" (float16 weights) and
"int8" (full integer, activation ranges calibrated on representative
batches of real text; see `full_length_texts`).

Example:

>>> source = load_encoder("/tmp/hub/encoder")
>>> model = convert(source, "dynamic", seq_length=128, batch_size=1)
>>> open("model.tflite", "wb").write(model)
"""

import dataclasses
import os
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from export import rebuild
from mobilebert_tf import cli
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.encoder import build_encoder

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
DESCRIPTIONS = {
    "none": "float32",
    "dynamic": "dynamic-range int8 weights",
    "float16": "float16 weights",
    "int8": "full int8",
}
# The outputs of the TFLite model's `serving_default` signature.
TFLITE_OUTPUTS = ("sequence_output", "pooled_output")
# Quantizations a task model (classifier, QA) converts with: float16 gives no
# speed on CPU.
TASK_QUANTIZATIONS = ("none", "dynamic", "int8")


class ConversionError(ValueError):
  """The SavedModel or the options cannot be converted (bad input)."""


@dataclasses.dataclass
class EncoderSource:
  """An encoder SavedModel, loaded and rebuilt.

  Attributes:
    saved_model_dir: str.
    loaded: the `tf.saved_model.load` result (keeps its variables alive).
    serving: its `serving_default` signature: the reference the TFLite model
      is verified against.
    rebuilt: the `rebuild.RebuiltExport` that is converted.
  """
  saved_model_dir: str
  loaded: object
  serving: Callable
  rebuilt: rebuild.RebuiltExport

  @property
  def max_seq_length(self) -> int:
    return self.rebuilt.config.max_position_embeddings

  @property
  def vocab_size(self) -> int:
    return self.rebuilt.config.vocab_size


def load_encoder(saved_model_dir: str) -> EncoderSource:
  """Loads an encoder SavedModel, checks its signature and rebuilds its model.

  Args:
    saved_model_dir: str. An encoder SavedModel of `export.to_savedmodel`
      (`DIR/encoder`).

  Returns:
    An `EncoderSource`.

  Raises:
    FileNotFoundError: no SavedModel at `saved_model_dir`.
    ConversionError: the SavedModel is not a text encoder, or cannot be
      rebuilt (`rebuild.RebuildError`'s reason and fix).
  """
  saved_model_dir = os.path.abspath(os.fspath(saved_model_dir))
  if not tf.saved_model.contains_saved_model(saved_model_dir):
    raise FileNotFoundError(
        f"No SavedModel in {saved_model_dir} (no saved_model.pb). Pass the "
        "encoder directory of an export, e.g. DIR/encoder.")
  loaded = tf.saved_model.load(saved_model_dir)
  serving = loaded.signatures.get("serving_default")
  expected = (f"expected a text encoder whose serving_default takes int32 "
              f"{', '.join(ENCODER_INPUTS)} and returns "
              f"{', '.join(TFLITE_OUTPUTS)}")
  if serving is None:
    raise ConversionError(f"{saved_model_dir} has no serving_default "
                          f"signature: {expected}.")
  _, inputs = serving.structured_input_signature
  outputs = serving.structured_outputs
  if (set(inputs) != set(ENCODER_INPUTS) or
      any(inputs[k].dtype != tf.int32 for k in inputs) or
      not set(TFLITE_OUTPUTS) <= set(outputs)):
    described = ", ".join(f"{k} {inputs[k].dtype.name}" for k in sorted(inputs))
    raise ConversionError(
        f"{saved_model_dir} is not a text encoder SavedModel: its "
        f"serving_default takes ({described}) and returns "
        f"({', '.join(sorted(outputs))}); {expected}.")
  try:
    rebuilt = rebuild.rebuild_export_model(saved_model_dir,
                                           validate_inputs=False)
  except rebuild.RebuildError as e:
    raise ConversionError(f"Cannot convert: {e}") from None
  return EncoderSource(saved_model_dir=saved_model_dir, loaded=loaded,
                       serving=serving, rebuilt=rebuilt)


# === Representative data ===


def read_text_lines(path: str) -> List[str]:
  """Non-empty lines of a UTF-8 text file.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: not UTF-8, or no non-empty line.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Representative text file not found: {path}")
  try:
    with open(path, encoding="utf-8") as f:
      lines = [line.strip() for line in f]
  except UnicodeDecodeError as e:
    raise ValueError(f"Representative text file {path} is not UTF-8: "
                     f"{e.reason} at byte {e.start}") from None
  lines = [line for line in lines if line]
  if not lines:
    raise ValueError(f"Representative text file {path} has no text.")
  return lines


def full_length_texts(lines: Sequence[str], count: int, batch_size: int,
                      seq_length: int) -> List[str]:
  """`count` (rounded up to whole batches) texts of consecutive lines.

  Each text joins lines until it has about twice `seq_length` words, so that
  packing truncates it and the calibration sequences have no padding: the
  attention mask adds a large negative number to padded keys, and calibrating
  on it would stretch the int8 range of the attention scores over that
  number.
  """
  count = -(-count // batch_size) * batch_size
  texts, current, words = [], [], 0
  position = 0
  while len(texts) < count:
    line = lines[position % len(lines)]
    position += 1
    current.append(line)
    words += len(line.split())
    if words >= 2 * seq_length or position % len(lines) == 0:
      texts.append(" ".join(current))
      current, words = [], 0
  return texts


def text_inputs(preprocessor, texts: Sequence[str],
                seq_length: int) -> Dict[str, np.ndarray]:
  """Encoder inputs for `texts` from a (loaded) TF-Hub preprocessor."""
  tokens = preprocessor.tokenize(tf.constant(list(texts)))
  packed = preprocessor.bert_pack_inputs(
      [tokens], seq_length=tf.constant(seq_length, tf.int32))
  return {k: np.asarray(packed[k], np.int32) for k in ENCODER_INPUTS}


def split_rows(inputs: Dict[str, np.ndarray],
               batch_size: int) -> List[Dict[str, np.ndarray]]:
  """Cuts `[n, seq]` inputs into full batches of `batch_size` rows."""
  n = len(inputs["input_word_ids"]) // batch_size * batch_size
  return [{k: v[i:i + batch_size] for k, v in inputs.items()}
          for i in range(0, n, batch_size)]


# === Conversion ===


def conversion_failure(quantization: str, error: Exception) -> RuntimeError:
  """The one-line error of a failed conversion (the converter raises bare
  RuntimeErrors whose text is an MLIR dump)."""
  return RuntimeError(
      f"the TFLite converter failed ({quantization}): "
      f"{cli.first_line(error)}; nothing was written (see docs/tflite.md for "
      "the models full int8 cannot convert)")


def check_task_quantization(task: str, quantization: str) -> None:
  """Raises ConversionError unless `quantization` is a TASK_QUANTIZATIONS."""
  if quantization not in TASK_QUANTIZATIONS:
    raise ConversionError(f"a {task} converts with one of "
                          f"{TASK_QUANTIZATIONS}. Received: {quantization!r}")


def rebuild_without_checks(model, config, make_head):
  """A copy of a task model over a `MobileBERTEncoder`, without input checks.

  TFLite has no Assert op: the encoder is built again from `config` with
  `validate_inputs=False`, `make_head(encoder)` builds the task model on it
  (classifier dropout 0), and every weight is restored by object graph from
  `model` (all of them must match).
  """
  rebuilt = make_head(build_encoder(config, validate_inputs=False))
  with tempfile.TemporaryDirectory() as directory:
    path = tf.train.Checkpoint(model=model).write(
        os.path.join(directory, "model"))
    # Every weight of the copy is restored; what only the trained model has
    # (a compiled model's optimizer) is left out.
    tf.train.Checkpoint(model=rebuilt).read(
        path).assert_existing_objects_matched().expect_partial()
  return rebuilt


def convert(source: EncoderSource, quantization: str = "none",
            seq_length: int = 128, batch_size: int = 1,
            representative_batches: Optional[Iterable[dict]] = None,
            output_names: Sequence[str] = TFLITE_OUTPUTS) -> bytes:
  """Converts the rebuilt encoder to a fixed-shape TFLite flatbuffer.

  Args:
    source: from `load_encoder`.
    quantization: str, one of `QUANTIZATIONS`. Defaults to "none".
    seq_length: int. Defaults to 128.
    batch_size: int. Defaults to 1.
    representative_batches: for "int8": dicts of int32
      `[batch_size, seq_length]` encoder inputs of real text.
    output_names: the outputs kept, of `TFLITE_OUTPUTS` (`pooled_output`
      alone: a text embedder). Defaults to both.

  Returns:
    The `.tflite` model bytes, with signature `serving_default`:
    `ENCODER_INPUTS` int32 `[batch_size, seq_length]` -> `output_names`.

  Raises:
    ConversionError: a bad option.
  """
  unknown = sorted(set(output_names) - set(TFLITE_OUTPUTS))
  if unknown or not output_names:
    raise ConversionError(f"outputs must be some of {TFLITE_OUTPUTS}. "
                          f"Received: {list(output_names)}")
  return convert_model(source.rebuilt.export_model, tuple(output_names),
                       quantization, seq_length, batch_size,
                       representative_batches)


def convert_model(model, output_names: Sequence[str],
                  quantization: str = "none", seq_length: int = 128,
                  batch_size: int = 1,
                  representative_batches: Optional[Iterable[dict]] = None
                  ) -> bytes:
  """Converts a Keras model on the encoder inputs to a TFLite flatbuffer.

  Args:
    model: called on a dict of `ENCODER_INPUTS`, returning a dict that has
      `output_names`; traced without input checks (TFLite has no Assert).
    output_names: the outputs of the TFLite `serving_default` signature.
    quantization, seq_length, batch_size, representative_batches: as
      `convert`.

  Returns:
    The `.tflite` model bytes, with signature `serving_default`:
    `ENCODER_INPUTS` int32 `[batch_size, seq_length]` -> `output_names`.

  Raises:
    ConversionError: a bad option.
  """
  if quantization not in QUANTIZATIONS:
    raise ConversionError(f"`quantization` must be one of {QUANTIZATIONS}. "
                          f"Received: {quantization!r}")
  if quantization == "int8" and representative_batches is None:
    raise ConversionError("int8 quantization needs representative batches "
                          "(--representative_text).")
  specs = [tf.TensorSpec([batch_size, seq_length], tf.int32, name=name)
           for name in ENCODER_INPUTS]

  @tf.function(input_signature=specs)
  def serve(input_word_ids, input_mask, input_type_ids):
    outputs = model(dict(input_word_ids=input_word_ids,
                         input_mask=input_mask,
                         input_type_ids=input_type_ids), training=False)
    return {k: outputs[k] for k in output_names}

  concrete = serve.get_concrete_function()
  # The converter saves `trackable` as a SavedModel first; the bare
  # variables save in a fraction of the time of the Keras model.
  trackable = tf.Module()
  trackable.encoder_variables = list(model.weights)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [concrete], trackable)
  if quantization != "none":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if quantization == "int8":
    batches = list(representative_batches)

    def representative_dataset():
      # By name: a list would be fed by position to the model's input
      # tensors, whose order the converter chooses (input_word_ids,
      # input_type_ids, input_mask), so the all-zero type ids would
      # calibrate the mask and every key would end up masked.
      for batch in batches:
        yield {name: batch[name] for name in ENCODER_INPUTS}

    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()
