"""SQuAD v1.1 and v2.0 files: examples, training labels, prediction files.

The reading and labelling rules of google-research `run_squad.py`:

- `read_examples`: one example per question of a SQuAD JSON file. For
  training, each answerable question has exactly one answer, and an answer
  whose text is not at its `answer_start` (compared as whitespace-split
  words, as the original) is skipped and counted.
- `answer_positions`: each window's gold start and end position. The answer's
  word pieces run from the first piece of its first whitespace word to the
  last piece of its last, then shrink to the pieces of the answer text where
  it is found among them (the original's "improved answer span"). A window
  that does not hold the whole answer, and an unanswerable question, point
  at `[CLS]` (position 0).
- `prediction_files`: `predictions.json`, `nbest_predictions.json` and, for
  v2.0, `null_odds.json`, in the original's formats.
- `evaluate`: EM and F1 by the official SQuAD v1.1 and v2.0 evaluation
  scripts, as shipped in tf-models-official (`official.nlp.tools`).

Example:

>>> examples, skipped = read_examples("train-v1.1.json", is_training=True)
>>> inputs, features = qa.prepare_qa_inputs(preprocessor,
...     [e.question for e in examples], [e.context for e in examples])
>>> starts, ends = answer_positions(preprocessor, examples, features)
"""

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mobilebert_tf import qa


class SquadError(ValueError):
  """A SQuAD file that cannot be read; the message names the file and fix."""


@dataclasses.dataclass(frozen=True)
class SquadExample:
  """One question of a SQuAD file.

  Attributes:
    qas_id: str. The question's `id`.
    question: str.
    context: str. Its paragraph's `context`.
    answer_text: str. The training answer ("" for none or unanswerable).
    answer_start: int. Its character offset in `context` (-1 for none).
    is_impossible: bool. SQuAD 2.0's unanswerable question.
  """
  qas_id: str
  question: str
  context: str
  answer_text: str = ""
  answer_start: int = -1
  is_impossible: bool = False


def _is_whitespace(char: str) -> bool:
  # The original's rule: Python's own whitespace would also split at U+00A0.
  return char in " \t\r\n" or ord(char) == 0x202F


def whitespace_words(text: str) -> Tuple[List[str], List[int]]:
  """The original's whitespace split: words, and each character's word.

  Returns:
    `(words, char_to_word)`: `char_to_word[i]` is the word of character `i`
    (a whitespace character belongs to the word before it, -1 before the
    first).
  """
  words, char_to_word, after_space = [], [], True
  for char in text:
    if _is_whitespace(char):
      after_space = True
    else:
      if after_space:
        words.append(char)
      else:
        words[-1] += char
      after_space = False
    char_to_word.append(len(words) - 1)
  return words, char_to_word


def _answer_found(context: str, text: str, start: int) -> bool:
  """Whether the answer's words at `start` contain the answer text."""
  if not text or start < 0 or start + len(text) > len(context):
    return False
  words, char_to_word = whitespace_words(context)
  first, last = char_to_word[start], char_to_word[start + len(text) - 1]
  actual = " ".join(words[max(first, 0):last + 1])
  return actual.find(" ".join(text.split())) != -1


def _field(obj, key, kind, where, path):
  if not isinstance(obj, dict) or key not in obj:
    raise SquadError(f"{path}: {where} has no {key!r}; is this a SQuAD file "
                     "(data / paragraphs / context, qas / id, question)?")
  value = obj[key]
  if not isinstance(value, kind):
    raise SquadError(f"{path}: {where}'s {key!r} is a "
                     f"{type(value).__name__}, not a {kind.__name__}")
  return value


def load_dataset(path: str) -> list:
  """The `data` list of a SQuAD JSON file.

  Raises:
    SquadError: the file is not JSON or has no `data` list.
    OSError: it cannot be read.
  """
  with open(path, "rb") as f:
    raw = f.read()
  try:
    document = json.loads(raw.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise SquadError(f"{path} is not UTF-8 (byte {e.start}); SQuAD files "
                     "are UTF-8 JSON") from None
  except json.JSONDecodeError as e:
    raise SquadError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} "
                     f"column {e.colno}") from None
  return _field(document, "data", list, "the file", path)


def read_examples(path: str, is_training: bool,
                  version_2_with_negative: bool = False,
                  dataset: Optional[list] = None
                  ) -> Tuple[List[SquadExample], int]:
  """The questions of a SQuAD file, in file order.

  Args:
    path: str. A SQuAD v1.1 or v2.0 JSON file.
    is_training: bool. Read the answers as training labels.
    version_2_with_negative: bool. Read `is_impossible` (SQuAD 2.0).
    dataset: list or None. The file's `data` list if already loaded
      (`load_dataset(path)`): then `path` only names the file in messages.

  Returns:
    `(examples, skipped)`: the examples, and the number of training answers
    skipped because their text is not at their `answer_start`.

  Raises:
    SquadError: malformed JSON, a missing field, an empty context, or (for
      training) an answerable question without exactly one answer.
  """
  examples, skipped = [], 0
  if dataset is None:
    dataset = load_dataset(path)
  for article in dataset:
    for paragraph in _field(article, "paragraphs", list, "an article", path):
      context = _field(paragraph, "context", str, "a paragraph", path)
      for item in _field(paragraph, "qas", list, "a paragraph", path):
        qas_id = str(_field(item, "id", (str, int), "a question", path))
        question = _field(item, "question", str, f"question {qas_id}", path)
        if not context.strip():
          raise SquadError(f"{path}: question {qas_id} has an empty context; "
                           "give its paragraph a context or remove it")
        impossible = bool(item.get("is_impossible", False)) and (
            version_2_with_negative)
        if not is_training or impossible:
          examples.append(SquadExample(qas_id, question, context,
                                       is_impossible=impossible))
          continue
        answers = _field(item, "answers", list, f"question {qas_id}", path)
        if len(answers) != 1:
          raise SquadError(
              f"{path}: training question {qas_id} has {len(answers)} answers;"
              " each answerable training question needs exactly 1"
              + ("" if version_2_with_negative else
                 " (a SQuAD 2.0 file? pass --version_2_with_negative)"))
        where = f"question {qas_id}'s answer"
        text = _field(answers[0], "text", str, where, path)
        start = _field(answers[0], "answer_start", int, where, path)
        if not _answer_found(context, text, start):
          skipped += 1
          continue
        examples.append(SquadExample(qas_id, question, context, text, start))
  return examples, skipped


def _improve_span(pieces, start: int, end: int, answer_ids) -> Tuple[int, int]:
  """The original's improved span: the first, longest match of the answer's
  pieces inside `pieces[start:end + 1]`, else the span unchanged."""
  answer = list(answer_ids)
  for new_start in range(start, end + 1):
    for new_end in range(end, new_start - 1, -1):
      if list(pieces[new_start:new_end + 1]) == answer:
        return new_start, new_end
  return start, end


def answer_positions(preprocessor, examples: Sequence[SquadExample],
                     features: qa.QAFeatures) -> Tuple[np.ndarray, np.ndarray]:
  """The gold start and end position of each window (0: `[CLS]`).

  Args:
    preprocessor: the one that made `features` (for the answer texts).
    examples: the `SquadExample`s the features were made from, in order.
    features: from `qa.prepare_qa_inputs`.

  Returns:
    int32 `(start_positions, end_positions)`, each `[windows]`.
  """
  answer_ids = qa.word_piece_ids(preprocessor,
                                 [e.answer_text for e in examples])
  spans = []  # Per example: its answer's (first, last) piece, or None.
  for index, example in enumerate(examples):
    if example.is_impossible or example.answer_start < 0:
      spans.append(None)
      continue
    _, char_to_word = whitespace_words(example.context)
    offsets = features.piece_char_offsets[index]
    piece_word = np.asarray(char_to_word, np.int64)[offsets[:, 0]]
    first_word = char_to_word[example.answer_start]
    last_word = char_to_word[example.answer_start +
                             len(example.answer_text) - 1]
    start = int(np.searchsorted(piece_word, first_word, side="left"))
    end = int(np.searchsorted(piece_word, last_word, side="right")) - 1
    spans.append(_improve_span(features.context_ids[index], start, end,
                               answer_ids[index]))
  starts = np.zeros(len(features), np.int32)
  ends = np.zeros(len(features), np.int32)
  for row, index in enumerate(features.example_index):
    span = spans[index]
    first = features.window_start[row]
    last = first + features.window_length[row] - 1
    if span is None or span[0] < first or span[1] > last:
      continue  # Not (wholly) in this window: [CLS].
    shift = features.context_position[row] - first
    starts[row], ends[row] = span[0] + shift, span[1] + shift
  return starts, ends


def prediction_files(examples: Sequence[SquadExample],
                     answers: Sequence[qa.Answer],
                     version_2_with_negative: bool) -> Dict[str, object]:
  """The original's output files, as JSON-ready objects by file name.

  Returns:
    `predictions.json`: {id: answer text}; `nbest_predictions.json`:
    {id: [{text, probability, start_logit, end_logit}, ...]}; with
    `version_2_with_negative` also `null_odds.json`: {id: score_diff}.
  """
  predictions, nbest, null_odds = {}, {}, {}
  for example, answer in zip(examples, answers):
    predictions[example.qas_id] = answer.text
    nbest[example.qas_id] = [
        dict(text=c.text, probability=c.probability,
             start_logit=c.start_logit, end_logit=c.end_logit)
        for c in answer.n_best] or [dict(text="empty", probability=1.0,
                                         start_logit=0.0, end_logit=0.0)]
    null_odds[example.qas_id] = answer.score_diff
  files = {"predictions.json": predictions,
           "nbest_predictions.json": nbest}
  if version_2_with_negative:
    files["null_odds.json"] = null_odds
  return files


def evaluate(dataset: list, predictions: Dict[str, str],
             null_odds: Dict[str, float] = None) -> Dict[str, float]:
  """EM and F1 by the official evaluation scripts (tf-models-official's).

  Args:
    dataset: the `data` list of the SQuAD file (`load_dataset`).
    predictions: {id: answer text}.
    null_odds: {id: score_diff} for SQuAD 2.0 (the v2.0 script's
      `--na-prob-file`), or None for SQuAD 1.1.

  Returns:
    v1.1: {"exact_match", "f1"} in percent, over all questions of the file.
    v2.0: the v2.0 script's dict ("exact", "f1", "HasAns_*", "NoAns_*",
    and "final_exact", "final_f1" with their best null-odds thresholds
    "final_*_thresh"), over the predicted questions.
  """
  # pylint: disable=g-import-not-at-top
  from official.nlp.tools import squad_evaluate_v1_1
  from official.nlp.tools import squad_evaluate_v2_0
  # pylint: enable=g-import-not-at-top
  if null_odds is None:
    result = squad_evaluate_v1_1.evaluate(dataset, predictions)
    return {"exact_match": 100.0 * result["exact_match"],
            "f1": 100.0 * result["final_f1"]}
  return dict(squad_evaluate_v2_0.evaluate(dataset, predictions, null_odds))
