"""Tests for `training.pretraining_data`: BERT's MLM + NSP examples."""

import numpy as np
import pytest

from mobilebert_tf import vocab as vocab_lib
from training import pretraining_data as pd

SPECIAL = pd.SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
# Large enough that every corpus piece below is a distinct id, so an id
# tells where in the corpus a piece came from, and a random replacement
# equals the original with probability 1e-5.
VOCAB_SIZE = 100_000
FEATURES = {"input_word_ids": (np.int32, "seq"),
            "input_mask": (np.int32, "seq"),
            "input_type_ids": (np.int32, "seq"),
            "masked_lm_positions": (np.int32, "pred"),
            "masked_lm_ids": (np.int32, "pred"),
            "masked_lm_weights": (np.float32, "pred"),
            "next_sentence_labels": (np.int32, None)}


def _corpus(num_lines, max_len, seed=0):
  """Lines of consecutive distinct ids: piece k of the corpus is id 5 + k."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, max_len + 1, num_lines)
  ends = np.cumsum(lengths)
  stream = np.arange(5, 5 + ends[-1], dtype=np.int32)
  return np.split(stream, ends[:-1])


def _examples(seed=1, num_lines=3000, max_len=12, seq_length=43,
              max_predictions=43, **kwargs):
  return pd.make_pretraining_examples(
      np.random.default_rng(seed), _corpus(num_lines, max_len), SPECIAL,
      VOCAB_SIZE, seq_length, max_predictions, **kwargs)


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


@pytest.fixture(scope="module")
def batch():
  return _examples()


def test_special_ids_follow_the_vocabulary():
  vocab = ["a", "[SEP]", "[MASK]", "b", "[PAD]", "[CLS]", "[UNK]"]
  assert pd.special_ids(vocab) == pd.SpecialIds(pad=4, unk=6, cls=5, sep=1,
                                                mask=2)
  assert pd.special_ids(list(vocab_lib.SPECIAL_TOKENS) + ["x"]) == (
      0, 1, 2, 3, 4)
  with pytest.raises(ValueError, match=r"lacks the special tokens \[MASK\]"):
    pd.special_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "x"])


def test_feature_names_shapes_and_dtypes(batch):
  assert len(batch) > 500
  features = batch.features()
  assert list(features) == list(FEATURES)
  for name, (dtype, width) in FEATURES.items():
    expected = {"seq": (len(batch), 43), "pred": (len(batch), 43),
                None: (len(batch),)}[width]
    assert features[name].shape == expected, name
    assert features[name].dtype == dtype, name
  assert list(batch.inputs()) == ["input_word_ids", "input_mask",
                                  "input_type_ids", "masked_lm_positions"]
  part = batch.take(slice(3, 7))
  assert len(part) == 4
  np.testing.assert_array_equal(part.masked_lm_ids, batch.masked_lm_ids[3:7])
  part = batch.take(np.array([5, 1]))
  np.testing.assert_array_equal(part.next_sentence_labels,
                                batch.next_sentence_labels[[5, 1]])


def test_layout_is_cls_a_sep_b_sep_then_padding(batch):
  for row, (length, original, _, _) in enumerate(_rows(batch)):
    assert 5 <= length <= 43
    assert original[0] == SPECIAL.cls and original[-1] == SPECIAL.sep
    seps = np.flatnonzero(original == SPECIAL.sep)
    assert len(seps) == 2 and seps[0] >= 2  # A has at least one piece.
    types = batch.input_type_ids[row, :length]
    np.testing.assert_array_equal(types[:seps[0] + 1], 0)
    np.testing.assert_array_equal(types[seps[0] + 1:], 1)
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
      assert not getattr(batch, name)[row, length:].any()


def test_special_tokens_and_padding_are_never_predicted(batch):
  for row, (length, original, shown, positions) in enumerate(_rows(batch)):
    assert len(positions) >= 1
    assert (np.diff(positions) > 0).all()
    assert positions.max() < length  # Never a [PAD].
    assert not np.isin(original[positions],
                       [SPECIAL.cls, SPECIAL.sep, SPECIAL.pad]).any()
    # The special tokens are shown as they are.
    seps = original == SPECIAL.sep
    np.testing.assert_array_equal(shown[seps], SPECIAL.sep)
    assert shown[0] == SPECIAL.cls
    # Padding slots: position 0, id 0, weight 0.
    n = len(positions)
    assert not batch.masked_lm_positions[row, n:].any()
    assert not batch.masked_lm_ids[row, n:].any()
    assert not batch.masked_lm_weights[row, n:].any()
    # Only predicted positions differ from the original.
    unpredicted = np.setdiff1d(np.arange(length), positions)
    np.testing.assert_array_equal(shown[unpredicted], original[unpredicted])


def test_fifteen_percent_of_the_pieces_are_predicted(batch):
  predicted = candidates = 0
  for _, original, _, positions in _rows(batch):
    num_candidates = int((original > SPECIAL.mask).sum())
    # BERT's count: 15% rounded, at least one (at most max_predictions).
    assert len(positions) == max(1, round(num_candidates * 0.15))
    predicted += len(positions)
    candidates += num_candidates
  # 40 pieces per full-length pair: 15% is exactly 6 there.
  assert 0.14 < predicted / candidates < 0.16


def test_masks_are_80_percent_mask_10_random_10_unchanged(batch):
  shown, original = [], []
  for _, row_original, row_shown, positions in _rows(batch):
    shown.append(row_shown[positions])
    original.append(row_original[positions])
  shown, original = np.concatenate(shown), np.concatenate(original)
  assert len(shown) > 3000
  is_mask = shown == SPECIAL.mask
  unchanged = shown == original
  replaced = ~is_mask & ~unchanged
  # Binomial standard deviations are below 0.008 here: 0.03 is > 4 of them.
  assert abs(is_mask.mean() - 0.8) < 0.03
  assert abs(unchanged.mean() - 0.1) < 0.03
  assert abs(replaced.mean() - 0.1) < 0.03
  # Random replacements are ordinary pieces of the vocabulary.
  assert (shown[replaced] > SPECIAL.mask).all()
  assert (shown[replaced] < VOCAB_SIZE).all()
  assert len(np.unique(shown[replaced])) > 0.9 * replaced.sum()


def test_max_predictions_caps_the_count():
  batch = _examples(max_predictions=2, num_lines=300)
  assert batch.masked_lm_weights.shape[1] == 2
  for _, original, _, positions in _rows(batch):
    num_candidates = int((original > SPECIAL.mask).sum())
    assert len(positions) == min(2, max(1, round(num_candidates * 0.15)))
  assert (batch.masked_lm_weights.sum(-1) == 2).mean() > 0.8


def test_next_sentence_pairs_half_continuations_half_random():
  # Lines of at most 12 pieces for 40 places and no short targets: every
  # chunk has several lines, so each pair is random with probability 0.5.
  batch = _examples(short_seq_prob=0.0)
  labels = batch.next_sentence_labels
  assert set(np.unique(labels)) == {0, 1}
  sigma = 0.5 / np.sqrt(len(labels))
  assert abs(labels.mean() - 0.5) < 5 * sigma
  contiguous = {0: 0, 1: 0}
  for row, (length, original, _, _) in enumerate(_rows(batch)):
    if length == 43:
      continue  # Possibly truncated.
    pieces = original[original > SPECIAL.mask]
    continuous = bool((np.diff(pieces) == 1).all())
    contiguous[int(labels[row])] += continuous
    if labels[row] == 0:
      assert continuous, original  # B is the text right after A.
  # A random B is (almost) never the continuation.
  assert contiguous[1] < 0.05 * (labels == 1).sum()


@pytest.mark.parametrize("prob, expected", [(0.0, 0), (1.0, 1)])
def test_random_next_prob(prob, expected):
  batch = _examples(num_lines=300, random_next_prob=prob)
  np.testing.assert_array_equal(batch.next_sentence_labels, expected)


def test_short_sequences():
  lengths = _examples(num_lines=600).input_mask.sum(-1)
  assert (lengths < 43 - 12).any()  # Some short targets.
  full = _examples(num_lines=600, short_seq_prob=0.0).input_mask.sum(-1)
  assert (full >= 43 - 12).mean() > 0.95


def test_long_lines_are_truncated_to_seq_length():
  batch = pd.make_pretraining_examples(
      np.random.default_rng(0), _corpus(50, 200), SPECIAL, VOCAB_SIZE,
      seq_length=16, max_predictions=3)
  lengths = batch.input_mask.sum(-1)
  assert batch.input_word_ids.shape[1] == 16
  assert (lengths == 16).mean() > 0.8
  # A one-line chunk always gets a random B.
  assert batch.next_sentence_labels.mean() > 0.9


def test_same_seed_same_examples_other_seed_other_examples():
  first, again, other = _examples(7, 400), _examples(7, 400), _examples(8, 400)
  for name, array in first.features().items():
    np.testing.assert_array_equal(array, again.features()[name], err_msg=name)
  assert not np.array_equal(first.masked_lm_positions[:50],
                            other.masked_lm_positions[:50])


def test_skips_empty_lines():
  lines = _corpus(200, 10)
  with_empty = [x for line in lines for x in (line, np.zeros(0, np.int32))]
  a = pd.make_pretraining_examples(np.random.default_rng(0), lines, SPECIAL,
                                   VOCAB_SIZE, 32, 5)
  b = pd.make_pretraining_examples(np.random.default_rng(0), with_empty,
                                   SPECIAL, VOCAB_SIZE, 32, 5)
  np.testing.assert_array_equal(a.input_word_ids, b.input_word_ids)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seq_length=4), "seq_length"),
    (dict(max_predictions=0), "max_predictions"),
    (dict(vocab_size=2.5), "vocab_size"),
    (dict(masked_lm_prob=0.0), "masked_lm_prob"),
    (dict(random_next_prob=1.5), "random_next_prob"),
    (dict(vocab_size=50), r"ids outside \[0, vocab_size=50\)"),
    (dict(lines=[np.zeros(0, np.int32)]), "no non-empty line"),
], ids=["short_seq", "no_predictions", "float_vocab", "zero_prob",
        "bad_next_prob", "ids_outside", "no_lines"])
def test_bad_arguments(kwargs, message):
  args = dict(rng=np.random.default_rng(0), lines=_corpus(20, 5),
              special=SPECIAL, vocab_size=VOCAB_SIZE, seq_length=16,
              max_predictions=3)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    pd.make_pretraining_examples(**args)


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
