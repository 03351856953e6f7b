"""Tests for `training.pretraining_data`: special ids and held-out examples.

(Training examples are the original's recipe, `training.pretraining_instances`,
tested against tf-models-official's in tests/test_create_pretraining_data.py.)
"""

import numpy as np
import pytest

from mobilebert_tf import vocab as vocab_lib
from training import pretraining_data as pd

SPECIAL = pd.SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)


def _rows(batch):
  """Per example: (length, original ids, shown ids, positions)."""
  for row in range(len(batch)):
    length = int(batch.input_mask[row].sum())
    shown = batch.input_word_ids[row, :length]
    n = int(batch.masked_lm_weights[row].sum())
    positions = batch.masked_lm_positions[row, :n]
    original = shown.copy()
    original[positions] = batch.masked_lm_ids[row, :n]
    yield length, original, shown, positions


def test_special_ids_follow_the_vocabulary():
  vocab = ["a", "[SEP]", "[MASK]", "b", "[PAD]", "[CLS]", "[UNK]"]
  assert pd.special_ids(vocab) == pd.SpecialIds(pad=4, unk=6, cls=5, sep=1,
                                                mask=2)
  assert pd.special_ids(list(vocab_lib.SPECIAL_TOKENS) + ["x"]) == (
      0, 1, 2, 3, 4)
  with pytest.raises(ValueError, match=r"lacks the special tokens \[MASK\]"):
    pd.special_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "x"])


def test_eval_examples_are_deterministic_and_all_mask():
  lines = [np.arange(5, 5 + n, dtype=np.int32) for n in (3, 0, 20, 100)]
  batch = pd.make_eval_examples(lines, SPECIAL, seq_length=32)
  assert batch.masked_lm_positions.shape == (3, 4)  # round(30 * 0.15).
  np.testing.assert_array_equal(batch.input_mask.sum(-1), [5, 22, 32])
  np.testing.assert_array_equal(batch.masked_lm_weights.sum(-1), [1, 3, 4])
  assert not batch.input_type_ids.any()
  assert not batch.next_sentence_labels.any()
  for row, (length, original, shown, positions) in enumerate(_rows(batch)):
    assert original[0] == SPECIAL.cls and original[-1] == SPECIAL.sep
    np.testing.assert_array_equal(original[1:-1],
                                  np.arange(5, 5 + length - 2))
    np.testing.assert_array_equal(shown[positions], SPECIAL.mask)
    assert positions.min() >= 1 and positions.max() <= length - 2
  again = pd.make_eval_examples(lines, SPECIAL, seq_length=32)
  np.testing.assert_array_equal(again.masked_lm_positions,
                                batch.masked_lm_positions)
  other = pd.make_eval_examples(lines, SPECIAL, seq_length=32, seed=5)
  assert not np.array_equal(other.masked_lm_positions[1:],
                            batch.masked_lm_positions[1:])
