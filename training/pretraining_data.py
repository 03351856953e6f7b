"""In-memory masked-LM examples: the ids, the `Batch` and held-out examples.

What measuring a masked-LM on plain text needs, in NumPy: the special token
ids of a vocabulary (`special_ids`), word-piece ids of text lines with the
project's tokenizer (`tokenize_lines`, the ids the exported preprocessor
gives), the `Batch` of padded arrays with the feature names of
tf-models-official's BERT pretraining data, and deterministic held-out
examples, one line each with 15% of its pieces masked (`make_eval_examples`,
the protocol of `checkpoints.demo.evaluate`). Training examples come from
the original's recipe in `training.pretraining_instances`
(`python -m training.create_pretraining_data`, `training.dynamic_masking`).

Example:

>>> special = special_ids(vocab)  # vocab: the list of tokens
>>> lines = tokenize_lines(held_out_lines, "vocab.txt")
>>> batch = make_eval_examples(lines, special, seq_length=64)
>>> pretrainer(batch.inputs())["mlm_logits"]   # [n, 10, vocab]
"""

import dataclasses
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

from mobilebert_tf import vocab as vocab_lib
from mobilebert_tf.encoder import ENCODER_INPUTS

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


def _check_positive(**values) -> None:
  for name, value in values.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
        or value < 1:
      raise ValueError(f"`{name}` must be a positive integer. Received: "
                       f"{name}={value!r}")


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
    positions = np.sort(rng.choice(np.arange(1, len(ids) - 1), num_predict,
                                   replace=False))
    labels = ids[positions].copy()
    ids[positions] = special.mask
    examples.append((ids, np.zeros_like(ids), positions, labels, 0))
  return _pack(examples, seq_length, max_predictions)
