"""Tests of `mobilebert_tf.numerics`, against hand-computed values."""

import numpy as np
import pytest

from mobilebert_tf import numerics


@pytest.mark.parametrize("value, reference, expected", [
    ([3.0, 4.0], [3.0, 4.0], 0.0),
    ([3.0, 5.0], [3.0, 4.0], 0.2),          # ‖(0, 1)‖ / ‖(3, 4)‖ = 1 / 5
    ([[0.0, 0.0]], [[3.0, 4.0]], 1.0),
    ([-3.0, -4.0], [3.0, 4.0], 2.0),        # Signs do not cancel.
    ([1.0, 2.0], [0.0, 0.0], np.sqrt(5.0)),  # Zero reference: ‖value‖.
], ids=["equal", "one_fifth", "zero_value", "opposite", "zero_reference"])
def test_relative_error(value, reference, expected):
  assert numerics.relative_error(value, reference) == pytest.approx(
      expected, rel=1e-12)


def test_relative_error_in_float64():
  # In float32, 1 + 1e-9 == 1: the error would be 0.
  value = np.full(4, 1.0 + 1e-9)
  reference = np.ones(4, np.float32)
  assert numerics.relative_error(value, reference) == pytest.approx(
      1e-9, rel=1e-6)


def test_relative_error_is_frobenius_over_all_axes():
  reference = np.arange(12, dtype=np.float64).reshape(2, 2, 3) + 1
  value = reference.copy()
  value[1, 0, 2] += 2.0
  expected = 2.0 / np.sqrt(np.sum(reference ** 2))
  assert numerics.relative_error(value, reference) == pytest.approx(expected)


def test_relative_error_shapes_must_match():
  with pytest.raises(ValueError, match=r"Shapes differ: \(3,\) vs reference "
                     r"\(1, 3\)"):
    numerics.relative_error([1.0, 2.0, 3.0], [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("value, reference, expected", [
    ([1.0, 0.0], [2.0, 0.0], 1.0),
    ([1.0, 0.0], [0.0, 5.0], 0.0),
    ([1.0, 1.0], [-1.0, -1.0], -1.0),
    ([1.0, 1.0], [1.0, 0.0], 1 / np.sqrt(2.0)),
    ([0.0, 0.0], [0.0, 0.0], 1.0),
    ([0.0, 0.0], [1.0, 0.0], 0.0),
], ids=["parallel", "orthogonal", "opposite", "45_degrees", "both_zero",
        "one_zero"])
def test_cosine_similarity(value, reference, expected):
  assert numerics.cosine_similarity(value, reference) == pytest.approx(
      expected, abs=1e-12)


def test_cosine_similarity_flattens_and_checks_sizes():
  assert numerics.cosine_similarity([[1.0, 2.0]], [1.0, 2.0]) == (
      pytest.approx(1.0))
  with pytest.raises(ValueError, match="Sizes differ: 2 vs reference 3"):
    numerics.cosine_similarity([1.0, 2.0], [1.0, 2.0, 3.0])
