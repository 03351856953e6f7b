"""Extractive question answering: windows over long contexts, and answers.

The algorithm of the SQuAD scripts (google-research `run_squad.py`), for any
question and context:

1. `prepare_qa_inputs`: tokenize with the project's preprocessor and pack
   `[CLS] question [SEP] context-window [SEP] [PAD]...` (the window has token
   type 1). A context longer than one window is covered by several windows,
   each starting `doc_stride` word pieces after the previous one; a word
   piece seen in several windows has its "max context" in the one where
   `min(left, right) + 0.01 * window_length` is largest. Each context piece
   keeps its character offsets into its context string.
2. Run `MobileBertForQuestionAnswering` on the windows -> `start_logits`,
   `end_logits`.
3. `best_spans`: per window, pair the `n_best_size` highest start logits with
   the `n_best_size` highest end logits (over all positions, as the scripts);
   keep pairs inside the context, starting at a max-context piece, with
   `end >= start` and at most `max_answer_length` pieces.
4. `extract_answers`: rank the spans of all windows of a question by
   `start_logit + end_logit`, cut each one's text from the context with the
   offsets (an exact substring of the context, where the scripts re-align
   whitespace-split words heuristically), drop repeated texts, keep
   `n_best_size`, and give their softmax probabilities. SQuAD 2.0: the null
   answer "" (`[CLS]` start and end; its score is the lowest over the
   windows) competes, and wins when its score exceeds the best span's by more
   than `null_score_diff_threshold`.

`squad_exact_match` and `squad_f1` are the official SQuAD v1.1 text metrics.

Example:

>>> inputs, features = prepare_qa_inputs(preprocessor, ["who wrote it?"],
...                                      ["it was written by ada."], 32)
>>> out = model(inputs)  # One row per window.
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

# The scripts' tie-break bonus of a longer window in the max-context rule.
WINDOW_LENGTH_WEIGHT = 0.01
# Strings per tokenizer call (bounds the ragged intermediates).
_TOKENIZE_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class Span:
  """A candidate answer in one window: positions `start..end` (inclusive).

  Attributes:
    start: int. First token position in the packed window.
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
class Candidate:
  """One of the n best answers of a question.

  Attributes:
    text: str. A substring of the context ("" for the null answer).
    start_char: int. Its character offset in the context (-1 for "").
    probability: float. Softmax of the n best scores.
    start_logit: float.
    end_logit: float.
    window: int. Row of the window in the packed inputs (-1 if none).
    start: int. Token position in that window (0 for the null answer).
    end: int.
  """
  text: str
  start_char: int
  probability: float
  start_logit: float
  end_logit: float
  window: int
  start: int
  end: int

  @property
  def score(self) -> float:
    return self.start_logit + self.end_logit


@dataclasses.dataclass(frozen=True)
class Answer:
  """The answer to one question.

  Attributes:
    text: str. The answer, a substring of the context ("" for no answer).
    start_char: int. Character offset of `text` in the context (-1 for no
      answer).
    score: float. The best span's `start_logit + end_logit` (the null score
      if there is no span).
    null_score: float. The lowest `start_logits[0] + end_logits[0]` over the
      question's windows.
    score_diff: float. `null_score - score`: SQuAD 2.0's "null odds"
      (answer "" above the threshold).
    n_best: the `Candidate`s, best first.
  """
  text: str
  start_char: int
  score: float
  null_score: float
  score_diff: float
  n_best: List[Candidate]


@dataclasses.dataclass
class QAFeatures:
  """The windows of `prepare_qa_inputs`, and what answers are made from.

  Row `i` of the packed inputs is window `window_index[i]` of example
  `example_index[i]`.

  Attributes:
    contexts: list of str, the contexts as given.
    example_index: int `[windows]`, the example of each window.
    window_index: int `[windows]`, its number among the example's windows.
    window_start: int `[windows]`, the index of its first context word piece
      in `context_ids[example]`.
    window_length: int `[windows]`, its context word pieces.
    context_position: int `[windows]`, the position of its first context
      piece in the packed row (after `[CLS] question [SEP]`).
    context_mask: bool `[windows, seq]`, True at the window's context pieces
      (not at the final `[SEP]`).
    max_context: bool `[windows, seq]`, True where the context piece has its
      max context in this window (a span may start only there).
    char_offsets: int64 `[windows, seq, 2]`: for a context piece, the start
      and limit character offsets of its text in the context string; -1
      elsewhere.
    context_ids: per example, int32 `[pieces]`: the whole context's word
      pieces.
    piece_char_offsets: per example, int64 `[pieces, 2]`: their character
      offsets.
  """
  contexts: List[str]
  example_index: np.ndarray
  window_index: np.ndarray
  window_start: np.ndarray
  window_length: np.ndarray
  context_position: np.ndarray
  context_mask: np.ndarray
  max_context: np.ndarray
  char_offsets: np.ndarray
  context_ids: List[np.ndarray]
  piece_char_offsets: List[np.ndarray]

  def __len__(self):
    return len(self.example_index)


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


def best_spans(start_logits, end_logits, context_mask, start_mask=None,
               n_best_size: int = 20,
               max_answer_length: int = 30) -> List[List[Span]]:
  """The valid answer spans among the top logits of each row (window).

  As the SQuAD scripts: the `n_best_size` highest start logits and the
  `n_best_size` highest end logits are taken over all positions (ties: the
  earlier position first); a pair is valid if both lie in the context, the
  start is allowed by `start_mask`, `start <= end`, the span has at most
  `max_answer_length` tokens and crosses no non-context token (so no span
  reaches into the question or past a `[SEP]`).

  Args:
    start_logits, end_logits: float `[batch, seq]`.
    context_mask: bool `[batch, seq]` (see `context_mask`).
    start_mask: bool `[batch, seq]` or None: where a span may start
      (`QAFeatures.max_context`). Defaults to `context_mask`.
    n_best_size: int. Start and end candidates per row. Defaults to 20.
    max_answer_length: int. In tokens. Defaults to 30.

  Returns:
    Per row, the valid `Span`s (at most `n_best_size ** 2`), best first;
    equal scores keep the scripts' order (by start rank, then end rank).

  Raises:
    ValueError: mismatched shapes or non-positive sizes.
  """
  _check_positive("n_best_size", n_best_size)
  _check_positive("max_answer_length", max_answer_length)
  start_logits = np.asarray(start_logits, np.float64)
  end_logits = np.asarray(end_logits, np.float64)
  context = np.asarray(context_mask, bool)
  starts_ok = context if start_mask is None else (
      np.asarray(start_mask, bool) & context)
  if not (start_logits.shape == end_logits.shape == context.shape ==
          starts_ok.shape) or start_logits.ndim != 2:
    raise ValueError(
        "`start_logits`, `end_logits`, `context_mask` and `start_mask` must "
        f"all be [batch, seq]. Received: {start_logits.shape}, "
        f"{end_logits.shape}, {context.shape}, {starts_ok.shape}")
  # A span crosses no non-context token: a prefix count of gaps per row.
  gaps = np.cumsum(~context, axis=1)
  results = []
  for row in range(start_logits.shape[0]):
    # Stable sorts: ties go to the earlier position, as the scripts'.
    starts = np.argsort(-start_logits[row], kind="stable")[:n_best_size]
    ends = np.argsort(-end_logits[row], kind="stable")[:n_best_size]
    candidates = []
    for s in starts:
      if not starts_ok[row, s]:
        continue
      for e in ends:
        if e < s or e - s + 1 > max_answer_length or not context[row, e]:
          continue
        if gaps[row, e] != gaps[row, s]:
          continue
        sl, el = float(start_logits[row, s]), float(end_logits[row, e])
        candidates.append(Span(int(s), int(e), sl + el, sl, el))
    candidates.sort(key=lambda span: -span.score)  # Stable.
    results.append(candidates)
  return results


def word_piece_ids(preprocessor, texts: Sequence[str]) -> List[np.ndarray]:
  """The flat int32 word-piece ids of each text (`preprocessor.tokenize`)."""
  return _tokenize(preprocessor.tokenize, list(texts), with_offsets=False)[0]


def _tokenize(tokenize, texts, with_offsets):
  """Flat word-piece ids (and byte offsets) of each text, in chunks."""
  ids, starts, limits = [], [], []
  for begin in range(0, len(texts), _TOKENIZE_CHUNK):
    chunk = tf.constant([t.encode("utf-8", "surrogatepass")
                         for t in texts[begin:begin + _TOKENIZE_CHUNK]])
    out = tokenize(chunk)
    merge = lambda rt: rt.merge_dims(-2, -1)
    if not with_offsets:
      ids += [np.asarray(r, np.int32) for r in merge(out).to_list()]
      continue
    ids += [np.asarray(r, np.int32) for r in merge(out[0]).to_list()]
    starts += merge(out[1]).to_list()
    limits += merge(out[2]).to_list()
  return ids, starts, limits


def _char_offsets(text: str, byte_starts, byte_limits) -> np.ndarray:
  """Byte offsets into `text`'s UTF-8 -> character offsets `[pieces, 2]`."""
  if text.isascii():
    return np.stack([np.asarray(byte_starts, np.int64),
                     np.asarray(byte_limits, np.int64)], -1).reshape(-1, 2)
  sizes = [len(c.encode("utf-8", "surrogatepass")) for c in text]
  char_of_byte = np.repeat(np.arange(len(text)), sizes)
  char_of_byte = np.append(char_of_byte, len(text))  # The end of the text.
  starts = char_of_byte[np.asarray(byte_starts, np.int64)]
  limits = char_of_byte[np.asarray(byte_limits, np.int64) - 1] + 1
  return np.stack([starts, limits], -1).reshape(-1, 2)


def window_starts(num_pieces: int, room: int, doc_stride: int) -> List[int]:
  """The first piece of each window over `num_pieces` context pieces.

  Windows hold `room` pieces; each starts `min(room, doc_stride)` pieces
  after the previous one; the last one ends at the context's end.
  """
  starts, start = [], 0
  while start < num_pieces:
    starts.append(start)
    if start + room >= num_pieces:
      break
    start += min(room, doc_stride)
  return starts


def max_context_window(num_pieces: int, starts: Sequence[int],
                       room: int) -> np.ndarray:
  """For each piece, the window where it has the most context (the scripts'
  `min(left, right) + 0.01 * length`, the first window on ties)."""
  best = np.full(num_pieces, -1, np.int64)
  best_score = np.full(num_pieces, -np.inf)
  for window, start in enumerate(starts):
    length = min(room, num_pieces - start)
    position = np.arange(start, start + length)
    score = np.minimum(position - start, start + length - 1 - position) + (
        WINDOW_LENGTH_WEIGHT * length)
    better = score > best_score[position]
    best[position[better]] = window
    best_score[position[better]] = score[better]
  return best


def prepare_qa_inputs(preprocessor, questions: Sequence[str],
                      contexts: Sequence[str], seq_length: int = 384,
                      max_query_length: int = 64, doc_stride: int = 128):
  """Packs question/context pairs into windows for the QA model.

  `[CLS] question [SEP] window [SEP] [PAD]...`; token types 0 for
  `[CLS] question [SEP]`, 1 for `window [SEP]`. The question is cut to
  `max_query_length` word pieces; the context is covered by windows of the
  `seq_length - len(question) - 3` pieces left, `doc_stride` apart.

  Args:
    preprocessor: the project's preprocessor (`preprocessing.build_preprocessor`
      or its `hub.load`-ed SavedModel); uses `.tokenize`,
      `.tokenize_with_offsets` and the special-token ids.
    questions: list of str.
    contexts: list of str, as many (repeated contexts are tokenized once).
    seq_length: int. Packed length. Defaults to 384.
    max_query_length: int. Defaults to 64.
    doc_stride: int. Pieces between window starts. Defaults to 128.

  Returns:
    `(inputs, features)`: a dict of int32 `[windows, seq_length]` encoder
    inputs (`input_word_ids`, `input_mask`, `input_type_ids`), and the
    `QAFeatures` for `extract_answers`.

  Raises:
    ValueError: different numbers of questions and contexts, non-positive
      sizes, or a `seq_length` that leaves no room for the context.
  """
  questions, contexts = list(questions), list(contexts)
  if len(questions) != len(contexts):
    raise ValueError("`questions` and `contexts` must have the same length. "
                     f"Received: {len(questions)} and {len(contexts)}")
  for name, value in (("seq_length", seq_length),
                      ("max_query_length", max_query_length),
                      ("doc_stride", doc_stride)):
    _check_positive(name, value)
  special = preprocessing.special_token_ids(preprocessor.tokenize)
  cls, sep, pad = (special["start_of_sequence_id"],
                   special["end_of_segment_id"], special["padding_id"])
  unique = list(dict.fromkeys(contexts))
  context_ids, starts, limits = _tokenize(preprocessor.tokenize_with_offsets,
                                          unique, with_offsets=True)
  by_context = {c: i for i, c in enumerate(unique)}
  piece_offsets = [_char_offsets(c, s, l)
                   for c, s, l in zip(unique, starts, limits)]
  question_ids = word_piece_ids(preprocessor, questions)

  rows = []  # (example, window, start, length, query)
  max_context = []
  for example, question in enumerate(question_ids):
    query = question[:max_query_length]
    room = seq_length - len(query) - 3
    if room < 1:
      raise ValueError(
          f"`seq_length` ({seq_length}) leaves no room for the context after "
          f"a question of {len(query)} word pieces (example {example}); "
          "raise seq_length or lower max_query_length.")
    num_pieces = len(context_ids[by_context[contexts[example]]])
    starts_ = window_starts(num_pieces, room, doc_stride) or [0]
    best = max_context_window(num_pieces, starts_, room)
    for window, start in enumerate(starts_):
      rows.append((example, window, start,
                   min(room, num_pieces - start), query))
      max_context.append(best)

  n = len(rows)
  word_ids = np.full((n, seq_length), pad, np.int32)
  input_mask = np.zeros((n, seq_length), np.int32)
  type_ids = np.zeros((n, seq_length), np.int32)
  offsets = np.full((n, seq_length, 2), -1, np.int64)
  mask = np.zeros((n, seq_length), bool)
  max_mask = np.zeros((n, seq_length), bool)
  fields = {k: np.zeros(n, np.int64) for k in (
      "example_index", "window_index", "window_start", "window_length",
      "context_position")}
  for row, (example, window, start, length, query) in enumerate(rows):
    ids = context_ids[by_context[contexts[example]]]
    first = len(query) + 2  # The first context position.
    total = first + length + 1
    word_ids[row, 0] = cls
    word_ids[row, 1:first - 1] = query
    word_ids[row, first - 1] = sep
    word_ids[row, first:first + length] = ids[start:start + length]
    word_ids[row, first + length] = sep
    input_mask[row, :total] = 1
    type_ids[row, first:total] = 1
    mask[row, first:first + length] = True
    max_mask[row, first:first + length] = (
        max_context[row][start:start + length] == window)
    offsets[row, first:first + length] = piece_offsets[
        by_context[contexts[example]]][start:start + length]
    for key, value in (("example_index", example), ("window_index", window),
                       ("window_start", start), ("window_length", length),
                       ("context_position", first)):
      fields[key][row] = value
  inputs = dict(input_word_ids=word_ids, input_mask=input_mask,
                input_type_ids=type_ids)
  features = QAFeatures(
      contexts=contexts, context_mask=mask, max_context=max_mask,
      char_offsets=offsets,
      context_ids=[context_ids[by_context[c]] for c in contexts],
      piece_char_offsets=[piece_offsets[by_context[c]] for c in contexts],
      **fields)
  return inputs, features


def _softmax(scores):
  if not scores:
    return []
  scores = np.asarray(scores, np.float64)
  exp = np.exp(scores - scores.max())
  return list(exp / exp.sum())


def extract_answers(start_logits, end_logits, features: QAFeatures,
                    n_best_size: int = 20, max_answer_length: int = 30,
                    null_score_diff_threshold: Optional[float] = None
                    ) -> List[Answer]:
  """The answer of each question, from the logits of all its windows.

  Args:
    start_logits, end_logits: float `[windows, seq]`.
    features: from `prepare_qa_inputs`.
    n_best_size: int. Defaults to 20.
    max_answer_length: int. In tokens. Defaults to 30.
    null_score_diff_threshold: float or None. SQuAD 2.0: the null answer ""
      joins the n best, and is the answer when `score_diff` exceeds the
      threshold. None (SQuAD 1.1) always answers with the best span.
      Defaults to None.

  Returns:
    A list of `Answer`, one per question of `features.contexts`.

  Raises:
    ValueError: logits of another number of windows or length.
  """
  start_logits = np.asarray(start_logits, np.float64)
  end_logits = np.asarray(end_logits, np.float64)
  if start_logits.shape != features.context_mask.shape:
    raise ValueError(
        f"The logits have shape {start_logits.shape}; the features' windows "
        f"{features.context_mask.shape} (one row per window).")
  spans = best_spans(start_logits, end_logits, features.context_mask,
                     start_mask=features.max_context, n_best_size=n_best_size,
                     max_answer_length=max_answer_length)
  windows = collections.defaultdict(list)
  for row, example in enumerate(features.example_index):
    windows[int(example)].append(row)
  version_2 = null_score_diff_threshold is not None
  answers = []
  for example, context in enumerate(features.contexts):
    rows = windows[example]
    null = [start_logits[r, 0] + end_logits[r, 0] for r in rows]
    null_row = rows[int(np.argmin(null))]  # The first lowest, as the scripts.
    null_score = float(min(null))
    ranked = [(span, row) for row in rows for span in spans[row]]
    if version_2:
      ranked.append((Span(0, 0, null_score, float(start_logits[null_row, 0]),
                          float(end_logits[null_row, 0])), null_row))
    ranked.sort(key=lambda item: -item[0].score)  # Stable.
    seen, entries = set(), []
    for span, row in ranked:
      if len(entries) >= n_best_size:
        break
      if span.start > 0:
        begin = int(features.char_offsets[row, span.start, 0])
        limit = int(features.char_offsets[row, span.end, 1])
        text, start_char = context[begin:limit], begin
      else:
        text, start_char = "", -1
      if text in seen:
        continue
      seen.add(text)
      entries.append((text, start_char, span, row))
    if version_2 and "" not in seen:
      entries.append(("", -1, Span(0, 0, null_score,
                                   float(start_logits[null_row, 0]),
                                   float(end_logits[null_row, 0])), null_row))
    probabilities = _softmax([span.score for _, _, span, _ in entries])
    n_best = [Candidate(text, start_char, float(p), span.start_logit,
                        span.end_logit, row, span.start, span.end)
              for (text, start_char, span, row), p in zip(entries,
                                                          probabilities)]
    best = next((c for c in n_best if c.text), None)
    score = best.score if best is not None else null_score
    score_diff = null_score - score
    if best is None or (version_2 and score_diff > null_score_diff_threshold):
      answers.append(Answer("", -1, score, null_score, score_diff, n_best))
    else:
      answers.append(Answer(best.text, best.start_char, score, null_score,
                            score_diff, n_best))
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
