"""Peak memory of one row, in a process that loads only that row.

The parent (`measure`) starts

  python -m benchmarks.memory --row=ID --work_dir=DIR --shape=BxS

on a work directory `benchmarks.artifacts.prepare` wrote. The child imports
only its row's libraries (`rows.import_libraries`: no TensorFlow for the
TFLite and PyTorch rows), records its peak resident set size (the baseline),
builds the row with fresh random weights (same sizes, same memory), runs it
three times, and prints one line `MEMORY {"baseline_mib": ..., "peak_mib":
..., "increment_mib": ...}`. The table's "peak MiB" is the increment.

Peak RSS is VmHWM of /proc/self/status: the high-water mark of the child's
own image (getrusage's ru_maxrss would include the parent's peak, inherited
across fork).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
from typing import Optional, Sequence, Tuple

from benchmarks import artifacts
from benchmarks import rows as rows_lib

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PREFIX = "MEMORY "
CALLS = 3


def peak_mib() -> float:
  """This process's peak resident set size so far, MiB."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(row_id: str, work_dir: str, shape: Tuple[int, int],
            timeout: int = 600) -> Optional[dict]:
  """Runs `row_id` at `shape` in a fresh process; returns its figures (MiB).

  Returns:
    {"baseline_mib", "peak_mib", "increment_mib"}, or {"error": str} when
    the child fails or times out.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", USE_TF="0",
             TRANSFORMERS_NO_TF="1")
  command = [sys.executable, "-m", "benchmarks.memory", f"--row={row_id}",
             f"--work_dir={work_dir}", f"--shape={shape[0]}x{shape[1]}"]
  try:
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=_REPO_ROOT,
                          check=False)
  except subprocess.TimeoutExpired:
    return dict(error=f"timed out after {timeout} s")
  for line in reversed(done.stdout.splitlines()):
    if line.startswith(_PREFIX):
      return json.loads(line[len(_PREFIX):])
  lines = done.stderr.strip().splitlines()
  return dict(error=f"exit code {done.returncode}: "
                    f"{lines[-1] if lines else '(no output)'}")


def child(row_id: str, work_dir: str, shape: Tuple[int, int]) -> dict:
  """In the child: import, record the baseline, build and run, record."""
  rows_lib.import_libraries(row_id)
  baseline = peak_mib()
  setup = artifacts.Setup.from_work_dir(work_dir)
  run = rows_lib.build_row(row_id, setup, shape, {})
  for _ in range(CALLS):
    run()
  peak = peak_mib()
  return dict(baseline_mib=baseline, peak_mib=peak,
              increment_mib=peak - baseline)


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m benchmarks.memory",
      description="(internal to benchmarks.latency) peak memory of one row")
  parser.add_argument("--row", required=True, choices=rows_lib.ROW_IDS)
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--shape", required=True, help="BATCHxSEQ")
  args = parser.parse_args(argv[1:])
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings("ignore")
  shape = tuple(int(x) for x in args.shape.lower().split("x"))
  figures = child(args.row, args.work_dir, shape)
  print(_PREFIX + json.dumps(figures), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
