"""Agreement measures between two computations of the same tensor.

Every parity check of the project (exports, TFLite, benchmarks, tests) uses
these, computed in float64 so the measure itself adds no rounding.
"""

import numpy as np


def relative_error(value, reference) -> float:
  """‖value − reference‖ / ‖reference‖ (Frobenius), in float64.

  With a zero reference, the absolute norm ‖value‖.

  Raises:
    ValueError: the shapes differ.
  """
  value = np.asarray(value, np.float64)
  reference = np.asarray(reference, np.float64)
  if value.shape != reference.shape:
    raise ValueError(f"Shapes differ: {value.shape} vs reference "
                     f"{reference.shape}.")
  diff = np.linalg.norm((value - reference).ravel())
  norm = np.linalg.norm(reference.ravel())
  return float(diff / norm) if norm > 0 else float(diff)


def cosine_similarity(value, reference) -> float:
  """Cosine of the angle between the flattened tensors, in float64.

  Two zero tensors have cosine 1; one zero tensor against a non-zero one, 0.
  """
  a = np.asarray(value, np.float64).ravel()
  b = np.asarray(reference, np.float64).ravel()
  if a.shape != b.shape:
    raise ValueError(f"Sizes differ: {a.size} vs reference {b.size}.")
  norms = np.linalg.norm(a) * np.linalg.norm(b)
  if norms == 0:
    return float(np.array_equal(a, b))
  return float(a @ b / norms)
