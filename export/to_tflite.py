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

or only those of `--outputs` (`--outputs=pooled_output`: a text embedder,
for MediaPipe's `TextEmbedder` after `export.tflite_metadata
--task=text_embedder`; then pooled_output is what the check compares).

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

The encoder is rebuilt from the configuration stored in the SavedModel
(`assets/bert_config.json`) and its variables restored by object graph
(`export.rebuild`), then traced in the standard attention layout without the
input checks (TFLite has no Assert op); see `export.tflite_convert`.
SavedModels without the config asset (older exports, other exporters) are
refused: re-export them with this version.

After conversion the model runs in the LiteRT interpreter on a probe batch
(real text when a preprocessor is available, else fixed random ids with
padding) and its `sequence_output` is compared with the SavedModel's: cosine
similarity and relative error `||tflite - savedmodel|| / ||savedmodel||` over
the real tokens (input_mask 1); pooled_output's relative error is reported
too (`export.tflite_verify`). Below the thresholds of
`export.tflite_verify.THRESHOLDS` (override with `--min_cosine` and
`--max_relative_error`) nothing is written and the exit code is 1. A float
model's full int8 does not reach its bar; export a model fine-tuned with
quantization-aware training (`use_quantized_training`, see docs/tflite.md),
whose learnt ranges the conversion uses.

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written);
1 the converted model disagrees with the SavedModel (nothing written).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys
from typing import Sequence

from absl import flags

from export import tflite_export
from export import tflite_verify
from export.tflite_convert import QUANTIZATIONS
from export.tflite_convert import TFLITE_OUTPUTS
from mobilebert_tf import cli

_PROGRAM = "python -m export.to_tflite"


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
  flags.DEFINE_list("outputs", list(TFLITE_OUTPUTS), "The outputs the model "
                    "returns (comma-separated); pooled_output alone makes a "
                    "text embedder (export.tflite_metadata "
                    "--task=text_embedder).", flag_values=values)
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
                  "Exit codes:", 1)[0].strip()
          + "\n\nThresholds (sequence_output against the SavedModel):\n\n"
          + tflite_verify.threshold_table() + "\n\nFlags:\n"
          + values.get_help())


def _error(message: str, code: int = 2) -> int:
  return cli.error(_PROGRAM, message, code)


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name).

  Returns:
    The exit code: 0 done, 1 verification failed, 2 bad input.
  """
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
    report = tflite_export.export_tflite(
        values.saved_model_dir, output, quantization=values.quantization,
        seq_length=values.seq_length, batch_size=values.batch_size,
        representative_text=values.representative_text,
        preprocessor_dir=values.preprocessor_dir,
        num_calibration_examples=values.num_calibration_examples,
        min_cosine=values.min_cosine,
        max_relative_error=values.max_relative_error,
        overwrite=values.overwrite, outputs=values.outputs, log=_progress)
  except tflite_verify.VerificationError as e:
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
