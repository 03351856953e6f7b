"""The whole TFLite export: check options, convert, verify, write.

`export_tflite` converts an encoder SavedModel (`export.tflite_convert`),
runs the result in LiteRT on a probe batch (real text through the exported
preprocessor when there is one, else fixed random ids with padding) and
compares it with the SavedModel (`export.tflite_verify`); beyond the
thresholds nothing is written. The file appears only when complete
(`mobilebert_tf.files`). `python -m export.to_tflite` is its command line.

Example:

>>> report = export_tflite("/tmp/hub/encoder", "model.tflite", "dynamic")
>>> print(report.format())
"""

import dataclasses
import os
import time
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from export import tflite_convert
from export import tflite_verify
from export.tflite_convert import ConversionError
from export.tflite_convert import DESCRIPTIONS
from export.tflite_convert import QUANTIZATIONS
from export.tflite_convert import TFLITE_OUTPUTS
from export.tflite_verify import VerificationError
from mobilebert_tf import _compat
from mobilebert_tf import files
from mobilebert_tf.encoder import ENCODER_INPUTS

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


@dataclasses.dataclass
class TfliteReport:
  """What `export_tflite` did."""
  output: str
  quantization: str
  batch_size: int
  seq_length: int
  outputs: Tuple[str, ...]
  size_bytes: int
  num_ops: int
  seconds: float
  agreement: tflite_verify.Agreement
  min_cosine: float
  max_relative_error: float

  def format(self) -> str:
    a = self.agreement
    return "\n".join([
        f"Wrote {self.output} ({self.size_bytes / 2**20:.1f} MiB, "
        f"{DESCRIPTIONS[self.quantization]}, {self.num_ops} ops, rebuilt "
        f"from the SavedModel's config and variables) in {self.seconds:.0f} "
        "s.",
        f"  signature serving_default: {', '.join(ENCODER_INPUTS)} int32 "
        f"[{self.batch_size}, {self.seq_length}] -> "
        f"{', '.join(self.outputs)}",
        f"  agreement with the SavedModel on {a.num_examples} probe sequences "
        f"({a.probe}): {a.compared} cosine {a.cosine:.6f} (min "
        f"{self.min_cosine}), relative error {a.relative_error:.2e} (max "
        f"{self.max_relative_error:g}); pooled_output relative error "
        f"{a.pooled_relative_error:.2e}"])


def find_preprocessor(saved_model_dir: str,
                      preprocessor_dir: Optional[str]) -> Optional[str]:
  """`preprocessor_dir`, else the export's `preprocessor` beside, or None."""
  if preprocessor_dir:
    return preprocessor_dir
  sibling = os.path.join(os.path.dirname(os.path.abspath(saved_model_dir)),
                         "preprocessor")
  return sibling if os.path.isdir(sibling) else None


def load_preprocessor(preprocessor_dir: str):
  """`tf.saved_model.load` of a preprocessor SavedModel.

  Raises:
    FileNotFoundError: no SavedModel there.
  """
  if not tf.saved_model.contains_saved_model(preprocessor_dir):
    raise FileNotFoundError(f"No preprocessor SavedModel in "
                            f"{preprocessor_dir} (no saved_model.pb).")
  # Registers the TFText ops the preprocessor's graph uses (else "Op type
  # not registered 'TFText>...'" in a fresh process).
  import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import
  return tf.saved_model.load(preprocessor_dir)


def _check_positive(**values) -> None:
  for name, value in values.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConversionError(f"`{name}` must be a positive integer. "
                            f"Received: {value!r}")


def export_tflite(saved_model_dir: str, output: str,
                  quantization: str = "none", seq_length: int = 128,
                  batch_size: int = 1,
                  representative_text: Optional[str] = None,
                  preprocessor_dir: Optional[str] = None,
                  num_calibration_examples: int = 64,
                  min_cosine: Optional[float] = None,
                  max_relative_error: Optional[float] = None,
                  overwrite: bool = False, verify: bool = True,
                  outputs: Sequence[str] = TFLITE_OUTPUTS,
                  source: Optional[tflite_convert.EncoderSource] = None,
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
      for "int8" (required there).
    preprocessor_dir: str. The exported preprocessor SavedModel; defaults to
      the `preprocessor` directory beside `saved_model_dir`, if any.
    num_calibration_examples: int. Lines of `representative_text` used for
      int8 calibration. Defaults to 64.
    min_cosine, max_relative_error: float. Override
      `tflite_verify.THRESHOLDS`.
    overwrite: bool. Replace an existing `output`. Defaults to False.
    verify: bool. Fail unless the model passes the thresholds. Defaults to
      True. (The agreement is measured and reported either way.)
    outputs: the outputs the model returns, of `TFLITE_OUTPUTS`;
      `("pooled_output",)` makes a text embedder (MediaPipe's
      `TextEmbedder`), checked on `pooled_output`. Defaults to both.
    source: an already loaded `tflite_convert.EncoderSource` of
      `saved_model_dir`.
    preprocessor: an already loaded preprocessor (instead of
      `preprocessor_dir`).
    log: callable taking one progress line.

  Returns:
    A `TfliteReport`.

  Raises:
    FileNotFoundError: a missing SavedModel, text file or preprocessor.
    FileExistsError: `output` exists and `overwrite` is False.
    ConversionError (a ValueError): a bad option, a non-encoder SavedModel,
      or one that cannot be rebuilt (re-export it).
    ValueError: an unreadable representative text file.
    VerificationError: the model disagrees with the SavedModel, or its
      outputs are not finite; nothing is written.
  """
  start = time.time()
  if quantization not in QUANTIZATIONS:
    raise ConversionError(f"`quantization` must be one of {QUANTIZATIONS}. "
                          f"Received: {quantization!r}")
  _check_positive(seq_length=seq_length, batch_size=batch_size,
                  num_calibration_examples=num_calibration_examples)
  if not outputs or set(outputs) - set(TFLITE_OUTPUTS):
    raise ConversionError(f"--outputs must be some of "
                          f"{', '.join(TFLITE_OUTPUTS)}. Received: "
                          f"{', '.join(outputs) or 'none'}")
  output = files.check_target(output, overwrite)
  if not os.path.isdir(os.path.dirname(output)):
    raise FileNotFoundError(
        f"The directory of the output does not exist: {output}")
  texts = None
  if representative_text is not None:
    texts = tflite_convert.read_text_lines(representative_text)
  elif quantization == "int8":
    raise ConversionError("--quantization=int8 needs --representative_text "
                          "(a text file, one example per line) to calibrate "
                          "the activation ranges.")
  if preprocessor is None:
    preprocessor_dir = find_preprocessor(saved_model_dir, preprocessor_dir)
    if preprocessor_dir is not None:
      preprocessor = load_preprocessor(preprocessor_dir)
  if quantization == "int8" and preprocessor is None:
    raise ConversionError(
        "--quantization=int8 tokenizes --representative_text with the "
        "exported preprocessor: pass --preprocessor_dir (none found beside "
        f"{saved_model_dir}).")

  if source is None:
    log(f"Loading {saved_model_dir}")
    source = tflite_convert.load_encoder(saved_model_dir)
  if seq_length > source.max_seq_length:
    raise ConversionError(
        f"`seq_length` ({seq_length}) exceeds the model's "
        f"max_position_embeddings ({source.max_seq_length}).")

  calibration = None
  if quantization == "int8":
    calibration = tflite_convert.split_rows(
        tflite_convert.text_inputs(
            preprocessor,
            tflite_convert.full_length_texts(texts, num_calibration_examples,
                                             batch_size, seq_length),
            seq_length),
        batch_size)
  rows = -(-NUM_PROBE_EXAMPLES // batch_size) * batch_size
  if preprocessor is not None:
    probe_texts = (list(PROBE_TEXTS) * rows)[:rows]
    probe_inputs = tflite_convert.text_inputs(preprocessor, probe_texts,
                                              seq_length)
    probe_kind = "text"
  else:
    probe_inputs = tflite_verify.random_probe_inputs(rows, seq_length,
                                                     source.vocab_size)
    probe_kind = "random ids"
  probe = tflite_convert.split_rows(probe_inputs, batch_size)

  log(f"Converting to TFLite ({DESCRIPTIONS[quantization]}, "
      f"[{batch_size}, {seq_length}])")
  model = tflite_convert.convert(source, quantization, seq_length, batch_size,
                                 calibration, output_names=outputs)
  threshold = tflite_verify.THRESHOLDS[quantization]
  min_cosine = threshold.min_cosine if min_cosine is None else min_cosine
  max_relative_error = (threshold.max_relative_error
                        if max_relative_error is None else max_relative_error)
  result = tflite_verify.agreement(
      tflite_verify.run_tflite(model, probe, output_names=outputs),
      tflite_verify.savedmodel_outputs(source.serving, probe),
      np.concatenate([b["input_mask"] for b in probe]), probe_kind)
  report = TfliteReport(
      output=output, quantization=quantization, batch_size=batch_size,
      seq_length=seq_length, outputs=tuple(outputs), size_bytes=len(model),
      num_ops=_compat.tflite_op_count(model), seconds=0.0, agreement=result,
      min_cosine=min_cosine, max_relative_error=max_relative_error)
  if not np.isfinite(result.relative_error):
    raise VerificationError("the TFLite model's outputs are not finite.")
  if verify and not result.passes(min_cosine, max_relative_error):
    raise VerificationError(
        f"the {DESCRIPTIONS[quantization]} TFLite model disagrees with the "
        f"SavedModel: {result.compared} cosine {result.cosine:.6f} (min "
        f"{min_cosine}), relative error {result.relative_error:.3e} (max "
        f"{max_relative_error:g}) on {result.num_examples} probe sequences.")
  files.write_bytes(output, model, overwrite=overwrite)
  report.seconds = time.time() - start
  return report
