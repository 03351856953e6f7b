"""Extractive question answering: input packing and answer post-processing.

The steps of the SQuAD scripts (google-research `run_squad.py`,
transformers' `postprocess_qa_predictions`), without document stride:

1. `prepare_qa_inputs`: pack `[CLS] question [SEP] context [SEP]` (the
   context has token type 1) with the project's preprocessor, and keep each
   context token's byte offsets into its context string.
2. Run `MobileBertForQuestionAnswering` -> `start_logits`, `end_logits`.
3. `best_spans`: the n best (start, end) token pairs by
   `start_logit + end_logit`, both inside the context, `end >= start`, at
   most `max_answer_length` tokens.
4. `extract_answers`: the best span's text, cut from the context with the
   offsets (so the answer is an exact substring of the context), optionally
   "" when the no-answer score (`[CLS]` start + end, SQuAD 2.0) wins by more
   than `null_score_diff_threshold`.

`squad_exact_match` and `squad_f1` are the official SQuAD v1.1 text metrics.

Example:

>>> inputs, features = prepare_qa_inputs(preprocessor, ["who wrote it?"],
...                                      ["it was written by ada."], 32)
>>> out = model(inputs)
>>> extract_answers(out["start_logits"], out["end_logits"], features)[0].text
'ada'
"""

import collections
import dataclasses
import re
import string
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from mobilebert_tf import preprocessing


@dataclasses.dataclass(frozen=True)
class Span:
  """A candidate answer: token positions `start..end` (inclusive).

  Attributes:
    start: int. First token position in the packed input.
    end: int. Last token position (inclusive).
    score: float. `start_logit + end_logit`.
    start_logit: float.
    end_logit: float.
  """
  start: int
  end: int
  score: float
  start_logit: float
  end_logit: float


@dataclasses.dataclass(frozen=True)
class Answer:
  """The answer to one question.

  Attributes:
    text: str. The answer, a substring of the context ("" for no answer).
    start_char: int. Character offset of `text` in the context (-1 for no
      answer).
    score: float. The span's `start_logit + end_logit`.
    span: the best `Span` (None if the context had no tokens).
    null_score: float. The no-answer score `start_logits[0] + end_logits[0]`.
    n_best: the `Span`s considered, best first.
  """
  text: str
  start_char: int
  score: float
  span: Optional[Span]
  null_score: float
  n_best: List[Span]


@dataclasses.dataclass
class QAFeatures:
  """What `extract_answers` needs besides the logits.

  Attributes:
    contexts: list of str, the contexts as given.
    context_mask: bool `[batch, seq]`, True at context tokens.
    token_offsets: int64 `[batch, seq, 2]`: for a context token, the start
      and limit byte offsets of its word piece in the UTF-8 context; -1
      elsewhere.
  """
  contexts: List[str]
  context_mask: np.ndarray
  token_offsets: np.ndarray


def context_mask(input_mask, input_type_ids, context_type_id=1):
  """Context tokens of packed inputs: real tokens of the context type, without
  the final `[SEP]` (the last real token of that type in each row).

  Args:
    input_mask: int `[batch, seq]`.
    input_type_ids: int `[batch, seq]`.
    context_type_id: int. Defaults to 1.

  Returns:
    bool NumPy array `[batch, seq]`.
  """
  input_mask = np.asarray(input_mask)
  mask = (input_mask != 0) & (np.asarray(input_type_ids) == context_type_id)
  for row in range(mask.shape[0]):
    positions = np.flatnonzero(mask[row])
    if positions.size:
      mask[row, positions[-1]] = False
  return mask


def _check_positive(name, value):
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"`{name}` must be a positive integer. "
                     f"Received: {name}={value!r}")


def best_spans(start_logits, end_logits, context_mask,
               n_best_size: int = 20,
               max_answer_length: int = 30) -> List[List[Span]]:
  """The n best answer spans per example, as the SQuAD scripts choose them.

  Candidates pair each of the `n_best_size` highest start logits with each of
  the `n_best_size` highest end logits, both taken among context positions
  (the scripts take them over all positions and then drop non-context ones,
  which can leave fewer candidates; with `MobileBertForQuestionAnswering`'s
  masking both agree). A pair is valid if `start <= end` and the span has at
  most `max_answer_length` tokens; so no span reaches into the question or
  crosses a `[SEP]`.

  Args:
    start_logits, end_logits: float `[batch, seq]`.
    context_mask: bool `[batch, seq]` (see `context_mask`).
    n_best_size: int. Candidates per side and spans returned. Defaults to 20.
    max_answer_length: int. In tokens. Defaults to 30.

  Returns:
    Per example, a list of up to `n_best_size` `Span`s, best first (empty if
    the context has no tokens).

  Raises:
    ValueError: mismatched shapes or non-positive sizes.
  """
  _check_positive("n_best_size", n_best_size)
  _check_positive("max_answer_length", max_answer_length)
  start_logits = np.asarray(start_logits, np.float64)
  end_logits = np.asarray(end_logits, np.float64)
  context = np.asarray(context_mask, bool)
  if not (start_logits.shape == end_logits.shape == context.shape) or (
      start_logits.ndim != 2):
    raise ValueError(
        "`start_logits`, `end_logits` and `context_mask` must all be "
        f"[batch, seq]. Received: {start_logits.shape}, {end_logits.shape}, "
        f"{context.shape}")
  results = []
  for row in range(start_logits.shape[0]):
    positions = np.flatnonzero(context[row])
    if not positions.size:
      results.append([])
      continue
    # Stable sorts: ties go to the earlier position.
    starts = positions[np.argsort(-start_logits[row, positions],
                                  kind="stable")[:n_best_size]]
    ends = positions[np.argsort(-end_logits[row, positions],
                                kind="stable")[:n_best_size]]
    candidates = []
    for s in starts:
      for e in ends:
        if e < s or e - s + 1 > max_answer_length:
          continue
        # A span may not cross a non-context token (e.g. a middle [SEP]).
        if not context[row, s:e + 1].all():
          continue
        sl, el = float(start_logits[row, s]), float(end_logits[row, e])
        candidates.append(Span(int(s), int(e), sl + el, sl, el))
    candidates.sort(key=lambda span: (-span.score, span.start, span.end))
    results.append(candidates[:n_best_size])
  return results


def _tokenize_with_offsets(preprocessor, texts):
  out = preprocessor.tokenize_with_offsets(tf.constant(texts))
  ids, starts, limits = out[0], out[1], out[2]  # ragged [batch, w, pieces]
  merge = lambda rt: rt.merge_dims(-2, -1).to_list()
  return merge(ids), merge(starts), merge(limits)


def prepare_qa_inputs(preprocessor, questions: Sequence[str],
                      contexts: Sequence[str], seq_length: int = 384,
                      max_query_length: int = 64):
  """Packs question/context pairs for `MobileBertForQuestionAnswering`.

  `[CLS] question [SEP] context [SEP] [PAD]...`; token types 0 for
  `[CLS] question [SEP]`, 1 for `context [SEP]`. The question is cut to
  `max_query_length` word pieces, the context to what fits (SQuAD scripts
  would slide a window with a document stride instead).

  Args:
    preprocessor: the project's preprocessor (`preprocessing.build_preprocessor`
      or its `hub.load`-ed SavedModel); uses `.tokenize`,
      `.tokenize_with_offsets` and the special-token ids.
    questions: list of str.
    contexts: list of str, as many.
    seq_length: int. Packed length. Defaults to 384.
    max_query_length: int. Defaults to 64.

  Returns:
    `(inputs, features)`: a dict of int32 `[batch, seq_length]` encoder
    inputs, and the `QAFeatures` for `extract_answers`.

  Raises:
    ValueError: different numbers of questions and contexts, or a
      `seq_length` that leaves no room for the context.
  """
  questions, contexts = list(questions), list(contexts)
  if len(questions) != len(contexts):
    raise ValueError("`questions` and `contexts` must have the same length. "
                     f"Received: {len(questions)} and {len(contexts)}")
  _check_positive("max_query_length", max_query_length)
  _check_positive("seq_length", seq_length)
  special = preprocessing.special_token_ids(preprocessor.tokenize)
  question_ids = preprocessor.tokenize(tf.constant(questions)).merge_dims(
      -2, -1).to_list()
  context_ids, starts, limits = _tokenize_with_offsets(preprocessor, contexts)
  batch = len(questions)
  word_ids = np.full((batch, seq_length), special["padding_id"], np.int32)
  input_mask = np.zeros((batch, seq_length), np.int32)
  type_ids = np.zeros((batch, seq_length), np.int32)
  offsets = np.full((batch, seq_length, 2), -1, np.int64)
  mask = np.zeros((batch, seq_length), bool)
  for row in range(batch):
    query = question_ids[row][:max_query_length]
    room = seq_length - len(query) - 3
    if room < 1:
      raise ValueError(
          f"`seq_length` ({seq_length}) leaves no room for the context after "
          f"a question of {len(query)} word pieces (example {row}); raise "
          "seq_length or lower max_query_length.")
    context = context_ids[row][:room]
    tokens = ([special["start_of_sequence_id"]] + query +
              [special["end_of_segment_id"]] + context +
              [special["end_of_segment_id"]])
    first = len(query) + 2  # Position of the first context token.
    word_ids[row, :len(tokens)] = tokens
    input_mask[row, :len(tokens)] = 1
    type_ids[row, first:len(tokens)] = 1
    n = len(context)
    mask[row, first:first + n] = True
    offsets[row, first:first + n, 0] = starts[row][:n]
    offsets[row, first:first + n, 1] = limits[row][:n]
  inputs = dict(input_word_ids=word_ids, input_mask=input_mask,
                input_type_ids=type_ids)
  return inputs, QAFeatures(contexts=contexts, context_mask=mask,
                            token_offsets=offsets)


def extract_answers(start_logits, end_logits, features: QAFeatures,
                    n_best_size: int = 20, max_answer_length: int = 30,
                    null_score_diff_threshold: Optional[float] = None
                    ) -> List[Answer]:
  """The best answer text per example.

  Args:
    start_logits, end_logits: float `[batch, seq]`.
    features: from `prepare_qa_inputs`.
    n_best_size: int. Defaults to 20.
    max_answer_length: int. In tokens. Defaults to 30.
    null_score_diff_threshold: float or None. SQuAD 2.0: answer "" when
      `null_score - best_span.score > threshold`. None (SQuAD 1.1) always
      answers with the best span. Defaults to None.

  Returns:
    A list of `Answer`, one per example.
  """
  start_logits = np.asarray(start_logits, np.float64)
  end_logits = np.asarray(end_logits, np.float64)
  spans = best_spans(start_logits, end_logits, features.context_mask,
                     n_best_size=n_best_size,
                     max_answer_length=max_answer_length)
  answers = []
  for row, candidates in enumerate(spans):
    null_score = float(start_logits[row, 0] + end_logits[row, 0])
    best = candidates[0] if candidates else None
    no_answer = best is None or (
        null_score_diff_threshold is not None and
        null_score - best.score > null_score_diff_threshold)
    if no_answer:
      answers.append(Answer("", -1, null_score if best is None else best.score,
                            best, null_score, candidates))
      continue
    context = features.contexts[row]
    data = context.encode("utf-8")
    begin = int(features.token_offsets[row, best.start, 0])
    limit = int(features.token_offsets[row, best.end, 1])
    text = data[begin:limit].decode("utf-8", errors="replace")
    start_char = len(data[:begin].decode("utf-8", errors="replace"))
    answers.append(Answer(text, start_char, best.score, best, null_score,
                          candidates))
  return answers


# === SQuAD v1.1 metrics (the official evaluation script's) ===


def normalize_answer(text: str) -> str:
  """Lower case, drop punctuation, articles and extra whitespace."""
  text = text.lower()
  text = "".join(ch for ch in text if ch not in set(string.punctuation))
  text = re.sub(r"\b(a|an|the)\b", " ", text)
  return " ".join(text.split())


def squad_exact_match(prediction: str, ground_truths: Sequence[str]) -> float:
  """1.0 if the normalized prediction equals a normalized ground truth."""
  if isinstance(ground_truths, str):
    ground_truths = [ground_truths]
  return float(max(normalize_answer(prediction) == normalize_answer(g)
                   for g in ground_truths))


def squad_f1(prediction: str, ground_truths: Sequence[str]) -> float:
  """Best token-overlap F1 of the prediction against the ground truths."""
  if isinstance(ground_truths, str):
    ground_truths = [ground_truths]

  def f1(truth):
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(
        truth_tokens)
    same = sum(common.values())
    if same == 0:
      return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)

  return max(f1(g) for g in ground_truths)
