r"""Latency of MobileBERT encoders on this machine's CPU, timed in one process.

Usage:

  python -m benchmarks.latency [--quick] [--config=PRESET_OR_JSON]
      [--rows=ID_OR_PATTERN,...] [--shapes=BxS,...] [--repeats=N]
      [--warmup=N] [--output_dir=DIR] [--work_dir=DIR] [--keep_work_dir]
      [--nomemory | --memory_rows=ID_OR_PATTERN,...]

Measures the median milliseconds per sequence of each row of
`benchmarks.rows` (our encoder in both attention layouts, as a `tf.function`,
with XLA and frozen; the exported SavedModel; TFLite; tf-models-official;
transformers) for the English OPT configuration (24 blocks, random weights)
at batch 1 x seq 128, batch 8 x seq 128 and batch 1 x seq 384, with each
row's ratio to tf-models-official's `tf.function`, its relative error
against ours, its achieved GFLOP/s and its peak memory. docs/benchmarks.md
says how to read the table.

Each run writes two files, atomically, into `--output_dir`:

  latency-<UTC date-time>-<cpu>.json   every number, the machine, the flags
  latency-<UTC date-time>-<cpu>.md     the table (`benchmarks.report`)

The default `--output_dir` is benchmarks/results/ (committed: the numbers
in README.md and docs/ come from these files), and build/benchmarks/ with
`--quick`, whose files end in "-quick". `--quick` uses a tiny config, short
sequences and few repeats: a smoke test of every row.

Modules: `rows` (what each row runs), `artifacts` (the shared weights and
exports), `timing` (interleaved medians), `memory` (the per-row memory
process), `flops` (the FLOP count), `machine` (CPU and versions), `report`
(the markdown).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import concurrent.futures
import fnmatch
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

from absl import flags

from benchmarks import machine as machine_lib
from benchmarks import result_files
from benchmarks import rows as rows_lib

PROGRAM = "python -m benchmarks.latency"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")
QUICK_DIR = os.path.join(REPO_ROOT, "build", "benchmarks")

DEFAULT_CONFIG = "uncased_L-24_H-128_B-512_A-4_F-4_OPT"
SHAPES = ((1, 128), (8, 128), (1, 384))
REPEATS = (20, 10, 10)  # per shape; later shapes take longer per call
WARMUP = 3
QUICK_SHAPES = ((1, 16), (4, 16), (1, 48))
QUICK_REPEATS = 3
QUICK_WARMUP = 1
QUICK_CONFIG = dict(
    vocab_size=512, hidden_size=64, embedding_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64, intra_bottleneck_size=32,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="no_norm", hidden_act="relu",
    max_position_embeddings=64, type_vocab_size=2, classifier_activation=False,
    hidden_dropout_prob=0.0)
# Peak memory does not depend on what else runs: a few processes at once.
MEMORY_WORKERS = 3


class UsageError(ValueError):
  """A bad flag value: exit code 2, one line on stderr."""


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  flags.DEFINE_boolean("quick", False,
                       "Tiny config, short sequences, few repeats.",
                       flag_values=values)
  flags.DEFINE_string("config", None,
                      f"Preset name or bert_config.json path. Default: "
                      f"{DEFAULT_CONFIG} (a tiny config with --quick).",
                      flag_values=values)
  flags.DEFINE_string("rows", ",".join(rows_lib.ROW_IDS),
                      "Comma-separated row ids or patterns (ours*, tflite_*) "
                      f"of {', '.join(rows_lib.ROW_IDS)}; "
                      f"{rows_lib.REFERENCE} and {rows_lib.BASELINE} always "
                      "run.", flag_values=values)
  flags.DEFINE_string("shapes", None,
                      "Comma-separated BATCHxSEQ shapes. Default: 1x128,8x128,"
                      "1x384 (1x16,4x16,1x48 with --quick).",
                      flag_values=values)
  flags.DEFINE_integer("repeats", None,
                       "Interleaved repeats per shape. Default: 20 for the "
                       "first shape, 10 for the others; 3 with --quick.",
                       flag_values=values)
  flags.DEFINE_integer("warmup", None, "Untimed calls per row and shape after "
                       "the first. Default: 3; 1 with --quick.",
                       flag_values=values)
  flags.DEFINE_string("output_dir", None,
                      "Where the result files go. Default: benchmarks/results"
                      " (build/benchmarks with --quick).", flag_values=values)
  flags.DEFINE_string("work_dir", None,
                      "Where the exported SavedModel and TFLite models go "
                      "during the run. Default: a new temporary directory.",
                      flag_values=values)
  flags.DEFINE_boolean("keep_work_dir", False,
                       "Keep the work directory after the run.",
                       flag_values=values)
  flags.DEFINE_boolean("memory", True, "Measure peak memory per row (one "
                       "process each).", flag_values=values)
  flags.DEFINE_string("memory_rows", None, "Comma-separated row ids or "
                      "patterns whose peak memory to measure. Default: every "
                      "row.", flag_values=values)
  return values


def _parse_shapes(text: str) -> Tuple[Tuple[int, int], ...]:
  try:
    shapes = tuple(tuple(int(x) for x in part.lower().split("x"))
                   for part in text.split(","))
    if any(len(s) != 2 or min(s) < 1 for s in shapes):
      raise ValueError
  except ValueError:
    raise UsageError(f"--shapes must be like 1x128,8x128. Received: "
                     f"{text!r}") from None
  return shapes


def _plan(values: flags.FlagValues):
  """Validates the flags; returns the run's plan.

  Returns:
    (rows, rows whose memory to measure, config, config_name, shapes,
    repeats per shape, warmup, output_dir).

  Raises:
    UsageError: a bad flag value.
  """
  from mobilebert_tf import MobileBertConfig
  from mobilebert_tf.config import load_config
  try:
    rows = rows_lib.select(values.rows)
  except ValueError as e:
    raise UsageError(str(e)) from None
  if values.config:
    try:
      config = load_config(values.config)
    except (OSError, ValueError, TypeError) as e:
      raise UsageError(f"--config: {str(e).splitlines()[0]}") from None
    config_name = values.config
  elif values.quick:
    config, config_name = MobileBertConfig.from_dict(QUICK_CONFIG), "quick"
  else:
    config, config_name = load_config(DEFAULT_CONFIG), DEFAULT_CONFIG
  shapes = (_parse_shapes(values.shapes) if values.shapes else
            QUICK_SHAPES if values.quick else SHAPES)
  too_long = [s for s in shapes if s[1] > config.max_position_embeddings]
  if too_long:
    raise UsageError(f"sequence length {too_long[0][1]} exceeds the config's "
                     f"max_position_embeddings "
                     f"({config.max_position_embeddings})")
  for name in ("repeats", "warmup"):
    if values[name].value is not None and values[name].value < (
        1 if name == "repeats" else 0):
      raise UsageError(f"--{name} must be at least "
                       f"{1 if name == 'repeats' else 0}. Received: "
                       f"{values[name].value}")
  if values.repeats:
    repeats = [values.repeats] * len(shapes)
  elif values.quick:
    repeats = [QUICK_REPEATS] * len(shapes)
  else:
    repeats = [REPEATS[min(i, len(REPEATS) - 1)] for i in range(len(shapes))]
  warmup = values.warmup if values.warmup is not None else (
      QUICK_WARMUP if values.quick else WARMUP)
  output_dir = os.path.abspath(values.output_dir or
                               default_output_dir(values.quick))
  memory_rows = []
  if values.memory:
    memory_rows = rows
    if values.memory_rows:
      parts = [p.strip() for p in values.memory_rows.split(",") if p.strip()]
      memory_rows = [r for r in rows
                     if any(fnmatch.fnmatch(r, p) for p in parts)]
      unknown = [p for p in parts if not fnmatch.filter(rows, p)]
      if unknown or not parts:
        raise UsageError(f"--memory_rows: {', '.join(unknown) or '(none)'} "
                         f"names none of the rows run ({', '.join(rows)})")
  return (rows, memory_rows, config, config_name, shapes, repeats, warmup,
          output_dir)


def default_output_dir(quick: bool) -> str:
  """benchmarks/results, or build/benchmarks for --quick runs."""
  return QUICK_DIR if quick else RESULTS_DIR


def result_stem(machine: dict, quick: bool) -> str:
  """`latency-<UTC date-time>-<cpu slug>[-quick]`: the result files' name."""
  return (f"latency-{machine['timestamp']}-{machine['cpu_slug']}"
          + ("-quick" if quick else ""))


def _measure_memory(rows: Sequence[str], timings: Sequence[dict],
                    work_dir: str, shape: Tuple[int, int],
                    log) -> Dict[str, dict]:
  from benchmarks import memory
  measured = [r for r in rows if "ms_per_sequence" in timings[0].get(r, {})]
  log(f"Peak memory at {shape[0]}x{shape[1]}, one process per row")
  with concurrent.futures.ThreadPoolExecutor(MEMORY_WORKERS) as pool:
    futures = {r: pool.submit(memory.measure, r, work_dir, shape)
               for r in measured}
    figures = {r: f.result() for r, f in futures.items()}
  for row, figure in figures.items():
    if "error" in figure:
      log(f"  {row}: {figure['error']}")
  return figures


def run(values: flags.FlagValues, argv: Sequence[str], log) -> List[str]:
  """Runs the benchmark; returns the paths written (JSON, markdown)."""
  (rows, memory_rows, config, config_name, shapes, repeats, warmup,
   output_dir) = _plan(values)
  quiet()
  from benchmarks import artifacts
  from benchmarks import flops
  from benchmarks import report
  from benchmarks import timing

  machine = machine_lib.machine_record()
  start = time.time()
  log(f"{PROGRAM}: {config_name}, shapes "
      f"{', '.join(f'{b}x{s}' for b, s in shapes)}, rows {', '.join(rows)}")
  work_dir = values.work_dir or tempfile.mkdtemp(prefix="mobilebert-latency-")
  os.makedirs(work_dir, exist_ok=True)
  try:
    setup = artifacts.prepare(config, work_dir, rows, shapes, log)
    matmul_before = timing.matmul_gflops()
    log(f"2048^3 float32 matmul: {matmul_before:.0f} GFLOP/s")
    cache, timings = {}, []
    for shape, shape_repeats in zip(shapes, repeats):
      log(f"Batch {shape[0]} x seq {shape[1]}: warm-up, then "
          f"{shape_repeats} interleaved repeats")
      timings.append(timing.measure_shape(rows, setup, shape, cache, warmup,
                                          shape_repeats, log))
      for row, t in timings[-1].items():
        if "ms_per_sequence" in t:
          log(f"  {row:24s} {t['ms_per_sequence']:9.3f} ms/seq")
    matmul_after = timing.matmul_gflops()
    del cache, setup  # Free the models before the memory processes run.
    memory = (_measure_memory(memory_rows, timings, work_dir, shapes[0], log)
              if memory_rows else {})
  finally:
    if values.keep_work_dir:
      log(f"Kept the work directory {work_dir}")
    else:
      shutil.rmtree(work_dir, ignore_errors=True)
  for timing_at_shape in timings:
    base = timing_at_shape.get(rows_lib.BASELINE, {}).get("ms_per_sequence")
    for t in timing_at_shape.values():
      if base and "ms_per_sequence" in t:
        t["ratio"] = t["ms_per_sequence"] / base
  machine["load_average_end"] = list(os.getloadavg())
  result = dict(
      machine=machine, argv=list(argv[1:]),
      flags={name: values[name].value for name in sorted(values)},
      quick=values.quick, config_name=config_name, config=config.to_dict(),
      shapes=[list(s) for s in shapes], rows=rows,
      row_names={r: rows_lib.BY_ID[r].name for r in rows},
      baseline=rows_lib.BASELINE, reference=rows_lib.REFERENCE,
      repeats_per_shape=repeats, warmup=warmup,
      flops=[flops.encoder_flops(config, b, s) for b, s in shapes],
      matmul_gflops=max(matmul_before, matmul_after),
      matmul_gflops_before_after=[matmul_before, matmul_after],
      timings=timings, memory=memory, memory_shape=list(shapes[0]),
      seconds=time.time() - start)
  stem = os.path.join(output_dir, result_stem(machine, values.quick))
  return result_files.write(stem, result, report.format_report, start, log)


def main(argv: Sequence[str]) -> int:
  """Runs the benchmark on `argv` (argv[0] is the program name)."""
  from mobilebert_tf import cli
  values = _define_flags()
  if cli.wants_help(argv):
    print(__doc__)
    print("Flags:\n" + values.get_help())
    return 0
  try:
    cli.parse(values, argv)
    run(values, argv, lambda line: print(line, flush=True))
  except (cli.UsageError, UsageError) as e:
    return cli.error(PROGRAM, str(e))
  return 0


def quiet() -> None:
  """Silences TensorFlow's and absl's logging and Python warnings."""
  import logging
  import warnings
  warnings.filterwarnings("ignore")
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.ERROR)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
