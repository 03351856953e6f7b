r"""Converts an exported MobileBERT encoder SavedModel to TFLite, and verifies it.

Usage:

  python -m export.to_tflite \
    --saved_model_dir=DIR/encoder \
    --output=model.tflite \
    --quantization={none,dynamic,float16,int8} \
    [--seq_length=128] [--batch_size=1] \
    [--representative_text=FILE] [--preprocessor_dir=DIR/preprocessor] \
    [--min_cosine=X] [--max_relative_error=X] [--overwrite]

`DIR/encoder` is the encoder SavedModel that `python -m export.to_savedmodel`
writes (the TF-Hub text encoder API). The TFLite model has one fixed-shape
signature, `serving_default`:

  inputs:  input_word_ids, input_mask, input_type_ids  int32 [batch_size, seq_length]
  outputs: sequence_output  float32 [batch_size, seq_length, hidden_size]
           pooled_output    float32 [batch_size, hidden_size]

Quantizations (`--quantization`):

* `none`: float32.
* `dynamic`: dynamic-range quantization: int8 weights (per channel), float32
  activations quantized on the fly inside the matmuls. ~4x smaller, ~2x
  faster on CPU.
* `float16`: float16 weights, float32 compute. ~2x smaller, same speed.
* `int8`: full integer quantization: int8 weights and activations, with
  activation ranges calibrated on a representative dataset of real text
  (`--representative_text`, one text per line, tokenized by the exported
  preprocessor, `DIR/preprocessor` by default). MobileBERT's NoNorm keeps
  activations unnormalized (up to ~1e8 in Google's checkpoints), so full int8
  loses much more than `dynamic`; use it only where integer-only hardware
  demands it, and check the reported agreement.

For our exports the encoder is rebuilt from the configuration stored in the
SavedModel (its Keras metadata) and the SavedModel's weights, and traced in
the "standard" attention layout (`mobilebert_tf.layers.standard_attention`),
which the converter turns into FULLY_CONNECTED ops that XNNPACK runs as one
delegated graph and that quantize; the input checks (`validate_inputs`) are
left out (TFLite has no Assert op). Other encoder SavedModels with the same
signature (e.g. tf-models-official's exports) are converted as they are.

After conversion the model runs in the LiteRT interpreter
(`ai_edge_litert.interpreter`) on a probe batch (real text when a
preprocessor is available, else fixed random ids with padding) and its
`sequence_output` is compared with the SavedModel's: cosine similarity and
relative error `||tflite - savedmodel|| / ||savedmodel||` over the real
tokens (input_mask 1) of the probe; pooled_output's relative error is
reported too. Beyond the thresholds below (override with `--min_cosine` and
`--max_relative_error`) nothing is written and the exit code is 1.

| quantization | min cosine | max relative error | why                         |
|--------------|------------|--------------------|-----------------------------|
| none         | 0.99999    | 1e-4               | float32 differs only by summation order (measured ~3e-7 on the 24-layer model); 1e-4 leaves room for trained models' large activations |
| float16      | 0.9999     | 1e-2               | weights rounded to 11 bits (2.4e-4 per weight; measured 2.5e-4 at the output) |
| dynamic      | 0.999      | 5e-2               | the issue's bar for int8 (cosine 0.999 ~ relative error 4.5e-2); measured cosine 0.99998, relative error 6e-3 on the 24-layer model |
| int8         | 0.95       | 0.4                | activations quantized per tensor: measured cosine 0.967 (relative error 0.36) on the tiny random test model; a broken conversion (wrong mask or weights) falls far lower. The trained demo model gets 0.81 and fails: MobileBERT's unnormalized activations need quantization-aware training for full int8 |

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written);
1 the converted model disagrees with the SavedModel (nothing written).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import json
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from absl import flags

from mobilebert_tf import cli

_PROGRAM = "python -m export.to_tflite"

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
TFLITE_OUTPUTS = ("sequence_output", "pooled_output")

# (min cosine, max relative error) of sequence_output against the SavedModel;
# see the module docstring for the reasons.
THRESHOLDS = {
    "none": (0.99999, 1e-4),
    "float16": (0.9999, 1e-2),
    "dynamic": (0.999, 5e-2),
    "int8": (0.95, 0.4),
}
DESCRIPTIONS = {
    "none": "float32",
    "dynamic": "dynamic-range int8 weights",
    "float16": "float16 weights",
    "int8": "full int8",
}

# Texts of the probe batch when a preprocessor is available.
PROBE_TEXTS = (
    "Return the sum of the list.",
    "Raise a ValueError if the file does not exist.",
    "The default value is None, which means that the whole input is used.",
    "Create a new socket object and return it.",
    "Hello, World! Ça marche très bien.",
    "Convert the argument to a floating point number, or raise an error.",
    "Read at most n bytes from the stream; an empty result means the end.",
    "x",
)
NUM_PROBE_EXAMPLES = 8


class ConversionError(ValueError):
  """The SavedModel or the options cannot be converted (bad input)."""


class VerificationError(RuntimeError):
  """The converted model disagrees with the SavedModel beyond thresholds."""


@dataclasses.dataclass
class Agreement:
  """`sequence_output` of the TFLite model against the SavedModel's."""
  cosine: float
  relative_error: float
  pooled_relative_error: float
  num_examples: int
  probe: str  # "text" or "random ids"


@dataclasses.dataclass
class TfliteReport:
  """What `export_tflite` did."""
  output: str
  quantization: str
  batch_size: int
  seq_length: int
  size_bytes: int
  num_ops: int
  seconds: float
  agreement: Agreement
  min_cosine: float
  max_relative_error: float
  rebuilt: bool  # True: traced from our encoder class; False: as saved.

  def format(self) -> str:
    a = self.agreement
    how = ("rebuilt from the SavedModel's config, standard attention layout"
           if self.rebuilt else "the SavedModel's own graph")
    return "\n".join([
        f"Wrote {self.output} ({self.size_bytes / 2**20:.1f} MiB, "
        f"{DESCRIPTIONS[self.quantization]}, {self.num_ops} ops, {how}) in "
        f"{self.seconds:.0f} s.",
        f"  signature serving_default: {', '.join(ENCODER_INPUTS)} int32 "
        f"[{self.batch_size}, {self.seq_length}] -> "
        f"{', '.join(TFLITE_OUTPUTS)}",
        f"  agreement with the SavedModel on {a.num_examples} probe sequences "
        f"({a.probe}): sequence_output cosine {a.cosine:.6f} (min "
        f"{self.min_cosine}), relative error {a.relative_error:.2e} (max "
        f"{self.max_relative_error:g}); pooled_output relative error "
        f"{a.pooled_relative_error:.2e}"])


# === Loading ===


@dataclasses.dataclass
class EncoderSource:
  """An encoder SavedModel, loaded.

  Attributes:
    saved_model_dir: str.
    loaded: the `tf.saved_model.load` result (keeps variables alive).
    serving: its `serving_default` signature function.
    config: `MobileBERTEncoder` constructor arguments from the Keras
      metadata, or None for other encoders.
    encoder: a `MobileBERTEncoder` with the SavedModel's weights and
      `validate_inputs=False`, or None for other encoders (and if the rebuilt
      encoder did not reproduce the SavedModel on a probe).
  """
  saved_model_dir: str
  loaded: object
  serving: Callable
  config: Optional[dict]
  encoder: object

  @property
  def max_seq_length(self) -> Optional[int]:
    return self.config["max_sequence_length"] if self.config else None

  @property
  def vocab_size(self) -> Optional[int]:
    return self.config["word_vocab_size"] if self.config else None


def _encoder_metadata(saved_model_dir: str):
  """(node path, MobileBERTEncoder config) from keras_metadata.pb, or None."""
  path = os.path.join(saved_model_dir, "keras_metadata.pb")
  if not os.path.exists(path):
    return None
  from tf_keras.protobuf import saved_metadata_pb2  # pylint: disable=g-import-not-at-top
  metadata = saved_metadata_pb2.SavedMetadata()
  with open(path, "rb") as f:
    metadata.ParseFromString(f.read())
  for node in metadata.nodes:
    try:
      info = json.loads(node.metadata)
    except ValueError:
      continue
    if info.get("class_name") == "MobileBertTF>MobileBERTEncoder":
      return node.node_path, info["config"]
  return None


def _resolve(loaded, node_path: str):
  obj = loaded
  for part in node_path.split(".")[1:]:  # "root.layer_with_weights-0"
    obj = getattr(obj, part)
  return obj


def load_encoder(saved_model_dir: str) -> EncoderSource:
  """Loads an encoder SavedModel and checks its `serving_default` signature.

  Args:
    saved_model_dir: str. An encoder SavedModel (the TF-Hub text encoder
      API); `export.to_savedmodel` writes one as `DIR/encoder`.

  Returns:
    An `EncoderSource`.

  Raises:
    FileNotFoundError: no SavedModel at `saved_model_dir`.
    ConversionError: the SavedModel is not a text encoder.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import mobilebert_tf  # pylint: disable=g-import-not-at-top
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
  found = _encoder_metadata(saved_model_dir)
  config = encoder = None
  if found is not None:
    node_path, config = found
    source_variables = _resolve(loaded, node_path).variables
    kwargs = dict(config, validate_inputs=False, return_attention_scores=False)
    encoder = mobilebert_tf.MobileBERTEncoder(**kwargs)
    targets = encoder.weights
    if len(targets) != len(source_variables) or any(
        tuple(a.shape) != tuple(b.shape)
        for a, b in zip(targets, source_variables)):
      raise ConversionError(
          f"{saved_model_dir}: the stored MobileBERTEncoder config does not "
          f"fit its {len(source_variables)} variables (the model has "
          f"{len(targets)}); the SavedModel was modified after export.")
    for target, source in zip(targets, source_variables):
      target.assign(source)
    # The variables are matched by order and shape; check the function too.
    # If the rebuilt encoder does not reproduce the SavedModel, convert the
    # SavedModel's own graph instead.
    probe = random_probe_inputs(2, min(16, config["max_sequence_length"]),
                                config["word_vocab_size"])
    expected = serving(**{k: tf.constant(v) for k, v in probe.items()})
    rebuilt = encoder(probe, training=False)
    reference = expected["sequence_output"].numpy()
    difference = np.linalg.norm(rebuilt["sequence_output"].numpy() - reference)
    if not difference <= 1e-4 * np.linalg.norm(reference):
      encoder = None
  return EncoderSource(saved_model_dir=saved_model_dir, loaded=loaded,
                       serving=serving, config=config, encoder=encoder)


# === Inputs ===


def random_probe_inputs(batch: int, seq_length: int, vocab_size: int,
                        seed: int = 0) -> Dict[str, "np.ndarray"]:
  """Fixed random ids; row i is padded after a length that varies with i."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  low = min(5, vocab_size - 1)
  ids = rng.integers(low, vocab_size, size=(batch, seq_length)).astype(np.int32)
  mask = np.zeros((batch, seq_length), np.int32)
  types = np.zeros((batch, seq_length), np.int32)
  for row in range(batch):
    length = max(2, seq_length - (row * seq_length) // max(batch, 2))
    mask[row, :length] = 1
    types[row, length // 2:length] = 1
  return dict(input_word_ids=ids * mask, input_mask=mask,
              input_type_ids=types)


def text_inputs(preprocessor, texts: Sequence[str], seq_length: int):
  """Encoder inputs for `texts` from a (loaded) TF-Hub preprocessor."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tokens = preprocessor.tokenize(tf.constant(list(texts)))
  packed = preprocessor.bert_pack_inputs(
      [tokens], seq_length=tf.constant(seq_length, tf.int32))
  return {k: np.asarray(packed[k], np.int32) for k in ENCODER_INPUTS}


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


def _split_rows(inputs, batch_size: int) -> List[Dict[str, "np.ndarray"]]:
  """Cuts `[n, seq]` inputs into full batches of `batch_size` rows."""
  n = len(inputs["input_word_ids"]) // batch_size * batch_size
  return [{k: v[i:i + batch_size] for k, v in inputs.items()}
          for i in range(0, n, batch_size)]


# === Conversion ===


def convert(source: EncoderSource, quantization: str = "none",
            seq_length: int = 128, batch_size: int = 1,
            representative_batches: Optional[Iterable[dict]] = None) -> bytes:
  """Converts an encoder to a fixed-shape TFLite flatbuffer.

  Args:
    source: from `load_encoder`.
    quantization: str, one of `QUANTIZATIONS`. Defaults to "none".
    seq_length: int. Defaults to 128.
    batch_size: int. Defaults to 1.
    representative_batches: for "int8": dicts of int32
      `[batch_size, seq_length]` encoder inputs of real text.

  Returns:
    The `.tflite` model bytes, with signature `serving_default`.

  Raises:
    ConversionError: a bad option.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import layers  # pylint: disable=g-import-not-at-top
  if quantization not in QUANTIZATIONS:
    raise ConversionError(f"`quantization` must be one of {QUANTIZATIONS}. "
                          f"Received: {quantization!r}")
  if quantization == "int8" and representative_batches is None:
    raise ConversionError("int8 quantization needs representative batches "
                          "(--representative_text).")
  specs = [tf.TensorSpec([batch_size, seq_length], tf.int32, name=name)
           for name in ENCODER_INPUTS]

  if source.encoder is not None:
    encoder = source.encoder

    @tf.function(input_signature=specs)
    def serve(input_word_ids, input_mask, input_type_ids):
      outputs = encoder(dict(input_word_ids=input_word_ids,
                             input_mask=input_mask,
                             input_type_ids=input_type_ids), training=False)
      return {k: outputs[k] for k in TFLITE_OUTPUTS}

    with layers.standard_attention():
      concrete = serve.get_concrete_function()
    # The converter saves `trackable` as a SavedModel first; the bare
    # variables save in a fraction of the time of the Keras model.
    trackable = tf.Module()
    trackable.encoder_variables = list(encoder.weights)
  else:
    signature = source.serving

    @tf.function(input_signature=specs)
    def serve(input_word_ids, input_mask, input_type_ids):
      outputs = signature(input_word_ids=input_word_ids,
                          input_mask=input_mask,
                          input_type_ids=input_type_ids)
      return {k: outputs[k] for k in TFLITE_OUTPUTS}

    concrete = serve.get_concrete_function()
    trackable = source.loaded

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [concrete], trackable)
  if quantization != "none":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if quantization == "int8":
    batches = list(representative_batches)

    def representative_dataset():
      for batch in batches:
        yield [batch[name] for name in ENCODER_INPUTS]

    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()


# === Verification ===


def run_tflite(model: bytes, batches: Sequence[dict],
               num_threads: Optional[int] = None) -> Dict[str, "np.ndarray"]:
  """Runs `serving_default` of a TFLite model on batches; concatenates."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_content=model,
                            num_threads=num_threads or os.cpu_count())
  runner = interpreter.get_signature_runner("serving_default")
  outputs = [runner(**batch) for batch in batches]
  return {k: np.concatenate([o[k] for o in outputs]) for k in TFLITE_OUTPUTS}


def agreement(values, references, input_mask, probe: str) -> Agreement:
  """Cosine similarity and relative errors of TFLite outputs vs references.

  `sequence_output` is compared at the real tokens (`input_mask` 1) only:
  outputs at padding are meaningless.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  real = np.asarray(input_mask) > 0
  a = np.asarray(values["sequence_output"], np.float64)[real].ravel()
  b = np.asarray(references["sequence_output"], np.float64)[real].ravel()
  norms = np.linalg.norm(a) * np.linalg.norm(b)
  cosine = float(a @ b / norms) if norms > 0 else float(np.array_equal(a, b))

  def relative(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    norm = np.linalg.norm(y)
    return float(np.linalg.norm(x - y) / norm) if norm > 0 else float(
        np.linalg.norm(x - y))

  return Agreement(
      cosine=cosine, relative_error=relative(a, b),
      pooled_relative_error=relative(values["pooled_output"],
                                     references["pooled_output"]),
      num_examples=len(values["sequence_output"]), probe=probe)


def savedmodel_outputs(source: EncoderSource, batches: Sequence[dict]):
  """The SavedModel's `serving_default` outputs on batches, concatenated."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  outputs = [source.serving(**{k: tf.constant(v) for k, v in batch.items()})
             for batch in batches]
  return {k: np.concatenate([o[k].numpy() for o in outputs])
          for k in TFLITE_OUTPUTS}


# === Everything ===


def _find_preprocessor(saved_model_dir: str,
                       preprocessor_dir: Optional[str]) -> Optional[str]:
  if preprocessor_dir:
    return preprocessor_dir
  sibling = os.path.join(os.path.dirname(os.path.abspath(saved_model_dir)),
                         "preprocessor")
  return sibling if os.path.isdir(sibling) else None


def export_tflite(saved_model_dir: str, output: str,
                  quantization: str = "none", seq_length: int = 128,
                  batch_size: int = 1,
                  representative_text: Optional[str] = None,
                  preprocessor_dir: Optional[str] = None,
                  num_calibration_examples: int = 64,
                  min_cosine: Optional[float] = None,
                  max_relative_error: Optional[float] = None,
                  overwrite: bool = False, verify: bool = True,
                  source: Optional[EncoderSource] = None,
                  preprocessor=None,
                  log: Callable[[str], None] = lambda line: None
                  ) -> TfliteReport:
  """Converts, verifies and writes a TFLite model of an encoder SavedModel.

  Args:
    saved_model_dir: str. The encoder SavedModel (`DIR/encoder`).
    output: str. The `.tflite` file to write.
    quantization: str, one of `QUANTIZATIONS`. Defaults to "none".
    seq_length: int. Fixed sequence length. Defaults to 128.
    batch_size: int. Fixed batch size. Defaults to 1.
    representative_text: str. Text file, one text per line: calibration data
      for "int8" (required there) and probe texts.
    preprocessor_dir: str. The exported preprocessor SavedModel; defaults to
      the `preprocessor` directory beside `saved_model_dir`, if any.
    num_calibration_examples: int. Lines of `representative_text` used for
      int8 calibration. Defaults to 64.
    min_cosine, max_relative_error: float. Override `THRESHOLDS`.
    overwrite: bool. Replace an existing `output`. Defaults to False.
    verify: bool. Compare with the SavedModel before writing. Defaults to
      True.
    source: an already loaded `EncoderSource` of `saved_model_dir`.
    preprocessor: an already loaded preprocessor (instead of
      `preprocessor_dir`).
    log: callable taking one progress line.

  Returns:
    A `TfliteReport`.

  Raises:
    FileNotFoundError: a missing SavedModel, text file or preprocessor.
    FileExistsError: `output` exists and `overwrite` is False.
    ConversionError (a ValueError): a bad option or a non-encoder SavedModel.
    ValueError: an unreadable representative text file.
    VerificationError: the model disagrees with the SavedModel; nothing is
      written.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  start = time.time()
  if quantization not in QUANTIZATIONS:
    raise ConversionError(f"`quantization` must be one of {QUANTIZATIONS}. "
                          f"Received: {quantization!r}")
  for name, value in (("seq_length", seq_length), ("batch_size", batch_size),
                      ("num_calibration_examples", num_calibration_examples)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConversionError(f"`{name}` must be a positive integer. "
                            f"Received: {value!r}")
  output = os.path.abspath(os.fspath(output))
  if os.path.exists(output) and not overwrite:
    raise FileExistsError(f"{output} already exists. Pass --overwrite "
                          "(overwrite=True) to replace it.")
  if not os.path.isdir(os.path.dirname(output)):
    raise FileNotFoundError(
        f"The directory of the output does not exist: {output}")
  texts = None
  if representative_text is not None:
    texts = read_text_lines(representative_text)
  elif quantization == "int8":
    raise ConversionError("--quantization=int8 needs --representative_text "
                          "(a text file, one example per line) to calibrate "
                          "the activation ranges.")
  if preprocessor is None:
    preprocessor_dir = _find_preprocessor(saved_model_dir, preprocessor_dir)
  else:
    preprocessor_dir = None
  if preprocessor_dir is not None and not tf.saved_model.contains_saved_model(
      preprocessor_dir):
    raise FileNotFoundError(f"No preprocessor SavedModel in {preprocessor_dir}"
                            " (no saved_model.pb).")
  if quantization == "int8" and preprocessor_dir is None and (
      preprocessor is None):
    raise ConversionError(
        "--quantization=int8 tokenizes --representative_text with the "
        "exported preprocessor: pass --preprocessor_dir (none found beside "
        f"{saved_model_dir}).")

  if source is None:
    log(f"Loading {saved_model_dir}")
    source = load_encoder(saved_model_dir)
  if source.max_seq_length is not None and seq_length > source.max_seq_length:
    raise ConversionError(
        f"`seq_length` ({seq_length}) exceeds the model's "
        f"max_position_embeddings ({source.max_seq_length}).")

  if preprocessor_dir:
    import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import
    preprocessor = tf.saved_model.load(preprocessor_dir)
  calibration = None
  if quantization == "int8":
    calibration = _split_rows(
        text_inputs(preprocessor,
                    full_length_texts(texts, num_calibration_examples,
                                      batch_size, seq_length), seq_length),
        batch_size)
  rows = -(-NUM_PROBE_EXAMPLES // batch_size) * batch_size
  if preprocessor is not None:
    probe_texts = (list(PROBE_TEXTS) * rows)[:rows]
    probe_inputs, probe_kind = text_inputs(preprocessor, probe_texts,
                                           seq_length), "text"
  else:
    vocab_size = source.vocab_size or 100
    probe_inputs, probe_kind = random_probe_inputs(
        rows, seq_length, vocab_size), "random ids"
  probe = _split_rows(probe_inputs, batch_size)

  log(f"Converting to TFLite ({DESCRIPTIONS[quantization]}, "
      f"[{batch_size}, {seq_length}])")
  model = convert(source, quantization, seq_length, batch_size, calibration)
  default_cosine, default_error = THRESHOLDS[quantization]
  min_cosine = default_cosine if min_cosine is None else min_cosine
  max_relative_error = (default_error if max_relative_error is None
                        else max_relative_error)
  result = agreement(run_tflite(model, probe),
                     savedmodel_outputs(source, probe),
                     np.concatenate([b["input_mask"] for b in probe]),
                     probe_kind)
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  num_ops = len(Interpreter(model_content=model)._get_ops_details())  # pylint: disable=protected-access
  report = TfliteReport(
      output=output, quantization=quantization, batch_size=batch_size,
      seq_length=seq_length, size_bytes=len(model), num_ops=num_ops,
      seconds=0.0, agreement=result, min_cosine=min_cosine,
      max_relative_error=max_relative_error,
      rebuilt=source.encoder is not None)
  if verify and not (result.cosine >= min_cosine and
                     result.relative_error <= max_relative_error):
    raise VerificationError(
        f"the {DESCRIPTIONS[quantization]} TFLite model disagrees with the "
        f"SavedModel: sequence_output cosine {result.cosine:.6f} (min "
        f"{min_cosine}), relative error {result.relative_error:.3e} (max "
        f"{max_relative_error:g}) on {result.num_examples} probe sequences.")
  if not np.isfinite(result.relative_error):
    raise VerificationError("the TFLite model's outputs are not finite.")
  fd, tmp = tempfile.mkstemp(prefix=".tmp_" + os.path.basename(output) + "_",
                             dir=os.path.dirname(output))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(model)
    os.replace(tmp, output)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  report.seconds = time.time() - start
  return report


# === CLI ===


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  flags.DEFINE_string("saved_model_dir", None,
                      "The encoder SavedModel (DIR/encoder of an export).",
                      flag_values=values)
  flags.DEFINE_string("output", None, "The .tflite file to write.",
                      flag_values=values)
  flags.DEFINE_string(
      "quantization", "none",
      "none (float32), dynamic (int8 weights), float16 (float16 weights) or "
      "int8 (full integer, needs --representative_text).",
      flag_values=values)
  flags.DEFINE_integer("seq_length", 128, "Fixed sequence length.",
                       flag_values=values)
  flags.DEFINE_integer("batch_size", 1, "Fixed batch size.",
                       flag_values=values)
  flags.DEFINE_string(
      "representative_text", None,
      "UTF-8 text file, one example per line: int8 calibration data "
      "(required for int8) and probe texts.", flag_values=values)
  flags.DEFINE_string(
      "preprocessor_dir", None,
      "The exported preprocessor SavedModel that tokenizes the text. "
      "Default: the preprocessor directory beside --saved_model_dir.",
      flag_values=values)
  flags.DEFINE_integer("num_calibration_examples", 64,
                       "Lines of --representative_text used for int8.",
                       flag_values=values)
  flags.DEFINE_float("min_cosine", None,
                     "Override the minimum cosine similarity (see --help).",
                     flag_values=values)
  flags.DEFINE_float("max_relative_error", None,
                     "Override the maximum relative error (see --help).",
                     flag_values=values)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing --output.",
                       flag_values=values)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --saved_model_dir=DIR/encoder "
          "--output=model.tflite\n    [--quantization={none,dynamic,float16,"
          "int8}] [--seq_length=128] [--batch_size=1]\n    "
          "[--representative_text=FILE] [--preprocessor_dir=DIR/preprocessor]"
          " [--overwrite]\n\nConverts an exported MobileBERT encoder to a "
          "fixed-shape TFLite model and checks it\nagainst the SavedModel "
          "with the LiteRT interpreter.\n\n" + __doc__.split(
              "Quantizations (`--quantization`):", 1)[1].split(
                  "Exit codes:", 1)[0].strip() + "\n\nFlags:\n"
          + values.get_help())


def _error(message: str, code: int = 2) -> int:
  return cli.error(_PROGRAM, message, code)


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the exit code."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(_usage(values))
    return 0
  try:
    cli.parse(values, argv, required=("saved_model_dir", "output"))
  except cli.UsageError as e:
    return _error(str(e))
  if values.quantization not in QUANTIZATIONS:
    return _error(f"--quantization must be one of {', '.join(QUANTIZATIONS)}."
                  f" Received: {values.quantization!r}")
  for name in ("seq_length", "batch_size", "num_calibration_examples"):
    if values[name].value < 1:
      return _error(f"--{name} must be a positive integer. Received: "
                    f"{values[name].value}")
  if values.representative_text and not os.path.isfile(
      values.representative_text):
    return _error("--representative_text: file not found: "
                  f"{values.representative_text}")
  if values.quantization == "int8" and not values.representative_text:
    return _error("--quantization=int8 needs --representative_text (a text "
                  "file, one example per line) to calibrate the activations")
  output = os.path.abspath(values.output)
  if os.path.exists(output) and not values.overwrite:
    return _error(f"--output: {output} already exists; pass --overwrite to "
                  "replace it")
  if not os.path.isdir(values.saved_model_dir):
    return _error(f"--saved_model_dir: not a directory: "
                  f"{values.saved_model_dir}")

  _quiet_libraries()
  try:
    report = export_tflite(
        values.saved_model_dir, output, quantization=values.quantization,
        seq_length=values.seq_length, batch_size=values.batch_size,
        representative_text=values.representative_text,
        preprocessor_dir=values.preprocessor_dir,
        num_calibration_examples=values.num_calibration_examples,
        min_cosine=values.min_cosine,
        max_relative_error=values.max_relative_error,
        overwrite=values.overwrite, log=_progress)
  except VerificationError as e:
    return _error(f"verification failed, nothing written: {cli.first_line(e)}",
                  code=1)
  except FileExistsError as e:
    return _error(f"--output: {cli.first_line(e)}")
  except (OSError, ValueError, TypeError) as e:
    return _error(cli.first_line(e))
  print(report.format(), flush=True)
  return 0


def _quiet_libraries() -> None:
  import logging  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.ERROR)


def _progress(line: str) -> None:
  print(line, flush=True)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
