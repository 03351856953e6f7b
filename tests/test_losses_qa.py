"""Loss and metric helpers, QA post-processing, and fill-mask."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from mobilebert_tf import heads
from mobilebert_tf import losses
from mobilebert_tf import preprocessing
from mobilebert_tf import qa
from mobilebert_tf.fill_mask import fill_mask
from tests import helpers


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


# === Losses and metrics ===


def test_masked_cross_entropy_averages_over_labelled_tokens_only():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
  labels = np.array([[0, 2, 1, -100, -100], [1, -100, 0, 2, 7]])
  valid = (labels >= 0) & (labels < 3)
  log_p = _log_softmax(logits)
  expected = -np.mean([log_p[b, t, labels[b, t]]
                       for b, t in zip(*np.nonzero(valid))])
  loss = losses.MaskedSparseCategoricalCrossentropy()
  assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
  # Whatever the logits at ignored positions (padding), the loss is the same.
  changed = logits.copy()
  changed[~valid] = 100.0
  assert float(loss(labels, changed)) == pytest.approx(expected, rel=1e-5)
  # Sample weights weight positions (and the denominator).
  weights = np.where(np.arange(5) < 2, 2.0, 1.0)[None].repeat(2, 0)
  weighted = (-sum(weights[b, t] * log_p[b, t, labels[b, t]]
                   for b, t in zip(*np.nonzero(valid))) /
              weights[valid].sum())
  assert float(loss(labels, logits, sample_weight=weights)) == pytest.approx(
      weighted, rel=1e-5)
  # Nothing labelled: 0, not NaN.
  assert float(loss(np.full((2, 5), -100), logits)) == 0.0


def test_masked_accuracy_ignores_unlabelled_tokens():
  logits = np.zeros((1, 4, 3), np.float32)
  logits[0, np.arange(4), [0, 1, 2, 0]] = 1.0
  metric = losses.MaskedSparseCategoricalAccuracy()
  metric.update_state(np.array([[0, 2, -100, -100]]), logits)
  assert float(metric.result()) == 0.5
  metric.update_state(np.array([[0, 1, 2, 0]]), logits)
  assert float(metric.result()) == pytest.approx(5 / 6)
  metric.reset_state()
  assert float(metric.result()) == 0.0


def test_span_loss_is_the_mean_of_start_and_end_cross_entropy():
  rng = np.random.default_rng(1)
  start_logits, end_logits = rng.normal(size=(2, 3, 6)).astype(np.float32)
  starts, ends = np.array([1, 4, 2]), np.array([2, 5, -100])
  ce = lambda logits, labels: -np.mean(
      [_log_softmax(logits)[i, p] for i, p in enumerate(labels) if p >= 0])
  expected = (ce(start_logits, starts) + ce(end_logits, ends)) / 2
  got = float(losses.span_loss(starts, ends, start_logits, end_logits))
  assert got == pytest.approx(expected, rel=1e-5)


def test_span_loss_compile_kwargs_give_the_span_loss():
  config = MobileBertConfig(
      vocab_size=40, hidden_size=16, num_hidden_layers=1,
      num_attention_heads=2, intermediate_size=16, max_position_embeddings=16,
      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  model = heads.build_for_question_answering(config)
  model.compile(**losses.span_loss_compile_kwargs())
  ids = np.array([[2, 7, 3, 9, 10, 11, 3, 0]] * 2, np.int32)
  x = dict(input_word_ids=ids, input_mask=(ids > 0).astype(np.int32),
           input_type_ids=np.array([[0, 0, 0, 1, 1, 1, 1, 0]] * 2, np.int32))
  y = dict(start_logits=np.array([3, 4]), end_logits=np.array([4, 5]))
  result = model.evaluate(x, y, verbose=0, return_dict=True)
  out = model(x)
  expected = float(losses.span_loss(y["start_logits"], y["end_logits"],
                                    out["start_logits"], out["end_logits"]))
  assert result["loss"] == pytest.approx(expected, rel=1e-5)
  assert set(result) >= {"start_logits_accuracy", "end_logits_accuracy"}


def test_span_exact_match():
  metric = losses.SpanExactMatch()
  start_logits = np.eye(4, dtype=np.float32)[[1, 2, 3]]
  end_logits = np.eye(4, dtype=np.float32)[[2, 2, 3]]
  metric.update_state([1, 2, 0], [2, 3, 3], start_logits, end_logits)
  assert float(metric.result()) == pytest.approx(1 / 3)


# === QA post-processing ===


def test_context_mask_excludes_question_padding_and_final_sep():
  input_mask = np.array([[1, 1, 1, 1, 1, 1, 0]])
  types = np.array([[0, 0, 0, 1, 1, 1, 0]])
  np.testing.assert_array_equal(
      qa.context_mask(input_mask, types),
      [[False, False, False, True, True, False, False]])


def _logits(seq, start_peaks, end_peaks):
  start, end = np.zeros((1, seq)), np.zeros((1, seq))
  for position, value in start_peaks.items():
    start[0, position] = value
  for position, value in end_peaks.items():
    end[0, position] = value
  return start, end


def test_best_spans_respects_context_order_and_length():
  context = np.zeros((1, 12), bool)
  context[0, 4:11] = True  # [CLS] q q [SEP] c c c c c c c [SEP]
  # The overall best start is in the question; an end before its start.
  start, end = _logits(12, {1: 9.0, 6: 5.5, 8: 4.0}, {5: 8.0, 7: 3.0, 10: 2.0})
  spans = qa.best_spans(start, end, context, n_best_size=20,
                        max_answer_length=3)[0]
  assert (spans[0].start, spans[0].end) == (6, 7)
  assert spans[0].score == pytest.approx(8.5)
  for span in spans:
    assert context[0, span.start] and context[0, span.end]
    assert span.start <= span.end and span.end - span.start + 1 <= 3
  assert [s.score for s in spans] == sorted((s.score for s in spans),
                                            reverse=True)
  assert len(qa.best_spans(start, end, context, n_best_size=3)[0]) == 3
  # A gap in the context (a middle [SEP]) is never crossed.
  gapped = context.copy()
  gapped[0, 7] = False
  spans = qa.best_spans(start, end, gapped, max_answer_length=8)[0]
  assert all(not (s.start < 7 < s.end) and s.end != 7 for s in spans)
  assert qa.best_spans(start, end, np.zeros_like(context)) == [[]]


def test_best_spans_rejects_bad_arguments():
  start, end = _logits(5, {}, {})
  with pytest.raises(ValueError, match="max_answer_length"):
    qa.best_spans(start, end, np.ones((1, 5), bool), max_answer_length=0)
  with pytest.raises(ValueError, match=r"\[batch, seq\]"):
    qa.best_spans(start, end, np.ones((1, 4), bool))


QA_WORDS = ("who what wrote the letter was written by ada lovelace in cafe "
            "paris it . ?").split()


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  return helpers.write_word_vocab(
      tmp_path_factory.mktemp("vocab") / "vocab.txt", QA_WORDS)


@pytest.fixture(scope="module")
def preprocessor(vocab_file):
  return preprocessing.build_preprocessor(vocab_file, do_lower_case=True,
                                          seq_length=24)


def test_prepare_qa_inputs_and_extract_answer_text(preprocessor, vocab_file):
  vocab = preprocessing.read_vocab(vocab_file)
  questions = ["Who wrote the letter?", "What was written?"]
  contexts = ["The letter was written by Ada Lovelace in Café Paris.",
              "It was the letter."]
  inputs, features = qa.prepare_qa_inputs(preprocessor, questions, contexts,
                                          seq_length=24)
  ids = inputs["input_word_ids"][0]
  tokens = [vocab[i] for i in ids[:inputs["input_mask"][0].sum()]]
  assert tokens[:7] == ["[CLS]", "who", "wrote", "the", "letter", "?", "[SEP]"]
  assert tokens[-1] == "[SEP]" and tokens[7] == "the"
  np.testing.assert_array_equal(
      features.context_mask, qa.context_mask(inputs["input_mask"],
                                             inputs["input_type_ids"]))
  ada = tokens.index("ada")
  cafe = tokens.index("cafe")
  start, end = np.zeros((2, 24)), np.zeros((2, 24))
  start[0, ada], end[0, ada + 1] = 5.0, 5.0  # "Ada Lovelace"
  start[1, 0], end[1, 0] = 9.0, 9.0  # Row 2 prefers "no answer".
  answers = qa.extract_answers(start, end, features)
  assert answers[0].text == "Ada Lovelace"
  assert contexts[0][answers[0].start_char:].startswith("Ada Lovelace")
  # Offsets are into the original text: accents and case are kept.
  start[0], end[0] = 0.0, 0.0
  start[0, cafe], end[0, cafe + 1] = 5.0, 5.0
  answers = qa.extract_answers(start, end, features,
                               null_score_diff_threshold=0.0)
  assert answers[0].text == "Café Paris"
  assert answers[0].start_char == contexts[0].index("Café")
  assert answers[1].text == "" and answers[1].start_char == -1
  assert answers[1].null_score == pytest.approx(18.0)


def test_prepare_qa_inputs_covers_a_long_context_with_windows(preprocessor):
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, ["who?"], ["ada " * 30], seq_length=12, doc_stride=3)
  # [CLS] who ? [SEP] + 7 context pieces + [SEP]; starts 0, 3, ..., 24
  # (the last window ends with the 30th piece).
  room = 12 - 2 - 3
  np.testing.assert_array_equal(features.window_start, np.arange(0, 25, 3))
  np.testing.assert_array_equal(features.window_length, [room] * 8 + [6])
  assert (features.example_index == 0).all()
  assert features.context_mask.sum(1).tolist() == [room] * 8 + [6]
  # Every piece has its max context in exactly one window.
  covered = np.zeros(30, int)
  for row in range(len(features)):
    positions = np.flatnonzero(features.max_context[row])
    covered[positions - 4 + features.window_start[row]] += 1
  np.testing.assert_array_equal(covered, np.ones(30))
  ada = qa.word_piece_ids(preprocessor, ["ada"])[0][0]
  assert (inputs["input_word_ids"][features.context_mask] == ada).all()
  with pytest.raises(ValueError, match="no room"):
    qa.prepare_qa_inputs(preprocessor, ["who wrote it ?"], ["ada"],
                         seq_length=6)
  with pytest.raises(ValueError, match="doc_stride"):
    qa.prepare_qa_inputs(preprocessor, ["who?"], ["ada"], doc_stride=0)


def test_squad_metrics():
  assert qa.squad_exact_match("The Ada Lovelace!", ["ada lovelace"]) == 1.0
  assert qa.squad_exact_match("Ada", ["ada lovelace", "lovelace"]) == 0.0
  assert qa.squad_f1("Ada", ["ada lovelace"]) == pytest.approx(2 / 3)
  assert qa.squad_f1("paris", ["london"]) == 0.0


# === Fill-mask ===


@pytest.fixture(scope="module")
def mlm_pretrainer(vocab_file):
  vocab_size = len(preprocessing.read_vocab(vocab_file))
  config = MobileBertConfig(
      vocab_size=vocab_size, hidden_size=32, embedding_size=16,
      num_hidden_layers=1, num_attention_heads=4, intermediate_size=32,
      intra_bottleneck_size=16, use_bottleneck=True, trigram_input=True,
      key_query_shared_bottleneck=True, normalization_type="no_norm",
      hidden_act="relu", max_position_embeddings=32, initializer_range=0.5)
  return config, build_pretrainer(config)


def test_fill_mask_returns_top_k_tokens_with_probabilities(
    preprocessor, vocab_file, mlm_pretrainer):
  config, pretrainer = mlm_pretrainer
  vocab = preprocessing.read_vocab(vocab_file)
  texts = ["The letter was [MASK] by Ada.", "[MASK] wrote the [MASK]?"]
  results = fill_mask(texts, preprocessor, pretrainer, top_k=4)
  assert [len(r) for r in results] == [1, 2]
  # Reference: the pretrainer's logits at the hand-packed [MASK] positions.
  ids = [[2] + [vocab.index(t) for t in ("the", "letter", "was")] + [4] +
         [vocab.index(t) for t in ("by", "ada", ".")] + [3, 0]]
  reference = pretrainer(dict(
      input_word_ids=tf.constant(ids), input_mask=tf.sign(ids),
      input_type_ids=tf.zeros_like(ids),
      masked_lm_positions=tf.constant([[4]])))["mlm_logits"][0, 0]
  probabilities = np.exp(_log_softmax(reference))
  best = np.argsort(-probabilities)[:4]
  first = results[0][0]
  assert [p["token_id"] for p in first] == best.tolist()
  assert [p["token"] for p in first] == [vocab[i] for i in best]
  np.testing.assert_allclose([p["probability"] for p in first],
                             probabilities[best], rtol=1e-5)
  for per_mask in results[1]:
    values = [p["probability"] for p in per_mask]
    assert values == sorted(values, reverse=True) and 0 < sum(values) <= 1
  # A text's result does not depend on the batch (each row gets padding).
  single = fill_mask(texts[1], preprocessor, pretrainer, top_k=4)
  assert [[p["token_id"] for p in m] for m in single] == [
      [p["token_id"] for p in m] for m in results[1]]
  np.testing.assert_allclose(
      [[p["probability"] for p in m] for m in single],
      [[p["probability"] for p in m] for m in results[1]], rtol=1e-5)
  # MobileBertForMaskedLM with the same weights agrees.
  mlm = heads.MobileBertForMaskedLM(pretrainer.encoder_network,
                                    activation=config.hidden_act)
  mlm.masked_lm.set_weights(pretrainer.masked_lm.get_weights())
  again = fill_mask(texts, preprocessor, mlm, top_k=4)
  assert [[[p["token"] for p in m] for m in r] for r in again] == [
      [[p["token"] for p in m] for m in r] for r in results]


def test_fill_mask_errors(preprocessor, mlm_pretrainer):
  _, pretrainer = mlm_pretrainer
  with pytest.raises(ValueError, match=r"texts\[1\]"):
    fill_mask(["a [MASK]", "no mask"], preprocessor, pretrainer)
  with pytest.raises(ValueError, match="top_k"):
    fill_mask("a [MASK]", preprocessor, pretrainer, top_k=0)
  with pytest.raises(ValueError, match="max_seq_length"):
    fill_mask("ada " * 40 + "[MASK]", preprocessor, pretrainer,
              max_seq_length=32)
