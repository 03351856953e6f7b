"""SQuAD: reading, windows and labels, predictions, evaluation, the CLI.

Feature creation and prediction are checked against tf-models-official's
port of the original `run_squad.py` (`official.nlp.data.squad_lib`, with its
own Python `FullTokenizer`) on contexts several windows long, answers in the
last window and across a window boundary, unicode text and SQuAD 2.0's
unanswerable questions. The CLI runs in fresh processes.
"""

import collections
import json
import os
import re
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ai_edge_litert.interpreter import Interpreter
import numpy as np
from official.nlp.data import squad_lib
from official.nlp.tools import tokenization
import pytest
import tensorflow as tf
import tf_keras

from export import qa_savedmodel
from export import qa_tflite
from export import tflite_verify
from mobilebert_tf import _compat
from mobilebert_tf import config as config_lib
from mobilebert_tf import heads
from mobilebert_tf import preprocessing
from mobilebert_tf import qa
from mobilebert_tf.pretrainer import build_pretrainer
from tests import helpers
from tests import workspace
from training import run_squad
from training import squad_data

WORDS = ("who what wrote the letter was written by ada lovelace in cafe paris "
         "it . ? , naive love lace 東 京").split()
FILLER = ("the", "letter", "was", "written", "by", "in", "it", ",", "wrote",
          "love")
# Windows: 32 pieces, questions of up to 8, contexts ~40-90 pieces.
WINDOW = dict(seq_length=32, max_query_length=8, doc_stride=8)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  return helpers.write_word_vocab(
      tmp_path_factory.mktemp("squad_vocab") / "vocab.txt", WORDS)


@pytest.fixture(scope="module")
def preprocessor(vocab_file):
  return preprocessing.build_preprocessor(vocab_file, do_lower_case=True,
                                          seq_length=32)


def _qa(qas_id, question, context, answer=None, impossible=False):
  item = {"id": qas_id, "question": question, "answers": [],
          "is_impossible": impossible}
  if answer is not None:
    item["answers"] = [{"text": answer, "answer_start": context.index(answer)}]
  return {"context": context, "qas": [item]}


def _paragraphs():
  rng = np.random.default_rng(0)
  filler = lambda n: " ".join(rng.choice(FILLER, n))
  long_end = filler(70) + " Ada Lovelace wrote it."
  # With 8-piece questions the first window holds 21 context pieces: this
  # answer starts at piece 18 and ends in the next window.
  boundary = filler(18) + " Ada Lovelace wrote the naïve letter ."
  return [
      _qa("last-window", "Who wrote it?", long_end, "Ada Lovelace"),
      _qa("boundary", "Who wrote the letter?", boundary,
          "Ada Lovelace wrote the naïve letter"),
      _qa("unicode", "Where was it written?",
          "It was written in Café Paris, 東京 by Ada.", "Café Paris"),
      # "Paris." is one whitespace word: the span shrinks to the answer's.
      _qa("punctuation", "Where?", filler(30) + " in Paris.", "Paris"),
      _qa("impossible", "What letter?", filler(40), impossible=True),
  ]


def _write_squad(path, paragraphs):
  path.write_text(json.dumps({"version": "test", "data": [
      {"title": "t", "paragraphs": paragraphs}]}), encoding="utf-8")
  return str(path)


def _reference_features(path, vocab_file, is_training, version_2):
  """tf-models-official's examples and features of a file."""
  examples = squad_lib.read_squad_examples(path, is_training, version_2)
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  features = []
  squad_lib.convert_examples_to_features(
      examples, tokenizer, WINDOW["seq_length"], WINDOW["doc_stride"],
      WINDOW["max_query_length"], is_training,
      lambda feature, is_padding=False: features.append(feature),
      batch_size=1)  # No padding features.
  return examples, features


def _ours(path, preprocessor, is_training, version_2):
  examples, skipped = squad_data.read_examples(path, is_training, version_2)
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, [e.question for e in examples],
      [e.context for e in examples], **WINDOW)
  return examples, skipped, inputs, features


@pytest.mark.parametrize("version_2", [False, True], ids=["v1.1", "v2.0"])
@pytest.mark.parametrize("is_training", [True, False],
                         ids=["train", "predict"])
def test_features_equal_the_original_algorithm(tmp_path, vocab_file,
                                               preprocessor, is_training,
                                               version_2):
  paragraphs = _paragraphs()
  if not version_2:
    paragraphs = paragraphs[:-1]
  path = _write_squad(tmp_path / "squad.json", paragraphs)
  ref_examples, ref = _reference_features(path, vocab_file, is_training,
                                          version_2)
  examples, skipped, inputs, features = _ours(path, preprocessor,
                                              is_training, version_2)
  assert skipped == 0 and len(examples) == len(ref_examples)
  assert len(features) == len(ref) > len(examples)  # Several windows.
  for name, key in (("input_ids", "input_word_ids"),
                    ("input_mask", "input_mask"),
                    ("segment_ids", "input_type_ids")):
    np.testing.assert_array_equal(inputs[key],
                                  [getattr(f, name) for f in ref], name)
  np.testing.assert_array_equal(features.example_index,
                                [f.example_index for f in ref])
  max_context = np.zeros_like(features.max_context)
  in_context = np.zeros_like(features.context_mask)
  for row, f in enumerate(ref):
    for position, is_max in f.token_is_max_context.items():
      max_context[row, position] = is_max
    in_context[row, list(f.token_to_orig_map)] = True
  np.testing.assert_array_equal(features.max_context, max_context)
  np.testing.assert_array_equal(features.context_mask, in_context)
  if is_training:
    starts, ends = squad_data.answer_positions(preprocessor, examples,
                                               features)
    np.testing.assert_array_equal(starts, [f.start_position for f in ref])
    np.testing.assert_array_equal(ends, [f.end_position for f in ref])
    # The answers in the last window and across the first boundary are
    # found (not only [CLS]).
    for index in (0, 1):
      rows = np.flatnonzero(features.example_index == index)
      assert starts[rows].max() > 0
    assert starts[features.example_index == 0][-1] > 0


@pytest.mark.parametrize("version_2", [False, True], ids=["v1.1", "v2.0"])
def test_predictions_equal_the_original_post_processing(
    tmp_path, vocab_file, preprocessor, version_2):
  path = _write_squad(tmp_path / "squad.json", _paragraphs())
  ref_examples, ref = _reference_features(path, vocab_file, False, version_2)
  examples, _, _, features = _ours(path, preprocessor, False, version_2)
  rng = np.random.default_rng(1)
  # Random logits everywhere (question and padding too), float32 as a model's.
  start = rng.normal(size=features.context_mask.shape).astype(np.float32)
  end = rng.normal(size=features.context_mask.shape).astype(np.float32)
  if version_2:  # The unanswerable question's windows prefer "".
    start[features.example_index == len(examples) - 1, 0] += 8.0
  result = collections.namedtuple("RawResult",
                                  ["unique_id", "start_logits", "end_logits"])
  results = [result(f.unique_id, [float(v) for v in start[row]],
                    [float(v) for v in end[row]]) for row, f in enumerate(ref)]
  ref_predictions, ref_nbest, ref_null_odds = squad_lib.postprocess_output(
      ref_examples, ref, results, n_best_size=5, max_answer_length=6,
      do_lower_case=True, version_2_with_negative=version_2,
      null_score_diff_threshold=0.0)
  answers = qa.extract_answers(start, end, features, n_best_size=5,
                               max_answer_length=6,
                               null_score_diff_threshold=(0.0 if version_2
                                                          else None))
  written = squad_data.prediction_files(examples, answers, version_2)
  assert written["predictions.json"] == dict(ref_predictions)
  if version_2:
    assert "" in written["predictions.json"].values()
    assert written["null_odds.json"] == pytest.approx(dict(ref_null_odds),
                                                      abs=1e-6)
  else:
    assert "null_odds.json" not in written
  for qas_id, entries in ref_nbest.items():
    ours = written["nbest_predictions.json"][qas_id]
    assert [e["text"] for e in ours] == [e["text"] for e in entries]
    for key in ("probability", "start_logit", "end_logit"):
      np.testing.assert_allclose([e[key] for e in ours],
                                 [e[key] for e in entries], rtol=1e-6,
                                 err_msg=key)
  # Every non-null answer is the context's text at its offset.
  for example, answer in zip(examples, answers):
    for candidate in answer.n_best:
      if candidate.text:
        assert example.context[candidate.start_char:].startswith(
            candidate.text)


def test_read_examples_skips_and_counts_misplaced_answers(tmp_path):
  context = "Ada Lovelace wrote the letter."
  good = _qa("good", "Who?", context, "Ada Lovelace")
  bad = _qa("bad", "Who?", context, "Ada Lovelace")
  bad["qas"][0]["answers"][0]["answer_start"] = 13  # "wrote the ..."
  path = _write_squad(tmp_path / "train.json", [good, bad])
  examples, skipped = squad_data.read_examples(path, is_training=True)
  assert [e.qas_id for e in examples] == ["good"] and skipped == 1
  assert examples[0].answer_text == "Ada Lovelace"
  assert examples[0].answer_start == 0
  # Prediction reads every question, answers or not.
  examples, skipped = squad_data.read_examples(path, is_training=False)
  assert [e.qas_id for e in examples] == ["good", "bad"] and skipped == 0


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON: .* line 1"),
    (json.dumps({"version": "1"}), "has no 'data'"),
    (json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), "no 'context'"),
    (json.dumps({"data": [{"paragraphs": [{"context": " ", "qas": [
        {"id": "x", "question": "q?", "answers": []}]}]}]}),
     "question x has an empty context"),
    (json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "x", "question": "q?", "answers": [
            {"text": "a", "answer_start": 0},
            {"text": "b", "answer_start": 2}]}]}]}]}),
     "question x has 2 answers.*--version_2_with_negative"),
])
def test_read_examples_names_the_problem(tmp_path, content, message):
  path = tmp_path / "bad.json"
  path.write_text(content, encoding="utf-8")
  with pytest.raises(squad_data.SquadError, match=message):
    squad_data.read_examples(str(path), is_training=True)


def test_whitespace_words_follow_the_original():
  words, char_to_word = squad_data.whitespace_words(" ab\u202fc  d\u00a0e")
  assert words == ["ab", "c", "d\u00a0e"]  # U+00A0 does not split.
  assert char_to_word == [-1, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_evaluate_uses_the_official_metrics():
  dataset = [{"paragraphs": [{"context": "c", "qas": [
      {"id": "a", "answers": [{"text": "Ada Lovelace"}, {"text": "Ada"}]},
      {"id": "b", "answers": [{"text": "the red letter"}]},
      {"id": "c", "answers": []},
  ]}]}]
  predictions = {"a": "ada", "b": "a letter", "c": ""}
  v1 = squad_data.evaluate(dataset[:], {"a": "ada", "b": "a letter"})
  # EM: a exact ("ada" = "Ada"); b not. F1: a 1; b: "letter" of
  # "red letter" -> P 1, R 1/2, F1 2/3. Over the 3 questions (c has no
  # answers and no prediction: 0).
  assert v1["exact_match"] == pytest.approx(100.0 / 3)
  assert v1["f1"] == pytest.approx(100.0 * (1 + 2 / 3) / 3)
  v2 = squad_data.evaluate(dataset, predictions, {"a": -1.0, "b": -2.0,
                                                  "c": 3.0})
  assert v2["exact"] == pytest.approx(200.0 / 3)  # a, and c's "".
  assert v2["f1"] == pytest.approx(100.0 * (1 + 2 / 3 + 1) / 3)
  assert v2["HasAns_total"] == 2 and v2["NoAns_total"] == 1
  assert v2["NoAns_exact"] == 100.0
  # The best threshold on the null odds: answering b and a, not c.
  assert v2["final_f1"] == pytest.approx(100.0 * (1 + 2 / 3 + 1) / 3)
  assert v2["final_f1_thresh"] == -1.0


def test_answer_positions_point_at_cls_outside_the_answer_window(
    tmp_path, preprocessor, vocab_file):
  context = " ".join(["the"] * 40) + " Ada Lovelace"
  path = _write_squad(tmp_path / "t.json",
                      [_qa("x", "Who?", context, "Ada Lovelace")])
  examples, _, inputs, features = _ours(path, preprocessor, True, False)
  starts, ends = squad_data.answer_positions(preprocessor, examples, features)
  ids = inputs["input_word_ids"]
  vocab = preprocessing.read_vocab(vocab_file)
  for row in np.flatnonzero(starts):
    assert [vocab[i] for i in ids[row, starts[row]:ends[row] + 1]] == [
        "ada", "lovelace"]
  assert starts[0] == ends[0] == 0 and starts[-1] > 0


# === The command line ===


def _cli(*args, timeout=600):
  return subprocess.run([sys.executable, "-m", "training.run_squad", *args],
                        cwd=workspace.REPO, env=workspace.environment(),
                        capture_output=True, text=True, timeout=timeout,
                        check=False)


def _synthetic_squad(path, n, seed):
  """Who wrote it? The one name among filler words, anywhere in 20-90
  words: most answers lie past the first window."""
  rng = np.random.default_rng(seed)
  names = ["Ada", "Lovelace", "Paris", "Café"]
  paragraphs = []
  for i in range(n):
    words = list(rng.choice(FILLER, rng.integers(20, 90)))
    position = int(rng.integers(0, len(words)))
    name = str(rng.choice(names))
    words.insert(position, name)
    context = " ".join(words)
    start = len(" ".join(words[:position])) + (1 if position else 0)
    paragraphs.append({"context": context, "qas": [{
        "id": f"{seed}-{i}", "question": "Who wrote the letter?",
        "answers": [{"text": name, "answer_start": start}]}]})
  return _write_squad(path, paragraphs)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory, vocab_file):
  words = preprocessing.read_vocab(vocab_file)
  path = tmp_path_factory.mktemp("squad_config") / "config.json"
  path.write_text(json.dumps(dict(helpers.TINY_CONFIG, vocab_size=len(words),
                                  max_position_embeddings=64,
                                  attention_probs_dropout_prob=0.0)))
  return str(path)


@pytest.mark.slow  # a learning test
def test_cli_trains_resumes_and_answers_past_the_first_window(
    tmp_path, vocab_file, tiny_config, preprocessor):
  train = _synthetic_squad(tmp_path / "train.json", 200, seed=1)
  dev = _synthetic_squad(tmp_path / "dev.json", 40, seed=2)
  out = str(tmp_path / "out")
  args = [f"--bert_config_file={tiny_config}", f"--vocab_file={vocab_file}",
          "--do_train", f"--train_file={train}", "--do_predict",
          f"--predict_file={dev}", f"--output_dir={out}",
          "--max_seq_length=32", "--max_query_length=8", "--doc_stride=8",
          "--train_batch_size=16", "--num_train_epochs=3",
          "--learning_rate=1e-3", "--steps_per_loop=20",
          "--save_checkpoints_steps=50"]
  export_dir = str(tmp_path / "export")
  tflite_file = str(tmp_path / "qa.tflite")
  done = _cli(*args, f"--export_dir={export_dir}",
              f"--tflite_file={tflite_file}")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Saved checkpoint" in done.stdout
  with open(os.path.join(out, "predictions.json"), encoding="utf-8") as f:
    predictions = json.load(f)
  with open(os.path.join(out, "nbest_predictions.json"),
            encoding="utf-8") as f:
    nbest = json.load(f)
  with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert not os.path.exists(os.path.join(out, "null_odds.json"))
  assert set(nbest["2-0"][0]) == {"text", "probability", "start_logit",
                                  "end_logit"}
  # The answers past the first window (32 - 8 - 3 = 21 pieces at most).
  examples, _ = squad_data.read_examples(dev, is_training=True)
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, [e.question for e in examples],
      [e.context for e in examples], **WINDOW)
  far = [e for index, e in enumerate(examples) if e.answer_start >=
         features.piece_char_offsets[index][min(
             20, len(features.piece_char_offsets[index]) - 1), 0]]
  assert len(far) >= 20
  far_exact = np.mean([predictions[e.qas_id] == e.answer_text for e in far])
  print(f"EM {results['exact_match']:.1f}, past the first window "
        f"{100 * far_exact:.1f} ({len(far)} questions)")
  # Chance: about 1 in 60 tokens.
  assert far_exact >= 0.8 and results["exact_match"] >= 80.0
  # The serving export (windows inside) answers every dev question as the
  # in-process prediction did.
  served = tf.saved_model.load(export_dir).signatures["serving_default"]
  got = served(question=tf.constant([e.question for e in examples]),
               context=tf.constant([e.context for e in examples]))
  assert [t.decode("utf-8") for t in got["answer"].numpy()] == [
      predictions[e.qas_id] for e in examples]
  # So does the TFLite model, window by window in LiteRT.
  with open(tflite_file, "rb") as f:
    logits = tflite_verify.run_tflite(
        f.read(), [{k: v[i:i + 1] for k, v in inputs.items()}
                   for i in range(len(features))],
        output_names=qa_tflite.QA_OUTPUTS)
  answers = qa.extract_answers(logits["start_logits"], logits["end_logits"],
                               features)
  assert [a.text for a in answers] == [predictions[e.qas_id]
                                       for e in examples]
  # The same command again: nothing left to train, the same answers.
  again = _cli(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Nothing to train" in again.stdout
  with open(os.path.join(out, "predictions.json"), encoding="utf-8") as f:
    assert json.load(f) == predictions
  # SQuAD 2.0 prediction from the same checkpoint: null odds, v2 metrics.
  v2 = _cli(*[a for a in args if a.split("=")[0] not in (
      "--do_train", "--train_file")], "--version_2_with_negative",
            "--null_score_diff_threshold=-1e9")
  assert v2.returncode == 0, v2.stderr[-3000:]
  with open(os.path.join(out, "null_odds.json"), encoding="utf-8") as f:
    assert set(json.load(f)) == set(predictions)
  with open(os.path.join(out, "predictions.json"), encoding="utf-8") as f:
    assert set(json.load(f).values()) == {""}  # The threshold says "".
  with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as f:
    assert json.load(f)["HasAns_total"] == len(predictions)


def _checkpoint_variables(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_cli_killed_mid_training_resumes_to_the_same_weights(
    tmp_path, vocab_file, tiny_config):
  train = _synthetic_squad(tmp_path / "train.json", 24, seed=1)
  args = [f"--bert_config_file={tiny_config}", f"--vocab_file={vocab_file}",
          "--do_train", f"--train_file={train}", "--max_seq_length=32",
          "--max_query_length=8", "--doc_stride=8", "--train_batch_size=8",
          "--num_train_epochs=1", "--learning_rate=1e-3", "--steps_per_loop=1",
          "--save_checkpoints_steps=3", "--deterministic"]
  reference_dir, model_dir = str(tmp_path / "reference"), str(tmp_path / "out")
  reference = workspace.CliProcess(
      "training.run_squad", args + [f"--output_dir={reference_dir}"],
      str(tmp_path / "reference.log"))  # meanwhile, uninterrupted
  try:
    workspace.kill_after_step("training.run_squad",
                              args + [f"--output_dir={model_dir}"], 5,
                              str(tmp_path / "killed.log"))
    assert tf.train.latest_checkpoint(model_dir) == os.path.join(
        model_dir, "ckpt-3")  # steps 4 and 5 are lost
    resumed = workspace.CliProcess(
        "training.run_squad", args + [f"--output_dir={model_dir}"],
        str(tmp_path / "resumed.log")).wait()
    reference.wait()
  finally:
    reference.kill()
  assert f"Resumed from {os.path.join(model_dir, 'ckpt-3')} at step 3" in (
      resumed)
  final = tf.train.latest_checkpoint(reference_dir)
  steps = int(final.rsplit("-", 1)[1])
  assert steps > 5, final
  assert tf.train.latest_checkpoint(model_dir) == os.path.join(
      model_dir, f"ckpt-{steps}")
  got = _checkpoint_variables(os.path.join(model_dir, f"ckpt-{steps}"))
  want = _checkpoint_variables(final)
  assert sorted(got) == sorted(want)
  assert any(k.startswith("model/") for k in want), sorted(want)[:5]
  different = [k for k in want if not np.array_equal(got[k], want[k])]
  assert not different, different[:5]


def test_cli_fine_tunes_quantization_aware(tmp_path, vocab_file, tiny_config,
                                           capsys):
  train = _synthetic_squad(tmp_path / "train.json", 24, seed=1)
  out = tmp_path / "out"
  # The encoder as pretraining leaves it (NoNorm offsets not all zero).
  pretrainer = build_pretrainer(config_lib.load_config(
      tiny_config).for_quantization_aware_training())
  helpers.move_no_norm_weights(pretrainer)
  init = tf.train.Checkpoint(**pretrainer.checkpoint_items).write(
      str(tmp_path / "init" / "model"))
  args = [
      "run_squad", f"--bert_config_file={tiny_config}",
      f"--init_checkpoint={init}",
      f"--vocab_file={vocab_file}", "--do_predict", f"--predict_file={train}",
      f"--output_dir={out}", "--max_seq_length=32", "--max_query_length=8",
      "--doc_stride=8", "--quantization_aware"]
  # A tiny model after 3 steps answers near chance, where int8 rounding
  # moves answers: the F1 bar is measured on a learnt task (benchmarks),
  # not here.
  code = run_squad.main(args + [
      "--do_train", f"--train_file={train}", "--train_batch_size=8",
      "--num_train_epochs=1", "--learning_rate=1e-3", "--steps_per_loop=4",
      f"--tflite_file={tmp_path / 'qa.tflite'}", "--tflite_quantization=int8",
      "--num_calibration_examples=16", "--tflite_max_f1_drop=100"])
  captured = capsys.readouterr()
  assert code == 0, captured.err[-3000:]
  # The full-integer model was scored on every question before it was
  # written, beside the in-memory model's scores.
  assert re.search(r"^Wrote .*qa\.tflite \(.* MiB, int8; .*on --predict_file: "
                   r"EM [\d.]+, F1 [\d.]+ \(in memory [\d.]+, [\d.]+\) on 24 "
                   r"questions", captured.out, re.M), captured.out
  with open(out / run_squad.TFLITE_EVAL_RESULTS_FILE, encoding="utf-8") as f:
    scored = json.load(f)
  with open(out / run_squad.EVAL_RESULTS_FILE, encoding="utf-8") as f:
    in_memory = json.load(f)
  assert scored["quantization"] == "int8" and scored["questions"] == 24
  assert scored["reference_f1"] == in_memory["f1"]
  assert 0.0 <= scored["f1"] <= 100.0 and 0.0 <= scored["same_answer"] <= 1.0
  with open(tmp_path / "qa.tflite", "rb") as f:
    interpreter = Interpreter(model_content=f.read())
  interpreter.allocate_tensors()
  tensors = interpreter.get_tensor_details()
  matmuls = [op for op in _compat.tflite_op_details(interpreter)
             if op["op_name"] in ("FULLY_CONNECTED", "BATCH_MATMUL")]
  assert matmuls
  for op in matmuls:  # full integer: int8 in and out of every product
    for index in list(op["inputs"]) + list(op["outputs"]):
      if index >= 0:
        assert tensors[index]["dtype"] in (np.int8, np.int32), (
            op["op_name"], tensors[index]["name"])
  # A bar no conversion can meet (F1 gained beyond 100 points): refused
  # with the measurement, the scores kept, no model written.
  code = run_squad.main(args + [
      f"--tflite_file={tmp_path / 'refused.tflite'}",
      "--tflite_quantization=dynamic", "--tflite_max_f1_drop=-101"])
  err = capsys.readouterr().err.strip()
  assert code == 1 and len(err.splitlines()) == 1, err
  assert "the dynamic TFLite QA model loses" in err and "bar -101" in err
  assert not (tmp_path / "refused.tflite").exists()
  with open(out / run_squad.TFLITE_EVAL_RESULTS_FILE, encoding="utf-8") as f:
    assert json.load(f)["quantization"] == "dynamic"
  # The ranges start from the first training windows' activations.
  assert re.search(r"^Calibrated [1-9]\d* quantization ranges on "
                   r"[1-9]\d* training windows\.$", captured.out, re.M)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(out)))
  ranges = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "quantizers" in k and k.startswith("model/")}
  # The ranges are saved with the model and moved from their [-6, 6] start.
  assert ranges and any(abs(float(v)) != 6.0 for v in ranges.values()), (
      sorted(ranges)[:5])
  assert (out / "predictions.json").exists()


def test_cli_refuses_quantization_aware_training_of_a_hub_module(
    tmp_path, vocab_file, capsys):
  code = run_squad.main([
      "run_squad", f"--hub_module={tmp_path}", f"--vocab_file={vocab_file}",
      "--do_predict", f"--predict_file={tmp_path / 'x.json'}",
      f"--output_dir={tmp_path / 'out'}", "--quantization_aware",
      "--max_seq_length=32", "--max_query_length=8", "--doc_stride=8"])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1, err
  assert "--quantization_aware needs --bert_config_file" in err


@pytest.mark.parametrize("extra, message", [
    (["--doc_stride=21"], "--doc_stride=21 must be smaller than the 21"),
    (["--predict_file=MISSING.json"], "--predict_file: MISSING.json does "
     "not exist"),
    (["--hub_module=DIR"], "not both"),
    (["--distribution_strategy=multi_worker_mirrored"],
     "--do_predict with --distribution_strategy=multi_worker_mirrored"),
    (["--tflite_quantization=int8"],
     "--tflite_quantization: only with --tflite_file"),
    (["--tflite_file=x.tflite", "--tflite_quantization=float16"],
     "--tflite_quantization"),
    (["--tflite_file=x.tflite", "--tflite_quantization=dynamic",
      "--nodo_predict", "--do_train", "--train_file=x.json"],
     "--tflite_quantization=dynamic is checked by the F1 it keeps: pass "
     "--do_predict"),
    (["--tflite_file=x.tflite", "--tflite_quantization=int8",
      "--predict_file=NO_ANSWERS"],
     "--tflite_quantization=int8 is checked by the F1 it keeps, and "
     "--predict_file"),
])
def test_cli_usage_errors_exit_2_with_one_line(capsys, tiny_config,
                                               vocab_file, tmp_path, extra,
                                               message):
  args = ["run_squad", f"--bert_config_file={tiny_config}",
          f"--vocab_file={vocab_file}", "--do_predict",
          f"--output_dir={tmp_path / 'out'}", "--max_seq_length=32",
          "--max_query_length=8", "--doc_stride=8",
          f"--predict_file={tmp_path / 'x.json'}"]
  no_answers = _write_squad(tmp_path / "no_answers.json", [{
      "context": "Ada wrote it.", "qas": [{"id": "q", "question": "Who?"}]}])
  extra = [a.replace("NO_ANSWERS", str(no_answers)) for a in extra]
  assert run_squad.main(args + extra) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err
  assert not (tmp_path / "out").exists()


def test_cli_refuses_malformed_json_and_a_missing_checkpoint(capsys,
                                                            tiny_config,
                                                            vocab_file,
                                                            tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text("[1, 2", encoding="utf-8")
  args = ["run_squad", f"--bert_config_file={tiny_config}",
          f"--vocab_file={vocab_file}", "--do_predict",
          f"--output_dir={tmp_path / 'out'}", "--max_seq_length=32",
          "--max_query_length=8", "--doc_stride=8"]
  assert run_squad.main(args + [f"--predict_file={bad}"]) == 2
  assert "is not valid JSON" in capsys.readouterr().err
  good = _synthetic_squad(tmp_path / "dev.json", 2, seed=3)
  assert run_squad.main(args + [f"--predict_file={good}"]) == 2
  assert "no fine-tuned checkpoint" in capsys.readouterr().err


# === The serving export ===


@pytest.mark.parametrize("threshold", [None, 0.5], ids=["v1.1", "v2.0"])
def test_serving_export_answers_as_the_in_memory_pipeline(
    tmp_path, vocab_file, tiny_config, preprocessor, threshold):
  tf_keras.utils.set_random_seed(3)
  model = heads.build_for_question_answering(
      config_lib.load_config(tiny_config))
  module = qa_savedmodel.QAServingModule(
      model, vocab_file, True, null_score_diff_threshold=threshold,
      n_best_size=5, max_answer_length=6, **WINDOW)
  paragraphs = _paragraphs()
  questions = [p["qas"][0]["question"] for p in paragraphs] + ["who?", "?"]
  contexts = [p["context"] for p in paragraphs] + [
      " ".join(["Ada Lovelace wrote it ."] * 60), "Café."]  # 300 pieces.
  expected = qa_savedmodel.answers_in_memory(module, preprocessor, questions,
                                             contexts)
  path = qa_savedmodel.export_qa(module, preprocessor,
                                 str(tmp_path / "qa"), questions, contexts)
  served = tf.saved_model.load(path).signatures["serving_default"]
  got = served(question=tf.constant(questions), context=tf.constant(contexts))
  texts = [t.decode("utf-8") for t in got["answer"].numpy()]
  assert texts == [a.text for a in expected]
  assert got["start_char"].numpy().tolist() == [a.start_char
                                                for a in expected]
  for row, answer in enumerate(expected):
    if answer.text:
      assert got["end_char"][row] == answer.start_char + len(answer.text)
      assert contexts[row][answer.start_char:].startswith(answer.text)
  np.testing.assert_allclose(got["score"], [a.score for a in expected],
                             rtol=1e-5, atol=1e-5)
  if threshold is not None:
    assert "" in texts  # The null answer wins somewhere.
  with pytest.raises(FileExistsError, match="--overwrite"):
    qa_savedmodel.export_qa(module, preprocessor, path, questions, contexts)


def test_tflite_qa_model_answers_as_the_in_memory_model(tiny_config,
                                                        preprocessor):
  config = config_lib.load_config(tiny_config)
  tf_keras.utils.set_random_seed(4)
  model = heads.build_for_question_answering(config)
  flatbuffer = qa_tflite.convert_qa(model, config, WINDOW["seq_length"])
  paragraphs = _paragraphs()
  questions = [p["qas"][0]["question"] for p in paragraphs]
  contexts = [p["context"] for p in paragraphs]
  report = qa_tflite.verify_qa(flatbuffer, model, preprocessor, questions,
                               contexts, n_best_size=5, **WINDOW)
  assert report["windows"] > len(questions)
  assert report["max_abs_logit_diff"] < 1e-3
  # The flatbuffer's signature: one window of the three int32 inputs.
  interpreter = Interpreter(model_content=flatbuffer)
  runner = interpreter.get_signature_runner("serving_default")
  details = runner.get_input_details()
  assert sorted(details) == sorted(heads.ENCODER_INPUTS)
  for detail in details.values():
    assert list(detail["shape"]) == [1, WINDOW["seq_length"]]
    assert detail["dtype"] == np.int32
  assert sorted(runner.get_output_details()) == ["end_logits", "start_logits"]
  # Another model's weights answer otherwise: the check can fail.
  tf_keras.utils.set_random_seed(5)
  other = heads.build_for_question_answering(config)
  with pytest.raises(RuntimeError, match="nothing was written"):
    qa_tflite.verify_qa(flatbuffer, other, preprocessor, questions, contexts,
                        n_best_size=5, **WINDOW)


@pytest.mark.parametrize("report, quantization, bar, fails", [
    (dict(same_answer=0.99), "none", 1.0, True),  # one answer of 100 moved
    (dict(same_answer=1.0, f1=70.0), "none", 1.0, False),
    (dict(f1=78.5), "dynamic", 1.0, True),  # 1.5 points lost
    (dict(f1=79.5), "int8", 1.0, False),
    (dict(f1=78.5), "int8", 2.0, False),
    (dict(f1=82.0), "int8", 1.0, False),  # gained
])
def test_check_qa_applies_the_bars(report, quantization, bar, fails):
  values = dict(questions=100, windows=180, exact_match=70.0, f1=80.0,
                reference_exact_match=70.0, reference_f1=80.0,
                same_answer=0.9, max_abs_logit_diff=0.1)
  values.update(report)
  report = qa_tflite.QAReport(**values)
  if fails:
    with pytest.raises(tflite_verify.VerificationError,
                       match="bar" if quantization != "none" else "otherwise"):
      qa_tflite.check_qa(report, quantization, bar)
  else:
    qa_tflite.check_qa(report, quantization, bar)


def test_convert_qa_names_its_quantizations(tiny_config):
  config = config_lib.load_config(tiny_config)
  model = heads.build_for_question_answering(config)
  with pytest.raises(ValueError, match=r"one of \('none', 'dynamic', 'int8'\)"
                     r"\. Received: 'float16'"):
    qa_tflite.convert_qa(model, config, WINDOW["seq_length"], "float16")
