"""`python -m export.tflite_metadata`: on-device clients run our models.

The metadata is written by tflite-support's writers in their own venv
(`.venv-tflite-support`, made by `make test`), and the real clients run
the models from raw text in theirs: the TFLite Task Library's
`BertQuestionAnswerer` (in `.venv-tflite-support`) and MediaPipe Tasks'
`TextClassifier` and `TextEmbedder` (in `.venv-mediapipe`). Their results are checked against
this project's own TFLite path: `qa.prepare_qa_inputs` + LiteRT +
`qa.extract_answers` on contexts of one window, with
`BertQuestionAnswerer`'s candidate limits (5 best starts and ends, answers
of up to 32 word pieces); the preprocessor + LiteRT for the classifier.
"""

import contextlib
import io
import json
import os
import re
import subprocess

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import pytest
import tf_keras

from export import classifier_tflite
from export import qa_tflite
from export import tflite_convert
from export import tflite_metadata
from export import tflite_verify
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import heads
from mobilebert_tf import preprocessing
from mobilebert_tf import qa
from mobilebert_tf.encoder import build_encoder
from tests import helpers
from tests import workspace
from training import tsv

WORDS = ("who what where wrote the letter was written by ada lovelace in a "
         "cafe paris london it . ? , river boat sailed across").split()
PAIRS = [
    ("ada lovelace wrote the letter in a cafe in paris .",
     "who wrote the letter ?"),
    ("the boat sailed across the river , it was written in london .",
     "where was it written ?"),
    ("it was a letter . ada wrote it by the river in paris , in a cafe .",
     "what was written ?"),
]
WRITER_PYTHON = os.path.join(tflite_metadata.WRITER_VENV, "bin", "python")
MEDIAPIPE_PYTHON = os.path.join(workspace.REPO, ".venv-mediapipe", "bin",
                                "python")
LABELS = ("negative", "neutral", "positive")
SENTENCES = ["ada wrote the letter in a cafe in paris .",
             "the boat sailed across the river , it was written in london .",
             "who wrote it ? ada lovelace , by the river ."]
MEDIAPIPE_CLIENT = r"""
import json, sys
from mediapipe.tasks import python as mp_python
from mediapipe.tasks.python import text
options = text.TextClassifierOptions(
    base_options=mp_python.BaseOptions(model_asset_path=sys.argv[1]),
    max_results=-1)
out = []
with text.TextClassifier.create_from_options(options) as classifier:
  for sentence in json.loads(sys.argv[2]):
    head = classifier.classify(sentence).classifications[0]
    out.append(sorted([c.index, c.category_name, c.score]
                      for c in head.categories))
print(json.dumps(out))
"""
# BertQuestionAnswerer (tflite-support 0.4.4): the 5 best start and end
# logits, answers of up to 32 word pieces.
CLIENT = r"""
import json, sys
from tflite_support.task import text
answerer = text.BertQuestionAnswerer.create_from_file(sys.argv[1])
out = []
for context, question in json.loads(sys.argv[2]):
  out.append([dict(text=a.text, start=a.pos.start, end=a.pos.end,
                   logit=a.pos.logit)
              for a in answerer.answer(context, question).answers])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory):
  """vocab.txt and qa.tflite (384) of a random tiny QA model; its seq 64
  twin for the refusals."""
  directory = tmp_path_factory.mktemp("qa_metadata")
  vocab_file = helpers.write_word_vocab(directory / "vocab.txt", WORDS)
  config = MobileBertConfig(**dict(
      helpers.TINY_CONFIG, vocab_size=len(preprocessing.read_vocab(
          vocab_file)), max_position_embeddings=384,
      attention_probs_dropout_prob=0.0, initializer_range=0.5))
  tf_keras.utils.set_random_seed(2)
  model = heads.MobileBertForQuestionAnswering(build_encoder(config),
                                               classifier_dropout=0.0)
  paths = {}
  for seq_length in (384, 64):
    paths[seq_length] = str(directory / f"qa{seq_length}.tflite")
    with open(paths[seq_length], "wb") as f:
      f.write(qa_tflite.convert_qa(model, config, seq_length))
  return dict(vocab_file=vocab_file, tflite=paths[384], short=paths[64],
              directory=directory)


def _main(*args):
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = tflite_metadata.main(["tflite_metadata", *args])
  return code, out.getvalue(), err.getvalue()


def test_bert_question_answerer_answers_as_our_tflite_path(qa_model,
                                                           tmp_path):
  output = str(tmp_path / "qa_with_metadata.tflite")
  done = subprocess.run(
      ["python", "-m",
       "export.tflite_metadata", "--task=question_answerer",
       f"--tflite_file={qa_model['tflite']}",
       f"--vocab_file={qa_model['vocab_file']}", f"--output={output}"],
      cwd=workspace.REPO, env=workspace.environment(), capture_output=True,
      text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "the graph is unchanged" in done.stdout
  client = subprocess.run(
      [WRITER_PYTHON, "-c", CLIENT, output, json.dumps(PAIRS)],
      capture_output=True, text=True, timeout=120, check=False)
  assert client.returncode == 0, client.stderr[-3000:]
  theirs = json.loads(client.stdout)

  preprocessor = preprocessing.build_preprocessor(
      qa_model["vocab_file"], do_lower_case=True, seq_length=384)
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, [q for _, q in PAIRS], [c for c, _ in PAIRS],
      seq_length=384, max_query_length=64, doc_stride=128)
  assert len(features) == len(PAIRS)  # one window each
  with open(qa_model["tflite"], "rb") as f:
    logits = tflite_verify.run_tflite(
        f.read(), [{k: v[i:i + 1] for k, v in inputs.items()}
                   for i in range(len(PAIRS))],
        output_names=qa_tflite.QA_OUTPUTS)
  ours = qa.extract_answers(logits["start_logits"], logits["end_logits"],
                            features, n_best_size=5, max_answer_length=32)
  assert sum(bool(a.n_best) for a in ours) >= 2  # not all empty
  for index, (answer, answers) in enumerate(zip(ours, theirs)):
    # The same candidates, best first: the 5 best starts and ends paired
    # inside the context, as `extract_answers` pairs them.
    assert [(a["start"], a["end"]) for a in answers] == [
        (c.start, c.end) for c in answer.n_best], index
    # Its own TFLite runtime runs the same graph: float32 rounding apart,
    # relative to the logits' size.
    rounding = 1e-5 * float(max(np.abs(logits["start_logits"][index]).max(),
                                np.abs(logits["end_logits"][index]).max()))
    for theirs_one, candidate in zip(answers, answer.n_best):
      assert theirs_one["logit"] == pytest.approx(
          candidate.start_logit + candidate.end_logit, abs=rounding)
    if answers:
      # It returns the whole words around the pieces; ours, their text.
      assert answer.text and answer.text in answers[0]["text"], (
          answer.text, answers[0])


def test_the_metadata_leaves_the_graph_alone(qa_model):
  with open(qa_model["tflite"], "rb") as f:
    model = f.read()
  written = tflite_metadata.add_metadata(model, "question_answerer",
                                         qa_model["vocab_file"], WRITER_PYTHON)
  assert len(written) > len(model)
  assert b"vocab.txt" in written and b"vocab.txt" not in model
  probe = {k: np.asarray(v) for k, v in
           tflite_metadata._probe_inputs(384).items()}  # pylint: disable=protected-access
  before = tflite_verify.run_tflite(model, [probe],
                                    output_names=qa_tflite.QA_OUTPUTS)
  after = tflite_verify.run_tflite(written, [probe],
                                   output_names=qa_tflite.QA_OUTPUTS)
  for name in qa_tflite.QA_OUTPUTS:
    np.testing.assert_array_equal(before[name], after[name])


def test_refusals_exit_2_with_one_line_and_write_nothing(qa_model, tmp_path):
  output = tmp_path / "out.tflite"
  common = [f"--vocab_file={qa_model['vocab_file']}", f"--output={output}"]
  cases = [
      ([f"--tflite_file={qa_model['short']}"], r"packs exactly 384"),
      ([f"--tflite_file={qa_model['tflite']}", "--do_lower_case=false"],
       r"cannot run a cased model"),
      ([f"--tflite_file={qa_model['tflite']}",
        f"--writer_python={tmp_path / 'none'}"],
       r"make \.venv-tflite-support/\.done"),
      ([f"--tflite_file={qa_model['tflite']}", "--task=image_classifier"],
       r"--task must be one of question_answerer, text_classifier, "
       r"text_embedder"),
      ([f"--tflite_file={qa_model['tflite']}", "--task=text_embedder"],
       r"a text_embedder takes .* returns \['pooled_output'\] "
       r"\(export.to_tflite --outputs=pooled_output\)"),
      ([f"--tflite_file={tmp_path / 'missing.tflite'}"], r"does not exist"),
  ]
  for args, message in cases:
    code, _, err = _main(*args, *common)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (args, err)
    assert lines[0].startswith("python -m export.tflite_metadata: error:")
    assert re.search(message, lines[0]), (args, lines[0])
    assert not output.exists()
  vocab = tmp_path / "no_cls.txt"
  vocab.write_text("[PAD]\n[UNK]\n[SEP]\nada\n")
  code, _, err = _main(f"--tflite_file={qa_model['tflite']}",
                       f"--vocab_file={vocab}", f"--output={output}")
  assert code == 2 and "lacks ['[CLS]']" in err, err
  output.write_bytes(b"keep")
  code, _, err = _main(f"--tflite_file={qa_model['tflite']}", *common)
  assert code == 2 and "--overwrite" in err, err
  assert output.read_bytes() == b"keep"


def test_writer_failure_exits_1_and_writes_nothing(qa_model, tmp_path):
  fake = tmp_path / "python"
  fake.write_text("#!/bin/sh\necho 'ImportError: no tflite_support' >&2\n"
                  "exit 1\n")
  fake.chmod(0o755)
  output = tmp_path / "out.tflite"
  code, _, err = _main(f"--tflite_file={qa_model['tflite']}",
                       f"--vocab_file={qa_model['vocab_file']}",
                       f"--output={output}", f"--writer_python={fake}")
  assert code == 1, err
  assert "ImportError: no tflite_support" in err and not output.exists()


# === MediaPipe Tasks' TextClassifier ===


@pytest.fixture(scope="module")
def classifier_models(qa_model):
  """A random tiny 3-class classifier as float32 and full-int8 TFLite."""
  directory = qa_model["directory"]
  vocab_file = qa_model["vocab_file"]
  config = MobileBertConfig(**dict(
      helpers.TINY_CONFIG, vocab_size=len(preprocessing.read_vocab(
          vocab_file)), attention_probs_dropout_prob=0.0,
      initializer_range=0.5))
  tf_keras.utils.set_random_seed(5)
  classifier = heads.MobileBertForSequenceClassification(
      build_encoder(config), num_classes=len(LABELS), classifier_dropout=0.0)
  preprocessor = preprocessing.build_preprocessor(vocab_file,
                                                  do_lower_case=True)
  inputs = tflite_convert.text_inputs(preprocessor, SENTENCES * 3, 32)
  calibration = tflite_convert.split_rows(inputs, 1)
  paths = dict(labels=str(directory / "labels.txt"))
  (directory / "labels.txt").write_text("".join(l + "\n" for l in LABELS))
  for quantization in ("none", "int8"):
    paths[quantization] = str(directory / f"classifier_{quantization}.tflite")
    with open(paths[quantization], "wb") as f:
      f.write(classifier_tflite.convert_classifier(
          classifier, config, 32, quantization,
          calibration if quantization == "int8" else None))
  paths["inputs"] = tflite_convert.text_inputs(preprocessor, SENTENCES, 32)
  return paths


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_mediapipe_classifies_raw_text_as_our_tflite_path(
    classifier_models, qa_model, tmp_path, quantization):
  output = str(tmp_path / "classifier_with_metadata.tflite")
  code, out, err = _main("--task=text_classifier",
                         f"--tflite_file={classifier_models[quantization]}",
                         f"--vocab_file={qa_model['vocab_file']}",
                         f"--labels_file={classifier_models['labels']}",
                         f"--output={output}")
  assert code == 0, err
  assert "vocabulary and the labels packed in" in out
  client = subprocess.run(
      [MEDIAPIPE_PYTHON, "-c", MEDIAPIPE_CLIENT, output,
       json.dumps(SENTENCES)],
      capture_output=True, text=True, timeout=120, check=False)
  assert client.returncode == 0, client.stderr[-3000:]
  theirs = json.loads(client.stdout)
  inputs = classifier_models["inputs"]
  with open(classifier_models[quantization], "rb") as f:
    ours = tflite_verify.run_tflite(
        f.read(), tflite_convert.split_rows(inputs, 1),
        output_names=classifier_tflite.CLASSIFIER_OUTPUTS)["probabilities"]
  assert ours.std() > 0.01  # the three sentences get different scores
  for row, categories in enumerate(theirs):
    assert [c[:2] for c in categories] == [[i, l] for i, l in
                                           enumerate(LABELS)]
    # MediaPipe tokenizes the raw text as our preprocessor does (ASCII)
    # and runs the same graph.
    np.testing.assert_allclose([c[2] for c in categories], ours[row],
                               atol=1e-6)


def test_classifier_metadata_refusals(classifier_models, qa_model,
                                      tmp_path):
  output = tmp_path / "out.tflite"
  two = tmp_path / "two.txt"
  two.write_text("bad\ngood\n")
  blank = tmp_path / "blank.txt"
  blank.write_text("a\n\nb\n")
  model = f"--tflite_file={classifier_models['none']}"
  cases = [
      ([model, f"--labels_file={two}"], r"has 2 labels, the model 3 classes"),
      ([model, f"--labels_file={blank}"], r"line 2 is blank"),
      ([model], r"--labels_file is for --task=text_classifier, which needs"),
      ([f"--tflite_file={qa_model['tflite']}",
        f"--labels_file={classifier_models['labels']}"],
       r"a text_classifier takes .* returns \['probabilities'\]"),
  ]
  for args, message in cases:
    code, _, err = _main("--task=text_classifier", *args,
                         f"--vocab_file={qa_model['vocab_file']}",
                         f"--output={output}")
    assert code == 2 and len(err.strip().splitlines()) == 1, (args, err)
    assert re.search(message, err), (args, err)
    assert not output.exists()


# === MediaPipe Tasks' TextEmbedder ===

MEDIAPIPE_EMBEDDER = r"""
import json, sys
from mediapipe.tasks import python as mp_python
from mediapipe.tasks.python import text
options = text.TextEmbedderOptions(
    base_options=mp_python.BaseOptions(model_asset_path=sys.argv[1]))
with text.TextEmbedder.create_from_options(options) as embedder:
  print(json.dumps([embedder.embed(s).embeddings[0].embedding.tolist()
                    for s in json.loads(sys.argv[2])]))
"""


def test_mediapipe_embeds_raw_text_as_our_tflite_encoder(workspace_dir):
  # Both commands in fresh processes, as a user runs them.
  workspace.run("python -m export.to_tflite --saved_model_dir=DIR/encoder "
                "--output=embedder.tflite --outputs=pooled_output "
                "--seq_length=32 --overwrite", cwd=workspace_dir)
  workspace.run("python -m export.tflite_metadata --task=text_embedder "
                "--tflite_file=embedder.tflite --vocab_file=vocab.txt "
                "--output=embedder_with_metadata.tflite --overwrite",
                cwd=workspace_dir)
  sentences = tsv.read_tsv(os.path.join(workspace_dir, "dev.tsv")).texts[0][:4]
  client = subprocess.run(
      [MEDIAPIPE_PYTHON, "-c", MEDIAPIPE_EMBEDDER,
       os.path.join(workspace_dir, "embedder_with_metadata.tflite"),
       json.dumps(sentences)],
      capture_output=True, text=True, timeout=120, check=False)
  assert client.returncode == 0, client.stderr[-3000:]
  theirs = np.asarray(json.loads(client.stdout))
  with open(os.path.join(workspace_dir, "embedder.tflite"), "rb") as f:
    flatbuffer = f.read()
  runner = Interpreter(model_content=flatbuffer).get_signature_runner(
      "serving_default")
  assert list(runner.get_output_details()) == ["pooled_output"]
  preprocessor = preprocessing.build_preprocessor(
      os.path.join(workspace_dir, "vocab.txt"), do_lower_case=True)
  inputs = tflite_convert.text_inputs(preprocessor, sentences, 32)
  ours = tflite_verify.run_tflite(
      flatbuffer, tflite_convert.split_rows(inputs, 1),
      output_names=("pooled_output",))["pooled_output"]
  assert theirs.shape == ours.shape and np.abs(ours).max() > 0
  np.testing.assert_allclose(theirs, ours, atol=1e-5)
