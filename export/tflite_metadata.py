r"""Adds TFLite Metadata to an exported TFLite model, for on-device clients.

Usage:

  python -m export.tflite_metadata --task=question_answerer \
    --tflite_file=qa.tflite --vocab_file=vocab.txt \
    --output=qa_with_metadata.tflite [--overwrite]
  python -m export.tflite_metadata --task=text_classifier \
    --tflite_file=classifier.tflite --vocab_file=vocab.txt \
    --labels_file=labels.txt --output=classifier_with_metadata.tflite
  python -m export.tflite_metadata --task=text_embedder \
    --tflite_file=embedder.tflite --vocab_file=vocab.txt \
    --output=embedder_with_metadata.tflite

Each writes a BERT tokenizer process unit with the vocabulary packed into
the model and names the inputs `ids`, `mask`, `segment_ids`, so that the
client takes raw text:

`question_answerer`: the TFLite QA model of `python -m training.run_squad
... --max_seq_length=384 --tflite_file=qa.tflite`, outputs `start_logits`,
`end_logits`, for the TFLite Task Library's `BertQuestionAnswerer`:

  from tflite_support.task import text
  answerer = text.BertQuestionAnswerer.create_from_file("qa_with_metadata.tflite")
  answerer.answer(context, question).answers[0].text

It (tflite-support 0.4.4) packs exactly 384 word pieces, keeps 64 of the
question, reads one window of the context (no document stride) and returns
whole whitespace-separated words; a model of another length is refused.

`text_classifier`: the TFLite classifier of `python -m
training.run_classifier ... --tflite_file=classifier.tflite`, output
`probabilities` with the labels (`--labels_file`, one per line in class
order, as run_classifier logs them) packed in, for MediaPipe Tasks'
`TextClassifier`:

  from mediapipe.tasks import python as mp_python
  from mediapipe.tasks.python import text
  classifier = text.TextClassifier.create_from_options(
      text.TextClassifierOptions(base_options=mp_python.BaseOptions(
          model_asset_path="classifier_with_metadata.tflite")))
  classifier.classify("a raw sentence").classifications[0].categories

`text_embedder`: the encoder TFLite model of `python -m export.to_tflite
... --outputs=pooled_output`, output `pooled_output`, for MediaPipe Tasks'
`TextEmbedder` (`text.TextEmbedder...embed("a raw sentence")
.embeddings[0].embedding`, the pooled output itself unless its options
ask for L2 normalization or quantization).

The clients lower-case ASCII letters only and do not strip accents (this
project's tokenizer does both): a cased model is refused, and non-ASCII
text should be normalized by the app.

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
from typing import Dict, List, Optional, Sequence

from absl import flags
import numpy as np

from mobilebert_tf import cli
from mobilebert_tf import files

_PROGRAM = "python -m export.tflite_metadata"
_REPO = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
WRITER_VENV = os.path.join(_REPO, ".venv-tflite-support")
TASKS = ("question_answerer", "text_classifier", "text_embedder")
# What tflite-support 0.4.4's BertQuestionAnswerer hard-codes.
QUESTION_ANSWERER_SEQ_LENGTH = 384
_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
# Each task's outputs, and the metadata names its client finds them by.
_OUTPUTS = {"question_answerer": ("start_logits", "end_logits"),
            "text_classifier": ("probabilities",),
            "text_embedder": ("pooled_output",)}
_METADATA_OUTPUTS = {"question_answerer": {"start_logits", "end_logits"},
                     "text_classifier": {"probability"},
                     "text_embedder": {"embedding"}}
_METADATA_INPUTS = {"ids", "mask", "segment_ids"}
_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
_SOURCES = {"question_answerer": "run_squad's --tflite_file",
            "text_classifier": "run_classifier's --tflite_file",
            "text_embedder": "export.to_tflite --outputs=pooled_output"}


class MetadataError(ValueError):
  """A model, vocabulary or option the metadata cannot describe."""


def _signature(model: bytes):
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter
  runner = Interpreter(model_content=model).get_signature_runner(
      "serving_default")
  return runner, runner.get_input_details(), runner.get_output_details()


def read_labels(labels_file: str) -> List[str]:
  """The labels of a label file, one per line (blank lines are errors).

  Raises:
    MetadataError: an empty file, a blank or repeated label.
  """
  with open(labels_file, encoding="utf-8") as f:
    labels = f.read().splitlines()
  if not labels:
    raise MetadataError(f"--labels_file: {labels_file} is empty")
  blank = [i + 1 for i, label in enumerate(labels) if not label.strip()]
  if blank:
    raise MetadataError(f"--labels_file: {labels_file} line {blank[0]} is "
                        "blank; write one label per line, in class order")
  repeated = sorted({l for l in labels if labels.count(l) > 1})
  if repeated:
    raise MetadataError(f"--labels_file: {labels_file} repeats {repeated}")
  return labels


def check_model(model: bytes, task: str, vocab_file: str,
                labels_file: Optional[str] = None) -> int:
  """Checks that the task's client can run the model with these files.

  Returns:
    The model's sequence length.

  Raises:
    MetadataError: naming what does not fit and the fix.
  """
  try:
    _, inputs, outputs = _signature(model)
  except ValueError as e:
    raise MetadataError(f"not a TFLite model with a serving_default "
                        f"signature ({cli.first_line(e)})") from None
  want = _OUTPUTS[task]
  if set(inputs) != set(_INPUTS) or set(outputs) != set(want):
    raise MetadataError(
        f"serving_default has inputs {sorted(inputs)} and outputs "
        f"{sorted(outputs)}; a {task} takes {list(_INPUTS)} and returns "
        f"{list(want)} ({_SOURCES[task]})")
  shapes = {list(d["shape"])[1] if len(d["shape"]) == 2 else None
            for d in inputs.values()}
  if len(shapes) != 1 or None in shapes or any(
      d["shape"][0] != 1 for d in inputs.values()):
    raise MetadataError(f"the inputs have shapes "
                        f"{[list(d['shape']) for d in inputs.values()]}; "
                        "the clients run [1, seq_length] int32 inputs")
  seq_length = shapes.pop()
  if task == "question_answerer" and (
      seq_length != QUESTION_ANSWERER_SEQ_LENGTH):
    raise MetadataError(
        f"the inputs have shape [1, {seq_length}]; BertQuestionAnswerer "
        f"packs exactly {QUESTION_ANSWERER_SEQ_LENGTH} word pieces: export "
        f"the QA model with --max_seq_length={QUESTION_ANSWERER_SEQ_LENGTH}"
        " (and a config with max_position_embeddings >= that)")
  if task == "text_classifier":
    classes = list(outputs["probabilities"]["shape"])[-1]
    labels = read_labels(labels_file)
    if len(labels) != classes:
      raise MetadataError(
          f"--labels_file: {labels_file} has {len(labels)} labels, the "
          f"model {classes} classes; list the labels in class order (as "
          "run_classifier logs them)")
  with open(vocab_file, encoding="utf-8") as f:
    tokens = {line.strip() for line in f}
  missing = [t for t in _TOKENS if t not in tokens]
  if missing:
    raise MetadataError(f"--vocab_file: {vocab_file} lacks {missing}; pass "
                        "the vocabulary the model was trained with")
  return seq_length


def _probe_inputs(seq_length: int) -> Dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  mask = (np.arange(seq_length) < max(2, seq_length // 2)).astype(
      np.int32)[None]
  return dict(
      input_word_ids=rng.integers(5, 50, (1, seq_length), np.int32) * mask,
      input_mask=mask,
      input_type_ids=(np.arange(seq_length) >= seq_length // 4).astype(
          np.int32)[None] * mask)


def add_metadata(model: bytes, task: str, vocab_file: str,
                 writer_python: str, labels_file: Optional[str] = None
                 ) -> bytes:
  """The model with the task's metadata, by tflite-support's writers.

  Args:
    model: the `.tflite` bytes.
    task: one of `TASKS`.
    vocab_file: the WordPiece vocabulary, packed into the model.
    writer_python: an interpreter with tflite-support (the writer's venv).
    labels_file: for "text_classifier": the label of each class, one per
      line, packed into the model.

  Raises:
    MetadataError: a model or file the task cannot use.
    RuntimeError: the writer failed, wrote the wrong names, or the graph
      changed.
  """
  if task not in TASKS:
    raise MetadataError(f"--task must be one of {', '.join(TASKS)}. "
                        f"Received: {task!r}")
  if (task == "text_classifier") != (labels_file is not None):
    raise MetadataError("--labels_file is for --task=text_classifier, "
                        "which needs it")
  seq_length = check_model(model, task, vocab_file, labels_file)
  with tempfile.TemporaryDirectory() as directory:
    source = os.path.join(directory, "in.tflite")
    target = os.path.join(directory, "out.tflite")
    with open(source, "wb") as f:
      f.write(model)
    env = dict(os.environ, PYTHONPATH=_REPO)
    extra = [os.path.abspath(labels_file)] if labels_file else []
    done = subprocess.run(
        [writer_python, "-m", "export.tflite_support_writer", task, source,
         os.path.abspath(vocab_file), target, *extra],
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
  if (names != _METADATA_INPUTS or output_names != _METADATA_OUTPUTS[task]
      or units != ["BertTokenizerOptions"]):
    raise RuntimeError(f"the writer described inputs {sorted(names)}, "
                       f"outputs {sorted(output_names)} and process units "
                       f"{units}")
  probe = _probe_inputs(seq_length)
  before = _signature(model)[0](**probe)
  after = _signature(written)[0](**probe)
  for name in _OUTPUTS[task]:
    if not np.array_equal(before[name], after[name]):
      raise RuntimeError(f"the model with metadata computes another "
                         f"{name}: the writer changed the graph")
  return written


# === Command line ===


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("task", "question_answerer", "The client's task: "
                      "question_answerer (the Task Library's "
                      "BertQuestionAnswerer), text_classifier or "
                      "text_embedder (MediaPipe Tasks' TextClassifier, "
                      "TextEmbedder).", **define)
  flags.DEFINE_string("tflite_file", None, "The TFLite model (run_squad's "
                      "or run_classifier's --tflite_file).", **define)
  flags.DEFINE_string("labels_file", None, "With --task=text_classifier: "
                      "the label of each class, one per line, in class "
                      "order.", **define)
  flags.DEFINE_string("vocab_file", None, "Its WordPiece vocabulary.",
                      **define)
  flags.DEFINE_boolean("do_lower_case", True, "Whether the model is uncased "
                       "(the clients always lower-case).", **define)
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
  return (f"Usage: {_PROGRAM} --task={{{','.join(TASKS)}}} "
          "--tflite_file=model.tflite --vocab_file=vocab.txt "
          "[--labels_file=labels.txt] --output=model_with_metadata.tflite "
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
    for flag in ("tflite_file", "vocab_file", "labels_file"):
      if values[flag].value and not os.path.isfile(values[flag].value):
        raise cli.UsageError(f"--{flag}: {values[flag].value} does not exist")
    if not values.do_lower_case:
      raise cli.UsageError(
          "--do_lower_case=false: the clients lower-case every text "
          "(BertQuestionAnswerer, TextClassifier, TextEmbedder), so they cannot "
          "run a cased model")
    if not os.path.isfile(values.writer_python):
      raise cli.UsageError(
          f"--writer_python: {values.writer_python} does not exist; `make "
          ".venv-tflite-support/.done` makes the writer's venv "
          "(tflite-support pins protobuf<4, so it has one of its own)")
    output = files.check_target(values.output, values.overwrite)
    with open(values.tflite_file, "rb") as f:
      model = f.read()
    written = add_metadata(model, values.task, values.vocab_file,
                           values.writer_python, values.labels_file)
  except (cli.UsageError, MetadataError, FileExistsError,
          NotADirectoryError) as e:
    return cli.error(_PROGRAM, cli.first_line(e, limit=None))
  except RuntimeError as e:
    return cli.error(_PROGRAM, f"nothing written: {cli.first_line(e)}",
                     code=1)
  files.write_bytes(output, written, overwrite=values.overwrite)
  packed = "the vocabulary" + (" and the labels" if values.labels_file
                                else "")
  print(f"Wrote {output} ({len(written) / 2**20:.1f} MiB): {values.task} "
        f"metadata (BERT tokenizer with {packed} packed in; inputs ids, "
        f"mask, segment_ids; outputs {', '.join(_OUTPUTS[values.task])}); "
        "the graph is unchanged.", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
