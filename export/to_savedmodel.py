r"""Exports a MobileBERT checkpoint as TF-Hub SavedModels: encoder + preprocessor.

Usage:

  python -m export.to_savedmodel \
    --bert_config_file=CONFIG.json \
    --model_checkpoint_path=CKPT \
    --vocab_file=vocab.txt \
    --do_lower_case=true \
    --export_path=DIR [--seq_length=128] [--overwrite]

writes `DIR/encoder` (the TF-Hub text encoder API, with `.mlm`, the vocab
and config assets, `do_lower_case` and `serving_default`/`mlm` signatures) and
`DIR/preprocessor` (the `bert_en_uncased_preprocess/3` API); see
`export.encoder_savedmodel` and `export.preprocessor_savedmodel`; the steps
are `export.pipeline`'s. `--bert_config_file` takes a `bert_config.json` or a
preset name (`mobilebert_tf.config.PRESETS`). `--model_checkpoint_path` takes
a TF2 checkpoint (the converter's, ours or tf-models-official's pretrainer
`checkpoint_items`) or an original TF1 checkpoint, converted on the fly.

The export is verified before it appears: both SavedModels are reloaded with
tensorflow_hub and a fixed probe batch is compared with the in-memory model.

With no flags at all, runs the demonstration: the small MobileBERT bundled in
`checkpoints/demo/` (TF1 checkpoint, config, uncased vocabulary) is converted,
exported to `build/demo_export/` (replacing an earlier demo export), reloaded
and shown filling in [MASK]s.

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written);
1 the written SavedModels failed verification (nothing left behind).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys
from typing import Sequence

from absl import flags

from mobilebert_tf import cli

_PROGRAM = "python -m export.to_savedmodel"
_REQUIRED = ("bert_config_file", "model_checkpoint_path", "vocab_file",
             "export_path")

# The bundled demonstration model (see the README).
DEMO_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "checkpoints", "demo")
DEMO_CONFIG = "bert_config.json"
DEMO_CHECKPOINT = "model.ckpt"
DEMO_VOCAB = "vocab.txt"
DEMO_DO_LOWER_CASE = True
DEMO_EXPORT_PATH = os.path.join("build", "demo_export")


def _define_flags() -> flags.FlagValues:
  # A fresh FlagValues per call: no clash with other modules' flags, and no
  # values left over between in-process calls of `main`.
  values = flags.FlagValues()
  flags.DEFINE_string(
      "bert_config_file", None,
      "The model's bert_config.json (original keys), or a preset name, e.g. "
      "uncased_L-24_H-128_B-512_A-4_F-4_OPT.", flag_values=values)
  flags.DEFINE_string(
      "model_checkpoint_path", None,
      "Checkpoint prefix (or directory): a TF2 checkpoint of "
      "pretrainer.checkpoint_items, or an original TF1 checkpoint.",
      flag_values=values)
  flags.DEFINE_string(
      "vocab_file", None,
      "The WordPiece vocabulary the model was trained with (vocab_size "
      "lines, with [PAD] [UNK] [CLS] [SEP] [MASK]).", flag_values=values)
  flags.DEFINE_boolean(
      "do_lower_case", True,
      "Lower-case and strip accents before tokenization: true for uncased "
      "models, false for cased ones (e.g. multilingual).", flag_values=values)
  flags.DEFINE_string(
      "export_path", None,
      "Directory to create, with encoder/ and preprocessor/ SavedModels.",
      flag_values=values)
  flags.DEFINE_integer(
      "seq_length", 128,
      "Sequence length of the preprocessor's root callable (and default of "
      ".bert_pack_inputs); at most the config's max_position_embeddings. "
      "Default: 128, or max_position_embeddings if smaller.",
      flag_values=values)
  flags.DEFINE_boolean(
      "overwrite", False, "Replace an existing --export_path.",
      flag_values=values)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --bert_config_file=CONFIG.json "
          "--model_checkpoint_path=CKPT --vocab_file=vocab.txt "
          "--do_lower_case=true --export_path=DIR [--seq_length=128] "
          "[--overwrite]\n\n"
          "Exports a MobileBERT checkpoint as TF-Hub SavedModels DIR/encoder "
          "(with .mlm) and DIR/preprocessor,\nthen reloads and verifies "
          f"them. With no flags, runs the demonstration model in\n{DEMO_DIR} "
          f"and exports it to {DEMO_EXPORT_PATH}.\n\nFlags:\n"
          + values.get_help())


def _error(message: str, code: int = 2) -> int:
  return cli.error(_PROGRAM, message, code)


def _demo_arguments():
  """The flag values of the demonstration, or an error message."""
  paths = dict(
      bert_config_file=os.path.join(DEMO_DIR, DEMO_CONFIG),
      model_checkpoint_path=os.path.join(DEMO_DIR, DEMO_CHECKPOINT),
      vocab_file=os.path.join(DEMO_DIR, DEMO_VOCAB))
  missing = [p for p in (paths["bert_config_file"], paths["vocab_file"],
                         paths["model_checkpoint_path"] + ".index")
             if not os.path.exists(p)]
  if missing:
    return None, (f"the demonstration model is missing ({', '.join(missing)})."
                  " Pass --bert_config_file, --model_checkpoint_path, "
                  "--vocab_file and --export_path to export a model "
                  "(see --help).")
  export_path = os.path.abspath(DEMO_EXPORT_PATH)
  # Replace only an earlier demo export, never some other directory.
  if os.path.exists(export_path) and not (
      os.path.isdir(export_path) and
      sorted(os.listdir(export_path)) == ["encoder", "preprocessor"]):
    return None, (f"{export_path} exists and is not an earlier demo export; "
                  "move it away first.")
  return dict(paths, do_lower_case=DEMO_DO_LOWER_CASE,
              export_path=export_path, overwrite=True), None


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the exit code."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(_usage(values))
    return 0
  try:
    cli.parse(values, argv)
  except cli.UsageError as e:
    return _error(str(e))

  demo = all(values[name].value is None for name in _REQUIRED)
  if demo:
    args, problem = _demo_arguments()
    if problem:
      return _error(problem)
    print(f"Demonstration: exporting the bundled MobileBERT ({DEMO_DIR}) to "
          f"{args['export_path']}", flush=True)
  else:
    for name in _REQUIRED:
      if not values[name].value:
        return _error(f"--{name} is required (see --help; with no flags at "
                      "all, the demonstration runs)")
    args = {name: values[name].value for name in _REQUIRED}
    args.update(do_lower_case=values.do_lower_case,
                overwrite=values.overwrite)

  # Imported here so that --help and usage errors answer fast.
  _quiet_libraries()
  # pylint: disable=g-import-not-at-top
  from export import pipeline
  from export import verify
  from mobilebert_tf.config import load_config
  # pylint: enable=g-import-not-at-top

  try:
    config = load_config(args["bert_config_file"])
  except (OSError, ValueError, TypeError) as e:
    return _error(f"--bert_config_file: {cli.first_line(e)}")
  seq_length = values.seq_length
  if not values["seq_length"].present:  # The default fits every model.
    seq_length = min(seq_length, config.max_position_embeddings)
  try:
    prepared = pipeline.prepare_export(
        config, args["model_checkpoint_path"], args["vocab_file"],
        args["do_lower_case"], args["export_path"],
        seq_length=seq_length, overwrite=args["overwrite"], log=_progress)
  except FileExistsError as e:
    return _error(f"--export_path: {cli.first_line(e)}")
  except (OSError, ValueError, TypeError) as e:
    return _error(cli.first_line(e))
  for warning in prepared.warnings:
    print(f"{_PROGRAM}: warning: {warning}", file=sys.stderr)
  try:
    report = pipeline.write_export(
        prepared, args["export_path"], seq_length=seq_length,
        overwrite=args["overwrite"], log=_progress)
  except verify.VerificationError as e:
    return _error(f"verification failed, nothing written: {cli.first_line(e)}",
                  code=1)
  print(report.format(with_predictions=not demo), flush=True)
  if demo:
    print(_demo_text(report), flush=True)
  return 0


def _quiet_libraries() -> None:
  """Keeps TF's and tensorflow_hub's routine warnings out of the report."""
  import logging  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  # tensorflow_hub 0.16.1 imports pkg_resources.
  warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
  # E.g. "Skipping full serialization of TF-Keras layer ... not built" for
  # dropout layers that a rate of 0 leaves unused, and "Compiled the loaded
  # model, but the compiled metrics have yet to be built".
  logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _progress(line: str) -> None:
  print(line, flush=True)


def _demo_text(report) -> str:
  encoder = os.path.join(report.export_path, "encoder")
  preprocessor = os.path.join(report.export_path, "preprocessor")
  lines = [
      "",
      "Reloaded through hub.KerasLayer, the encoder gives "
      + ", ".join(f"{k} {list(v)}" for k, v in report.verification.output_shapes.items())
      + " for the probe batch (encoder_outputs: [blocks, batch, seq, width]).",
      "Its .mlm fills in the [MASK]s (top 5, most likely first):"]
  for sentence, masks in report.verification.predictions:
    lines.append(f"  {sentence}")
    for tokens in masks:
      lines.append(f"      -> {', '.join(tokens)}")
  lines += [
      "",
      "Use it:",
      "  import tensorflow as tf, tensorflow_hub as hub",
      f"  preprocessor = hub.KerasLayer({preprocessor!r})",
      f"  encoder = hub.KerasLayer({encoder!r}, trainable=True)",
      '  outputs = encoder(preprocessor(tf.constant(["Return the sum."])))']
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
