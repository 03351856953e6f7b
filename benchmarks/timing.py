"""Interleaved timing of the rows, and this machine's float32 matmul speed.

Each row is built and warmed up (tracing, freezing and XLA compilation
happen then), then the rows run in turn, the order rotating between
repeats, so that load from other processes hits every row alike. A row's
figure is the median over repeats of (time of one call / batch).
"""

import time
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from benchmarks import rows as rows_lib
from mobilebert_tf import numerics


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
  """Best GFLOP/s of a `size`^3 float32 `tf.matmul` (default threading)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.random.normal([size, size], seed=1)
  b = tf.random.normal([size, size], seed=2)
  fn = tf.function(tf.matmul)
  fn(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * size ** 3 / best / 1e9


def interleaved(runners: Mapping[str, Callable[[], object]],
                repeats: int) -> Dict[str, List[float]]:
  """Seconds of each call of each runner, the rows taking turns.

  Every round calls each runner once, in an order rotated by one each
  round, so that load from other processes hits every row alike.
  """
  times = {row: [] for row in runners}
  order = list(runners)
  for repeat in range(repeats):
    shift = repeat % max(len(order), 1)
    for row in order[shift:] + order[:shift]:
      start = time.perf_counter()
      runners[row]()
      times[row].append(time.perf_counter() - start)
  return times


def error_text(error: BaseException) -> str:
  """`Type: first line of the message`, for a row that could not run."""
  message = str(error).strip()
  first = message.splitlines()[0] if message else repr(error)
  return f"{type(error).__name__}: {first}"


def measure_shape(row_ids: Sequence[str], setup, shape: Tuple[int, int],
                  cache: Dict[str, object], warmup: int, repeats: int,
                  log: Callable[[str], None]) -> Dict[str, dict]:
  """Interleaved timings of `row_ids` at one shape.

  Args:
    row_ids: rows to run; a row that fails to build or run is reported
      with an `error` and left out.
    setup: `benchmarks.artifacts.Setup`.
    shape: (batch, seq).
    cache: `rows.build_row`'s cache, kept across shapes.
    warmup: int. Calls after the first, untimed.
    repeats: int. Timed calls of each row.
    log: called with progress lines.

  Returns:
    row id -> dict: `times` (seconds per call, in order), `ms_per_sequence`
    (median / batch), `ms_per_call_min`, `first_call_s`, and against
    `rows.REFERENCE`'s outputs `relative_error_vs_ours` and
    `cosine_vs_ours` of `sequence_output` and
    `pooled_relative_error_vs_ours`; or `error` (str).
  """
  runners, results, outputs = {}, {}, {}
  for row in row_ids:
    start = time.perf_counter()
    try:
      runners[row] = rows_lib.build_row(row, setup, shape, cache)
      outputs[row] = runners[row]()  # First call: tracing / compiling.
      first = time.perf_counter() - start
      for _ in range(warmup):
        runners[row]()
      results[row] = dict(first_call_s=first, times=[])
    except Exception as e:  # pylint: disable=broad-except
      log(f"  {row}: skipped ({error_text(e)})")
      runners.pop(row, None)
      results[row] = dict(error=error_text(e))
  active = [r for r in row_ids if r in runners]
  timed = interleaved({row: runners[row] for row in active}, repeats)
  for row in active:
    results[row]["times"] = timed[row]
  reference = outputs.get(rows_lib.REFERENCE)
  for row in active:
    r = results[row]
    times = np.asarray(r["times"])
    r["ms_per_sequence"] = float(np.median(times)) * 1e3 / shape[0]
    r["ms_per_call_min"] = float(times.min()) * 1e3
    if reference is not None:
      value, ref = outputs[row], reference
      r["relative_error_vs_ours"] = numerics.relative_error(
          value["sequence_output"], ref["sequence_output"])
      r["cosine_vs_ours"] = numerics.cosine_similarity(
          value["sequence_output"], ref["sequence_output"])
      r["pooled_relative_error_vs_ours"] = numerics.relative_error(
          value["pooled_output"], ref["pooled_output"])
  return results
