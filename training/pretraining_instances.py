"""Documents -> BERT pretraining instances, as google-research/bert makes them.

The semantics of google-research/bert's `create_pretraining_data.py` (and of
its TF2 port, tf-models-official's `official/nlp/data/
create_pretraining_data.py`), on word-piece ids instead of strings:

* A document is a list of sentences (one input line each), a sentence a
  list of word-piece ids. Per pass over a document, the target length is
  `max_seq_length - 3` ([CLS], [SEP], [SEP]); with probability
  `short_seq_prob` it is a random shorter length in `[2, max_seq_length - 3]`.
* Sentences are gathered into a chunk until it reaches the target (or the
  document ends); the chunk is split at a random sentence boundary into A
  and B. With probability 1/2, or always when the chunk has one sentence, B
  is replaced by sentences from a random start in a random other document
  (next-sentence label 1) and the chunk's unused sentences are put back for
  the next chunk; else the label is 0.
* The longer of A and B loses one piece at a time, from its front or back
  at random, until the pair fits. `[CLS] A [SEP] B [SEP]`, segment ids 0
  for `[CLS] A [SEP]`, 1 after.
* Masked LM: every piece but `[CLS]`/`[SEP]` is a candidate; `min(
  max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))`
  of them are predicted; each becomes `[MASK]` (80%), stays (10%) or
  becomes a random vocabulary id (10%; any id, as in the original). With
  whole-word masking a word's `##` continuation pieces are grouped with its
  first piece; a group is masked entirely or not at all, and groups that
  would exceed the number to predict are skipped.

Every draw comes from the `random.Random` passed in, in the original's
order, so equal seeds give equal instances. One change: a `##` piece right
after `[SEP]` (possible after truncation) starts its own word; the original
grouped it with the last word of segment A, across the `[SEP]`.

Example:

>>> vocab = MaskingVocab.from_tokens(preprocessing.read_vocab("vocab.txt"))
>>> options = InstanceOptions(max_seq_length=128, max_predictions_per_seq=20)
>>> documents = [[[7, 8, 9], [10, 11]], [[12, 13, 14, 15]]]
>>> instances = create_instances(documents, vocab, options, dupe_factor=2,
...                              rng=random.Random(12345))
>>> features = instance_features(instances[0], 128, 20)  # records.to_example
"""

import dataclasses
import random
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from training import pretraining_data

# BERT's masking: of the predicted pieces 80% become [MASK]; of the rest half
# stay and half become a random id (the original's nested draws).
MASK_TOKEN_PROB = 0.8
KEEP_TOKEN_PROB = 0.5
RANDOM_NEXT_PROB = 0.5
# Tries at drawing a random document other than the current one.
RANDOM_DOCUMENT_TRIES = 10
CONTINUATION_PREFIX = "##"

# A sentence: word-piece ids. A document: sentences.
Sentence = List[int]
Document = List[Sentence]


@dataclasses.dataclass(frozen=True)
class MaskingVocab:
  """What the algorithm needs of the vocabulary.

  Attributes:
    cls: int. Id of `[CLS]`.
    sep: int. Id of `[SEP]`.
    mask: int. Id of `[MASK]`.
    size: int. Number of tokens; random replacements are drawn from
      `[0, size)`.
    continuation: tuple of bool, `[size]`. Whether token `i` is a `##`
      continuation piece (for whole-word masking).
  """
  cls: int
  sep: int
  mask: int
  size: int
  continuation: Tuple[bool, ...]

  @classmethod
  def from_tokens(cls, tokens: Sequence[str]) -> "MaskingVocab":
    """From a vocabulary (token `i` has id `i`).

    Raises:
      ValueError: a special token (`[CLS]`, `[SEP]`, `[MASK]`, ...) is
        missing.
    """
    special = pretraining_data.special_ids(tokens)
    return cls(cls=special.cls, sep=special.sep, mask=special.mask,
               size=len(tokens),
               continuation=tuple(t.startswith(CONTINUATION_PREFIX)
                                  for t in tokens))


@dataclasses.dataclass(frozen=True)
class InstanceOptions:
  """The knobs of `create_pretraining_data` (same names and defaults).

  Attributes:
    max_seq_length: int. Length of the records; at least 5 ([CLS] a [SEP] b
      [SEP]). Defaults to 128.
    max_predictions_per_seq: int. Masked-LM slots per record; at least 1.
      Defaults to 20.
    masked_lm_prob: float in (0, 1]. Fraction of the tokens predicted.
      Defaults to 0.15.
    short_seq_prob: float in [0, 1]. Fraction of document passes with a
      random shorter target length. Defaults to 0.1.
    do_whole_word_mask: bool. Mask whole words (a piece and its `##`
      continuations) together. Defaults to False.
  """
  max_seq_length: int = 128
  max_predictions_per_seq: int = 20
  masked_lm_prob: float = 0.15
  short_seq_prob: float = 0.1
  do_whole_word_mask: bool = False

  def __post_init__(self):
    self.validate()

  def validate(self) -> None:
    """Raises ValueError naming the first option out of range."""
    for name, minimum in (("max_seq_length", 5),
                          ("max_predictions_per_seq", 1)):
      value = getattr(self, name)
      if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
          or value < minimum):
        extra = (" ([CLS] A [SEP] B [SEP] needs one piece each of A and B)"
                 if name == "max_seq_length" else "")
        raise ValueError(f"`{name}` must be an integer >= {minimum}{extra}. "
                         f"Received: {name}={value!r}")
    if not 0.0 < self.masked_lm_prob <= 1.0:
      raise ValueError("`masked_lm_prob` must be in (0, 1]. Received: "
                       f"masked_lm_prob={self.masked_lm_prob!r}")
    if not 0.0 <= self.short_seq_prob <= 1.0:
      raise ValueError("`short_seq_prob` must be in [0, 1]. Received: "
                       f"short_seq_prob={self.short_seq_prob!r}")

  @property
  def rate_predictions(self) -> int:
    """Predictions a full-length record needs to meet `masked_lm_prob`."""
    return int(round(self.max_seq_length * self.masked_lm_prob))


class Instance(NamedTuple):
  """One training instance (sentence pair), ids only.

  Attributes:
    tokens: int32 `[length]`. `[CLS] A [SEP] B [SEP]` with the masking
      applied; `length <= max_seq_length`.
    num_a: int. Pieces of segment A (segment ids are 0 for the first
      `num_a + 2` tokens, 1 after).
    positions: int32 `[num_predictions]`. Predicted positions, ascending.
    labels: int32 `[num_predictions]`. The original id at each position.
    is_random_next: bool. B comes from another document (label 1).
  """
  tokens: np.ndarray
  num_a: int
  positions: np.ndarray
  labels: np.ndarray
  is_random_next: bool


def truncate_seq_pair(tokens_a: Sentence, tokens_b: Sentence,
                      max_num_tokens: int, rng: random.Random) -> None:
  """Shortens the pair in place to `max_num_tokens` pieces in all.

  The longer list (B on ties) loses a piece from its front or back, at
  random, until the pair fits.
  """
  while len(tokens_a) + len(tokens_b) > max_num_tokens:
    longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    # Both ends, so that neither the starts nor the ends of sentences are
    # systematically lost.
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()


def _candidate_groups(tokens: Sentence, vocab: MaskingVocab,
                      whole_words: bool) -> List[List[int]]:
  """Positions that may be masked, grouped by word if `whole_words`."""
  groups = []
  after_special = True
  for index, token in enumerate(tokens):
    if token == vocab.cls or token == vocab.sep:
      after_special = True  # A word never spans [SEP].
      continue
    if whole_words and not after_special and vocab.continuation[token]:
      groups[-1].append(index)
    else:
      groups.append([index])
    after_special = False
  return groups


def create_masked_lm_predictions(
    tokens: Sentence, vocab: MaskingVocab, options: InstanceOptions,
    rng: random.Random) -> Tuple[Sentence, List[int], List[int]]:
  """BERT's masking of one packed sequence.

  Args:
    tokens: list of int. `[CLS] A [SEP] B [SEP]`.
    vocab: `MaskingVocab`.
    options: `InstanceOptions` (`masked_lm_prob`, `max_predictions_per_seq`,
      `do_whole_word_mask`).
    rng: `random.Random`.

  Returns:
    `(masked_tokens, positions, labels)`: the tokens with the masking
    applied (a new list), the predicted positions (ascending) and the
    original ids there.
  """
  groups = _candidate_groups(tokens, vocab, options.do_whole_word_mask)
  rng.shuffle(groups)
  num_to_predict = min(options.max_predictions_per_seq,
                       max(1, int(round(len(tokens) * options.masked_lm_prob))))
  output = list(tokens)
  positions = []
  for group in groups:
    if len(positions) >= num_to_predict:
      break
    if len(positions) + len(group) > num_to_predict:
      continue  # A whole word that does not fit: try a shorter one.
    for index in group:
      if rng.random() < MASK_TOKEN_PROB:
        output[index] = vocab.mask
      elif rng.random() >= KEEP_TOKEN_PROB:
        output[index] = rng.randint(0, vocab.size - 1)
      positions.append(index)
  positions.sort()
  return output, positions, [tokens[p] for p in positions]


def _random_next_segment(documents: Sequence[Document], document_index: int,
                         target_length: int, rng: random.Random) -> Sentence:
  """Sentences from a random start of a random other document."""
  for _ in range(RANDOM_DOCUMENT_TRIES):
    other = rng.randint(0, len(documents) - 1)
    if other != document_index:
      break
  document = documents[other]
  segment = []
  for sentence in document[rng.randint(0, len(document) - 1):]:
    segment.extend(sentence)
    if len(segment) >= target_length:
      break
  return segment


def create_instances_from_document(documents: Sequence[Document],
                                   document_index: int, vocab: MaskingVocab,
                                   options: InstanceOptions,
                                   rng: random.Random) -> List[Instance]:
  """One pass over `documents[document_index]` (see the module docstring).

  Args:
    documents: sequence of documents (lists of non-empty lists of ids), the
      pool random next segments are drawn from.
    document_index: int. The document to cut into instances.
    vocab: `MaskingVocab`.
    options: `InstanceOptions`.
    rng: `random.Random`.

  Returns:
    The instances, in document order.
  """
  document = documents[document_index]
  max_num_tokens = options.max_seq_length - 3
  # Mostly full-length targets (padding is wasted compute); sometimes short
  # ones, like the short inputs of fine-tuning. A target, not a limit.
  target_length = max_num_tokens
  if rng.random() < options.short_seq_prob:
    target_length = rng.randint(2, max_num_tokens)
  instances = []
  chunk, chunk_length = [], 0
  i = 0
  while i < len(document):
    chunk.append(document[i])
    chunk_length += len(document[i])
    if i == len(document) - 1 or chunk_length >= target_length:
      a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
      tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
      if len(chunk) == 1 or rng.random() < RANDOM_NEXT_PROB:
        is_random_next = True
        tokens_b = _random_next_segment(documents, document_index,
                                        target_length - len(tokens_a), rng)
        i -= len(chunk) - a_end  # The unused sentences start the next chunk.
      else:
        is_random_next = False
        tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
      truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
      tokens = [vocab.cls, *tokens_a, vocab.sep, *tokens_b, vocab.sep]
      tokens, positions, labels = create_masked_lm_predictions(
          tokens, vocab, options, rng)
      instances.append(Instance(
          tokens=np.asarray(tokens, np.int32), num_a=len(tokens_a),
          positions=np.asarray(positions, np.int32),
          labels=np.asarray(labels, np.int32),
          is_random_next=is_random_next))
      chunk, chunk_length = [], 0
    i += 1
  return instances


def create_instances(documents: Sequence[Document], vocab: MaskingVocab,
                     options: InstanceOptions, dupe_factor: int,
                     rng: random.Random) -> List[Instance]:
  """All instances of a set of documents, shuffled (the original's recipe).

  The documents are shuffled, cut `dupe_factor` times (with new pairs and
  masks each time) and the instances shuffled; random next segments come
  from these documents.

  Args:
    documents: sequence of documents; empty documents and sentences are
      dropped first.
    vocab: `MaskingVocab`.
    options: `InstanceOptions`.
    dupe_factor: int >= 1. Passes over each document.
    rng: `random.Random`.

  Returns:
    A list of `Instance`s; empty if no document has a piece.
  """
  if isinstance(dupe_factor, bool) or not isinstance(
      dupe_factor, (int, np.integer)) or dupe_factor < 1:
    raise ValueError("`dupe_factor` must be an integer >= 1. Received: "
                     f"dupe_factor={dupe_factor!r}")
  documents = [d for d in ([list(s) for s in doc if len(s)]
                           for doc in documents) if d]
  rng.shuffle(documents)
  instances = []
  for _ in range(dupe_factor):
    for index in range(len(documents)):
      instances.extend(create_instances_from_document(
          documents, index, vocab, options, rng))
  rng.shuffle(instances)
  return instances


def instance_features(instance: Instance, max_seq_length: int,
                      max_predictions: int) -> Dict[str, np.ndarray]:
  """An instance as padded features (model-side names, `training.records`).

  Args:
    instance: `Instance`.
    max_seq_length: int. Padded length of the sequence features.
    max_predictions: int. Padded length of the masked-LM features.

  Returns:
    dict of int32 `input_word_ids`, `input_mask`, `input_type_ids`
    `[max_seq_length]`; int32 `masked_lm_positions`, `masked_lm_ids` and
    float32 `masked_lm_weights` `[max_predictions]`; int32
    `next_sentence_labels` `[1]`.

  Raises:
    ValueError: the instance is longer than the padded lengths.
  """
  length, num_predictions = len(instance.tokens), len(instance.positions)
  if length > max_seq_length or num_predictions > max_predictions:
    raise ValueError(
        f"The instance ({length} tokens, {num_predictions} predictions) does "
        f"not fit max_seq_length={max_seq_length}, max_predictions="
        f"{max_predictions}: make instances with the same options.")
  ids = np.zeros(max_seq_length, np.int32)
  ids[:length] = instance.tokens
  mask = np.zeros(max_seq_length, np.int32)
  mask[:length] = 1
  types = np.zeros(max_seq_length, np.int32)
  types[instance.num_a + 2:length] = 1
  positions = np.zeros(max_predictions, np.int32)
  positions[:num_predictions] = instance.positions
  labels = np.zeros(max_predictions, np.int32)
  labels[:num_predictions] = instance.labels
  weights = np.zeros(max_predictions, np.float32)
  weights[:num_predictions] = 1.0
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=types,
              masked_lm_positions=positions, masked_lm_ids=labels,
              masked_lm_weights=weights,
              next_sentence_labels=np.array([int(instance.is_random_next)],
                                            np.int32))


class LineTokenizer:
  """Lines of text -> word-piece ids, with the project's TF tokenizer.

  `mobilebert_tf.preprocessing.BertWordpieceTokenizer`: the ids the exported
  preprocessor gives (without `[CLS]`/`[SEP]`). Lines are tokenized
  `batch_size` at a time in one `tf.function` call.

  Args:
    vocab_file: str. The vocabulary.
    do_lower_case: bool. Lower-case and strip accents (uncased models).
    batch_size: int. Lines per TF call. Defaults to 2048.

  Call args:
    lines: sequence of str.

  Returns:
    A list of lists of int, one per line (empty for a line without pieces).
  """

  def __init__(self, vocab_file: str, do_lower_case: bool,
               batch_size: int = 2048):
    # TF only here: the algorithm above is plain Python.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from mobilebert_tf import preprocessing  # pylint: disable=g-import-not-at-top
    self._tf = tf
    self.batch_size = batch_size
    layer = preprocessing.BertWordpieceTokenizer(vocab_file=vocab_file,
                                                 lower_case=do_lower_case)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(lines):
      pieces = layer(lines).merge_dims(1, 2)  # [lines, (pieces)]
      return pieces.flat_values, pieces.row_splits

    self._tokenize = tokenize

  def __call__(self, lines: Sequence[str]) -> List[Sentence]:
    result = []
    for start in range(0, len(lines), self.batch_size):
      values, splits = self._tokenize(self._tf.constant(
          list(lines[start:start + self.batch_size]), self._tf.string))
      values, splits = values.numpy().tolist(), splits.numpy().tolist()
      result.extend(values[splits[k]:splits[k + 1]]
                    for k in range(len(splits) - 1))
    return result
