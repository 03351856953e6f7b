"""In-memory pretraining examples: BERT's masked-LM + next-sentence data.

The project's one generator of pretraining examples (NumPy, no TF ops): from
tokenized lines in corpus order to padded arrays with the feature names of
tf-models-official's BERT pretraining data, following google-research
`bert/create_pretraining_data.py`:

* Consecutive lines are gathered into a chunk of about `seq_length - 3`
  pieces (`short_seq_prob` of the chunks get a random shorter target, so
  the model also sees short inputs), split at a line boundary into A and B;
  with probability `random_next_prob` (always for a one-line chunk) B is
  replaced by lines from a random place of the corpus, next-sentence label
  1 ("random"), else 0 ("is next"); the unused lines of the chunk start the
  next one. A pair too long is truncated one piece at a time from the longer
  side, at its front or back at random.
* `[CLS] A [SEP] B [SEP]`, token types 0 for `[CLS] A [SEP]`, 1 after.
* `masked_lm_prob` (15%) of the pieces, at least 1 and at most
  `max_predictions`, are chosen among all but `[CLS]`, `[SEP]`, `[PAD]` and
  `[MASK]`; of those 80% are replaced by `[MASK]`, 10% by a random
  non-special piece, 10% left unchanged. The labels are the original pieces.

Lines are not documents: a "random" B is drawn from anywhere in the corpus,
so rarely it is the true continuation. Everything is drawn from the
`numpy.random.Generator` passed in: equal seeds give equal examples.

Example:

>>> special = special_ids(vocab)  # vocab: the list of tokens
>>> lines = tokenize_lines(corpus_lines, "vocab.txt")
>>> batch = make_pretraining_examples(np.random.default_rng(0), lines,
...                                   special, len(vocab), seq_length=64,
...                                   max_predictions=10)
>>> pretrainer(batch.inputs())["mlm_logits"]   # [n, 10, vocab]
"""

import dataclasses
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

from mobilebert_tf import vocab as vocab_lib
from mobilebert_tf.encoder import ENCODER_INPUTS

# BERT's masking: the fraction of pieces predicted, and of those the
# fractions replaced by [MASK] and by a random piece (the rest unchanged).
MASKED_LM_PROB = 0.15
MASK_TOKEN_PROB = 0.8
RANDOM_TOKEN_PROB = 0.1
SHORT_SEQ_PROB = 0.1
RANDOM_NEXT_PROB = 0.5

# Held-out evaluation examples (`make_eval_examples`): the fraction of
# pieces masked, and the seed.
EVAL_MASK_RATE = 0.15
EVAL_SEED = 1234


class SpecialIds(NamedTuple):
  """The ids of the special tokens (`mobilebert_tf.vocab.SPECIAL_TOKENS`)."""
  pad: int
  unk: int
  cls: int
  sep: int
  mask: int


def special_ids(vocab: Sequence[str]) -> SpecialIds:
  """The special token ids of a vocabulary (a list of tokens).

  Raises:
    ValueError: a special token is missing.
  """
  index = {token: i for i, token in enumerate(vocab)}
  missing = [t for t in vocab_lib.SPECIAL_TOKENS if t not in index]
  if missing:
    raise ValueError(
        f"The vocabulary lacks the special tokens {', '.join(missing)}; a "
        f"BERT vocabulary has all of {', '.join(vocab_lib.SPECIAL_TOKENS)}. "
        f"Received: a vocabulary of {len(vocab)} tokens starting "
        f"{list(vocab[:5])!r}")
  return SpecialIds(*(index[t] for t in vocab_lib.SPECIAL_TOKENS))


@dataclasses.dataclass(frozen=True)
class Batch:
  """Pretraining examples: NumPy arrays with a leading example axis.

  The names are those of tf-models-official's BERT pretraining features.
  Rows are padded with 0: ids/mask/types to `seq`, the `P` prediction slots
  with position 0, id 0 and weight 0.

  Attributes:
    input_word_ids: int32 `[n, seq]`. With the masking applied.
    input_mask: int32 `[n, seq]`. 1 for real tokens, 0 for padding.
    input_type_ids: int32 `[n, seq]`. 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
    masked_lm_positions: int32 `[n, P]`. Predicted positions, ascending.
    masked_lm_ids: int32 `[n, P]`. The original piece at each position.
    masked_lm_weights: float32 `[n, P]`. 1 for real predictions, 0 for pads.
    next_sentence_labels: int32 `[n]`. 0: B follows A; 1: B is random.
  """
  input_word_ids: np.ndarray
  input_mask: np.ndarray
  input_type_ids: np.ndarray
  masked_lm_positions: np.ndarray
  masked_lm_ids: np.ndarray
  masked_lm_weights: np.ndarray
  next_sentence_labels: np.ndarray

  def __len__(self):
    return len(self.input_word_ids)

  def features(self) -> Dict[str, np.ndarray]:
    """All arrays by name (e.g. for `tf.data.Dataset.from_tensor_slices`)."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

  def inputs(self) -> Dict[str, np.ndarray]:
    """The pretrainer's inputs: the encoder's plus `masked_lm_positions`."""
    names = ENCODER_INPUTS + ("masked_lm_positions",)
    return {name: getattr(self, name) for name in names}

  def take(self, index) -> "Batch":
    """The examples at `index` (a slice or an array of row indices)."""
    return Batch(**{name: array[index]
                    for name, array in self.features().items()})


def tokenize_lines(lines: Sequence[str], vocab_file: str,
                   do_lower_case: bool = True,
                   batch_size: int = 4096) -> List[np.ndarray]:
  """Word-piece ids of each line, with the project's BERT tokenizer.

  The ids are those the exported preprocessor gives (without `[CLS]` and
  `[SEP]`).

  Args:
    lines: sequence of str.
    vocab_file: str. The vocabulary.
    do_lower_case: bool. Defaults to True.
    batch_size: int. Lines per tokenizer call. Defaults to 4096.

  Returns:
    A list of int32 arrays `[pieces]`, one per line.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import preprocessing  # pylint: disable=g-import-not-at-top
  tokenizer = preprocessing.BertWordpieceTokenizer(
      vocab_file=vocab_file, lower_case=do_lower_case)
  result = []
  for start in range(0, len(lines), batch_size):
    batch = tf.constant(list(lines[start:start + batch_size]))
    pieces = tokenizer(batch).merge_dims(1, 2)  # [batch, (pieces)]
    result.extend(np.asarray(row, np.int32) for row in pieces.to_list())
  return result


def _replacement_ids(special: SpecialIds, vocab_size: int) -> np.ndarray:
  """The ids a masked piece may be replaced with: all but the special ones."""
  return np.setdiff1d(np.arange(vocab_size), np.asarray(special))


def _mask_pieces(rng, ids, candidates, num_predict, special, replacements,
                 random_replace):
  """Masks `num_predict` of the `candidates` positions of `ids` in place.

  With `random_replace` 80% become `[MASK]`, 10% a random id of
  `replacements`, 10% stay; without, all become `[MASK]`.

  Returns:
    (positions, labels), sorted by position.
  """
  chosen = np.sort(rng.choice(candidates, num_predict, replace=False))
  labels = ids[chosen].copy()
  for pos in chosen:
    draw = rng.random() if random_replace else 0.0
    if draw < MASK_TOKEN_PROB:
      ids[pos] = special.mask
    elif draw < MASK_TOKEN_PROB + RANDOM_TOKEN_PROB:
      ids[pos] = replacements[rng.integers(0, len(replacements))]
    # else: keep the original piece.
  return chosen, labels


def _pack(examples, seq_length, max_predictions) -> Batch:
  """Stacks `(ids, types, positions, labels, nsp)` tuples into a `Batch`."""
  n = len(examples)
  out = Batch(np.zeros([n, seq_length], np.int32),
              np.zeros([n, seq_length], np.int32),
              np.zeros([n, seq_length], np.int32),
              np.zeros([n, max_predictions], np.int32),
              np.zeros([n, max_predictions], np.int32),
              np.zeros([n, max_predictions], np.float32),
              np.zeros([n], np.int32))
  for row, (ids, types, positions, labels, nsp) in enumerate(examples):
    out.input_word_ids[row, :len(ids)] = ids
    out.input_mask[row, :len(ids)] = 1
    out.input_type_ids[row, :len(ids)] = types
    out.masked_lm_positions[row, :len(positions)] = positions
    out.masked_lm_ids[row, :len(positions)] = labels
    out.masked_lm_weights[row, :len(positions)] = 1.0
    out.next_sentence_labels[row] = nsp
  return out


def _truncate_pair(rng, a, b, max_tokens):
  """BERT's truncation: drop from the longer side's front or back."""
  a, b = list(a), list(b)
  while len(a) + len(b) > max_tokens:
    longer = a if len(a) > len(b) else b
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()
  return a, b


def _check_ids(lines, vocab_size: int) -> None:
  for i, line in enumerate(lines):
    if len(line) and (np.min(line) < 0 or np.max(line) >= vocab_size):
      raise ValueError(
          f"`lines[{i}]` has ids outside [0, vocab_size={vocab_size}). "
          f"Received: min {np.min(line)}, max {np.max(line)}. Tokenize with "
          "the vocabulary of the model.")


def _check_positive(**values) -> None:
  for name, value in values.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
        or value < 1:
      raise ValueError(f"`{name}` must be a positive integer. Received: "
                       f"{name}={value!r}")


def make_pretraining_examples(rng: np.random.Generator,
                              lines: Sequence[np.ndarray],
                              special: SpecialIds, vocab_size: int,
                              seq_length: int, max_predictions: int,
                              masked_lm_prob: float = MASKED_LM_PROB,
                              short_seq_prob: float = SHORT_SEQ_PROB,
                              random_next_prob: float = RANDOM_NEXT_PROB
                              ) -> Batch:
  """One pass of masked-LM + next-sentence examples over ordered lines.

  See the module docstring for the recipe. Call again for the next epoch:
  pairs and masks are redrawn.

  Args:
    rng: `numpy.random.Generator`. The only source of randomness.
    lines: sequence of int arrays, the tokenized lines in corpus order
      (`tokenize_lines`); empty lines are skipped.
    special: `SpecialIds` of the vocabulary (`special_ids`).
    vocab_size: int. Size of the vocabulary (random replacements are drawn
      from its non-special ids).
    seq_length: int. Length of the examples, padded; at least 5.
    max_predictions: int. Prediction slots per example, padded.
    masked_lm_prob: float in (0, 1]. Fraction of pieces predicted. Defaults
      to 0.15.
    short_seq_prob: float in [0, 1]. Fraction of chunks with a random
      shorter target length. Defaults to 0.1.
    random_next_prob: float in [0, 1]. Fraction of pairs whose B is random
      text. Defaults to 0.5.

  Returns:
    A `Batch` with one row per example, in a random order.

  Raises:
    ValueError: no non-empty line, ids outside the vocabulary, or an
      argument out of range.
  """
  _check_positive(vocab_size=vocab_size, seq_length=seq_length,
                  max_predictions=max_predictions)
  if seq_length < 5:
    raise ValueError("`seq_length` must be >= 5 ([CLS] A [SEP] B [SEP] with "
                     f"at least one piece each). Received: {seq_length}")
  if not 0.0 < masked_lm_prob <= 1.0:
    raise ValueError("`masked_lm_prob` must be in (0, 1]. Received: "
                     f"{masked_lm_prob!r}")
  for name, value in (("short_seq_prob", short_seq_prob),
                      ("random_next_prob", random_next_prob)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"`{name}` must be in [0, 1]. Received: {value!r}")
  lines = [np.asarray(line) for line in lines if len(line)]
  if not lines:
    raise ValueError("`lines` has no non-empty line; pass the tokenized "
                     "corpus (`tokenize_lines`).")
  _check_ids(lines, vocab_size)
  replacements = _replacement_ids(special, vocab_size)
  never_masked = [special.cls, special.sep, special.pad, special.mask]
  max_tokens = seq_length - 3
  examples = []
  i = 0
  while i < len(lines):
    target = max_tokens if rng.random() >= short_seq_prob else int(
        rng.integers(2, max_tokens + 1))
    chunk, length = [], 0
    while i < len(lines) and length < target:
      chunk.append(lines[i])
      length += len(lines[i])
      i += 1
    a_end = int(rng.integers(1, len(chunk))) if len(chunk) > 1 else 1
    a = np.concatenate(chunk[:a_end])
    if len(chunk) == 1 or rng.random() < random_next_prob:
      nsp = 1  # B is random text.
      want = max(1, target - len(a))
      j = int(rng.integers(0, len(lines)))
      pieces = []
      while j < len(lines) and sum(map(len, pieces)) < want:
        pieces.append(lines[j])
        j += 1
      b = np.concatenate(pieces)
      i -= len(chunk) - a_end  # Use the unused lines in the next chunk.
    else:
      nsp = 0
      b = np.concatenate(chunk[a_end:])
    if len(a) + len(b) > max_tokens:
      a, b = _truncate_pair(rng, a, b, max_tokens)
    if not len(a) or not len(b):
      continue
    ids = np.array([special.cls, *a, special.sep, *b, special.sep], np.int32)
    types = np.array([0] * (len(a) + 2) + [1] * (len(b) + 1), np.int32)
    candidates = np.flatnonzero(~np.isin(ids, never_masked))
    if not len(candidates):
      continue
    num_predict = min(max_predictions, len(candidates),
                      max(1, int(round(len(candidates) * masked_lm_prob))))
    positions, labels = _mask_pieces(rng, ids, candidates, num_predict,
                                     special, replacements,
                                     random_replace=True)
    examples.append((ids, types, positions, labels, nsp))
  order = rng.permutation(len(examples))
  return _pack([examples[k] for k in order], seq_length, max_predictions)


def make_eval_examples(lines: Sequence[np.ndarray], special: SpecialIds,
                       seq_length: int, seed: int = EVAL_SEED,
                       mask_rate: float = EVAL_MASK_RATE) -> Batch:
  """Deterministic masked-LM examples, one line each: `[CLS] line [SEP]`.

  For measuring masked-LM accuracy on held-out text: lines longer than
  `seq_length - 2` pieces are truncated; `mask_rate` of the pieces (at least
  one) are replaced by `[MASK]` (always `[MASK]`: nothing random or kept);
  empty lines are skipped; the next-sentence labels are 0.

  Args:
    lines: sequence of int arrays, the tokenized lines.
    special: `SpecialIds` of the vocabulary.
    seq_length: int. Length of the examples, padded; at least 3.
    seed: int. Seed of the positions chosen. Defaults to 1234.
    mask_rate: float in (0, 1]. Defaults to 0.15.

  Returns:
    A `Batch`, one row per non-empty line, in order; `round((seq_length - 2)
    * mask_rate)` (at least 1) prediction slots.
  """
  _check_positive(seq_length=seq_length)
  if seq_length < 3:
    raise ValueError(f"`seq_length` must be >= 3. Received: {seq_length}")
  if not 0.0 < mask_rate <= 1.0:
    raise ValueError(f"`mask_rate` must be in (0, 1]. Received: "
                     f"{mask_rate!r}")
  rng = np.random.default_rng(seed)
  max_predictions = max(1, int(round((seq_length - 2) * mask_rate)))
  examples = []
  for line in lines:
    line = np.asarray(line)[:seq_length - 2]
    if not len(line):
      continue
    ids = np.array([special.cls, *line, special.sep], np.int32)
    num_predict = min(max_predictions,
                      max(1, int(round(len(line) * mask_rate))))
    positions, labels = _mask_pieces(
        rng, ids, np.arange(1, len(ids) - 1), num_predict, special,
        replacements=None, random_replace=False)
    examples.append((ids, np.zeros_like(ids), positions, labels, 0))
  return _pack(examples, seq_length, max_predictions)
