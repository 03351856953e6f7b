r"""Adds TFLite Metadata to an exported TFLite model, for the Task Library.

Usage:

  python -m export.tflite_metadata --task=question_answerer \
    --tflite_file=qa.tflite --vocab_file=vocab.txt \
    --output=qa_with_metadata.tflite [--overwrite]

`question_answerer`: the TFLite QA model of `python -m training.run_squad
... --max_seq_length=384 --tflite_file=qa.tflite` gets the metadata that
the TFLite Task Library's `BertQuestionAnswerer` reads (a BERT tokenizer
process unit with the vocabulary packed into the model, inputs `ids`,
`mask`, `segment_ids`, outputs `start_logits`, `end_logits`), so that an app
answers raw-text questions with it:

  from tflite_support.task import text
  answerer = text.BertQuestionAnswerer.create_from_file("qa_with_metadata.tflite")
  answerer.answer(context, question).answers[0].text

`BertQuestionAnswerer` (tflite-support 0.4.4) packs exactly 384 word pieces,
keeps 64 of the question, lower-cases ASCII itself, reads one window of the
context (no document stride) and returns whole whitespace-separated words;
a model of another length, or a cased one, is refused here.

The metadata is written by tflite-support's own writers
(`export.tflite_support_writer`), which run in a venv of their own because
tflite-support pins `protobuf<4` (`make .venv-tflite-support/.done` makes
it; `--writer_python` names another interpreter). Only metadata is added:
the graph is unchanged, which is checked by running both models in LiteRT
on the same inputs before anything is written.

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written);
1 the writer failed or changed what the model computes (nothing written).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json
import subprocess
import sys
import tempfile
from typing import Dict, Sequence

from absl import flags
import numpy as np

from mobilebert_tf import cli
from mobilebert_tf import files

_PROGRAM = "python -m export.tflite_metadata"
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRITER_VENV = os.path.join(_REPO, ".venv-tflite-support")
TASKS = ("question_answerer",)
# What tflite-support 0.4.4's BertQuestionAnswerer hard-codes.
QUESTION_ANSWERER_SEQ_LENGTH = 384
_QA_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
_QA_OUTPUTS = ("start_logits", "end_logits")
# Metadata names that BertQuestionAnswerer looks the tensors up by.
_QA_METADATA_INPUTS = {"ids", "mask", "segment_ids"}
_QA_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


class MetadataError(ValueError):
  """A model, vocabulary or option the metadata cannot describe."""


def _signature(model: bytes):
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter
  runner = Interpreter(model_content=model).get_signature_runner(
      "serving_default")
  return runner, runner.get_input_details(), runner.get_output_details()


def check_question_answerer(model: bytes, vocab_file: str) -> None:
  """Checks that `BertQuestionAnswerer` can run the model with the vocab.

  Raises:
    MetadataError: naming what does not fit and the fix.
  """
  try:
    _, inputs, outputs = _signature(model)
  except ValueError as e:
    raise MetadataError(f"not a TFLite model with a serving_default "
                        f"signature ({cli.first_line(e)})") from None
  if set(inputs) != set(_QA_INPUTS) or not set(_QA_OUTPUTS) <= set(outputs):
    raise MetadataError(
        f"serving_default has inputs {sorted(inputs)} and outputs "
        f"{sorted(outputs)}; a question answerer takes {list(_QA_INPUTS)} "
        f"and returns {list(_QA_OUTPUTS)} (run_squad's --tflite_file)")
  want = [1, QUESTION_ANSWERER_SEQ_LENGTH]
  for name, detail in list(inputs.items()) + [(k, outputs[k])
                                              for k in _QA_OUTPUTS]:
    if list(detail["shape"]) != want:
      raise MetadataError(
          f"{name} has shape {list(detail['shape'])}; BertQuestionAnswerer "
          f"packs exactly {QUESTION_ANSWERER_SEQ_LENGTH} word pieces: export "
          f"the QA model with --max_seq_length={QUESTION_ANSWERER_SEQ_LENGTH}"
          " (and a config with max_position_embeddings >= that)")
  with open(vocab_file, encoding="utf-8") as f:
    tokens = {line.strip() for line in f}
  missing = [t for t in _QA_TOKENS if t not in tokens]
  if missing:
    raise MetadataError(f"--vocab_file: {vocab_file} lacks {missing}; pass "
                        "the vocabulary the model was trained with")


def _probe_inputs() -> Dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  length = QUESTION_ANSWERER_SEQ_LENGTH
  mask = (np.arange(length) < length // 2).astype(np.int32)[None]
  return dict(input_word_ids=rng.integers(5, 50, (1, length), np.int32) * mask,
              input_mask=mask,
              input_type_ids=(np.arange(length) >= length // 4).astype(
                  np.int32)[None] * mask)


def add_metadata(model: bytes, task: str, vocab_file: str,
                 writer_python: str) -> bytes:
  """The model with the task's metadata, by tflite-support's writers.

  Args:
    model: the `.tflite` bytes.
    task: one of `TASKS`.
    vocab_file: the WordPiece vocabulary, packed into the model.
    writer_python: an interpreter with tflite-support (the writer's venv).

  Raises:
    MetadataError: a model or vocabulary the task cannot use.
    RuntimeError: the writer failed, wrote the wrong names, or the graph
      changed.
  """
  if task not in TASKS:
    raise MetadataError(f"--task must be one of {', '.join(TASKS)}. "
                        f"Received: {task!r}")
  check_question_answerer(model, vocab_file)
  with tempfile.TemporaryDirectory() as directory:
    source = os.path.join(directory, "in.tflite")
    target = os.path.join(directory, "out.tflite")
    with open(source, "wb") as f:
      f.write(model)
    env = dict(os.environ, PYTHONPATH=_REPO)
    done = subprocess.run(
        [writer_python, "-m", "export.tflite_support_writer", task, source,
         os.path.abspath(vocab_file), target],
        cwd=directory, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
      lines = [l for l in done.stderr.splitlines() if l.strip()]
      raise RuntimeError("tflite-support's writer failed: " +
                         (lines[-1] if lines else f"exit {done.returncode}"))
    with open(target, "rb") as f:
      written = f.read()
  metadata = json.loads(done.stdout)
  graph = metadata["subgraph_metadata"][0]
  names = {t["name"] for t in graph["input_tensor_metadata"]}
  output_names = {t["name"] for t in graph["output_tensor_metadata"]}
  units = [u["options_type"] for u in graph.get("input_process_units", [])]
  if (names != _QA_METADATA_INPUTS or output_names != set(_QA_OUTPUTS) or
      units != ["BertTokenizerOptions"]):
    raise RuntimeError(f"the writer described inputs {sorted(names)}, "
                       f"outputs {sorted(output_names)} and process units "
                       f"{units}")
  probe = _probe_inputs()
  before = _signature(model)[0](**probe)
  after = _signature(written)[0](**probe)
  for name in _QA_OUTPUTS:
    if not np.array_equal(before[name], after[name]):
      raise RuntimeError(f"the model with metadata computes another "
                         f"{name}: the writer changed the graph")
  return written


# === Command line ===


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("task", "question_answerer", "The Task Library task: "
                      f"{', '.join(TASKS)}.", **define)
  flags.DEFINE_string("tflite_file", None, "The TFLite model (run_squad's "
                      "--tflite_file).", **define)
  flags.DEFINE_string("vocab_file", None, "Its WordPiece vocabulary.",
                      **define)
  flags.DEFINE_boolean("do_lower_case", True, "Whether the model is uncased "
                       "(BertQuestionAnswerer always lower-cases).", **define)
  flags.DEFINE_string("output", None, "The .tflite file with metadata.",
                      **define)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing --output.",
                       **define)
  flags.DEFINE_string("writer_python", os.path.join(WRITER_VENV, "bin",
                                                    "python"),
                      "A Python with tflite-support 0.4.4 (default: the "
                      "checkout's .venv-tflite-support).", **define)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --task=question_answerer --tflite_file=qa.tflite"
          " --vocab_file=vocab.txt --output=qa_with_metadata.tflite "
          "[--overwrite]\n\n" + __doc__.split("\n\n", 3)[3].split(
              "Exit codes:", 1)[0].strip() + "\n\nFlags:\n" +
          values.get_help())


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the
  exit code: 0 done, 1 the writer failed, 2 bad input."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(_usage(values))
    return 0
  try:
    cli.parse(values, argv, required=("tflite_file", "vocab_file", "output"))
    for flag in ("tflite_file", "vocab_file"):
      if not os.path.isfile(values[flag].value):
        raise cli.UsageError(f"--{flag}: {values[flag].value} does not exist")
    if not values.do_lower_case:
      raise cli.UsageError(
          "--do_lower_case=false: BertQuestionAnswerer lower-cases every "
          "question and context, so it cannot run a cased model")
    if not os.path.isfile(values.writer_python):
      raise cli.UsageError(
          f"--writer_python: {values.writer_python} does not exist; `make "
          ".venv-tflite-support/.done` makes the writer's venv "
          "(tflite-support pins protobuf<4, so it has one of its own)")
    output = files.check_target(values.output, values.overwrite)
    with open(values.tflite_file, "rb") as f:
      model = f.read()
    written = add_metadata(model, values.task, values.vocab_file,
                           values.writer_python)
  except (cli.UsageError, MetadataError, FileExistsError,
          NotADirectoryError) as e:
    return cli.error(_PROGRAM, cli.first_line(e, limit=None))
  except RuntimeError as e:
    return cli.error(_PROGRAM, f"nothing written: {cli.first_line(e)}",
                     code=1)
  files.write_bytes(output, written, overwrite=values.overwrite)
  print(f"Wrote {output} ({len(written) / 2**20:.1f} MiB): {values.task} "
        "metadata (BERT tokenizer with the vocabulary packed in; inputs ids, "
        "mask, segment_ids; outputs start_logits, end_logits); the graph is "
        "unchanged.", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
