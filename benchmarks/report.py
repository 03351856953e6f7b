"""The markdown report of a benchmark result: machine, table, notes, targets.

`format_report` reads only the result dict that `benchmarks.latency` writes
as JSON, so a report can be rebuilt from a committed result file:

  python -c "import json, sys; from benchmarks import report; \
    print(report.format_report(json.load(open(sys.argv[1]))))" FILE.json
"""

from typing import List, Optional

# The targets: (description, candidate rows (the fastest counts),
# shape index, reference row, maximum ratio).
TARGETS = (
    ("ours (best TF mode) <= 0.6x tf-models-official",
     ("ours", "ours_xla", "ours_frozen", "ours_heads_first",
      "ours_heads_first_frozen"), 0, "tfm", 0.6),
    ("ours (best TF mode) <= 0.9x tf-models-official",
     ("ours", "ours_xla", "ours_frozen", "ours_heads_first",
      "ours_heads_first_frozen"), 1, "tfm", 0.9),
    ("SavedModel via hub.load <= 1.15x the in-process encoder",
     ("hub",), 0, "ours", 1.15),
    ("TFLite float32 <= 0.45x tf-models-official",
     ("tflite_none",), 0, "tfm", 0.45),
    ("TFLite dynamic int8 <= 0.6x TFLite float32",
     ("tflite_dynamic",), 0, "tflite_none", 0.6),
)
MIN_DYNAMIC_COSINE = 0.999
# The layout comparison: (mode, heads_first row, standard row).
LAYOUT_PAIRS = (("tf.function", "ours_heads_first", "ours"),
                ("frozen", "ours_heads_first_frozen", "ours_frozen"))


def _fmt(value: Optional[float], digits: int = 1) -> str:
  return "—" if value is None else f"{value:.{digits}f}"


def format_ratio(ratio: Optional[float]) -> str:
  """A ratio as the table shows it: "0.76x"."""
  return "—" if ratio is None else f"{ratio:.2f}x"


def format_ms(ms: Optional[float]) -> str:
  return "skipped" if ms is None else f"{ms:.2f}"


def gflops_per_s(result: dict, row: str, shape_index: int = 0
                 ) -> Optional[float]:
  """Achieved GFLOP/s of `row` at a shape (None if not measured)."""
  ms = result["timings"][shape_index].get(row, {}).get("ms_per_sequence")
  if not ms:
    return None
  batch = result["shapes"][shape_index][0]
  return result["flops"][shape_index] / batch / (ms / 1e3) / 1e9


def table(result: dict) -> List[str]:
  """The markdown table's lines: one row per benchmark row."""
  shapes = [tuple(s) for s in result["shapes"]]
  timings, peak = result["timings"], result["matmul_gflops"]
  header = ["row"]
  for batch, seq in shapes:
    header += [f"b{batch}×{seq} ms/seq", "ratio"]
  header += [f"GFLOP/s (b{shapes[0][0]}×{shapes[0][1]})", "% of matmul",
             "peak MiB", "rel. err vs ours"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  for row in result["rows"]:
    cells = [result["row_names"][row]]
    for i in range(len(shapes)):
      t = timings[i].get(row, {})
      cells += [format_ms(t.get("ms_per_sequence")),
                format_ratio(t.get("ratio"))]
    gflops = gflops_per_s(result, row)
    cells.append(_fmt(gflops, 0 if gflops is None or gflops >= 10 else 2))
    cells.append(f"{100 * gflops / peak:.0f}%" if gflops and peak else "—")
    memory = result["memory"].get(row, {})
    cells.append(_fmt(memory.get("increment_mib"), 0))
    errors = [timings[i].get(row, {}).get("relative_error_vs_ours")
              for i in range(len(shapes))]
    errors = [e for e in errors if e is not None]
    cells.append(f"{max(errors):.1e}" if errors else "—")
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def _layout_lines(result: dict) -> List[str]:
  """heads_first against standard at each shape (the layout decision)."""
  shapes = [tuple(s) for s in result["shapes"]]
  lines = []
  for mode, heads_first, standard in LAYOUT_PAIRS:
    parts = []
    for i, (batch, seq) in enumerate(shapes):
      t = result["timings"][i]
      a = t.get(heads_first, {}).get("ms_per_sequence")
      b = t.get(standard, {}).get("ms_per_sequence")
      if a and b:
        parts.append(f"b{batch}×{seq} {a / b:.2f}x")
    if parts:
      lines.append(f"- {mode} (`{heads_first}` / `{standard}`): "
                   + ", ".join(parts))
  return lines


def _target_lines(result: dict) -> List[str]:
  shapes = [tuple(s) for s in result["shapes"]]
  lines = []
  for description, candidates, shape_index, reference, limit in TARGETS:
    if shape_index >= len(shapes):
      continue
    batch, seq = shapes[shape_index]
    t = result["timings"][shape_index]
    ref = t.get(reference, {}).get("ms_per_sequence")
    measured = [(t[r]["ms_per_sequence"], r) for r in candidates
                if t.get(r, {}).get("ms_per_sequence")]
    if not ref or not measured:
      lines.append(f"- {description}, batch {batch} x {seq}: not measured")
      continue
    ms, best = min(measured)
    ratio = ms / ref
    status = "met" if ratio <= limit else "NOT met"
    extra = ""
    cosine = t[best].get("cosine_vs_ours")
    if best == "tflite_dynamic" and cosine is not None:
      extra = (f"; cosine of sequence_output vs the float32 encoder "
               f"{cosine:.6f} (target >= {MIN_DYNAMIC_COSINE})")
      if cosine < MIN_DYNAMIC_COSINE:
        status = "NOT met"
    lines.append(f"- {description}, batch {batch} x {seq}: {ratio:.2f}x "
                 f"({result['row_names'][best]}) — {status}{extra}")
  return lines


def format_report(result: dict, json_name: Optional[str] = None) -> str:
  """The markdown report of a result (see `benchmarks.latency`)."""
  shapes = [tuple(s) for s in result["shapes"]]
  m, v = result["machine"], result["machine"]["versions"]
  baseline = result["row_names"].get(result["baseline"], result["baseline"])
  command = " ".join(["python -m benchmarks.latency", *result["argv"]])
  commit = f" at commit {m['git_commit']}" if m.get("git_commit") else ""
  lines = [
      f"# MobileBERT encoder latency, {m['date']}",
      "",
      f"`{result['config_name']}` ({result['config']['num_hidden_layers']} "
      "blocks, random weights)" + (", quick mode" if result["quick"] else "")
      + f"; `{command}`{commit}.",
      "",
      f"Machine: {m['cpu']}, {m['logical_cores']} logical cores "
      f"({m['usable_cores']} usable), Python {m['python']}; TensorFlow "
      f"{v['tensorflow']}, tf_keras {v['tf_keras']}, tf-models-official "
      f"{v['tf-models-official']}, ai-edge-litert {v['ai-edge-litert']}, "
      f"torch {v['torch']}, transformers {v['transformers']}. Load average "
      f"{m['load_average_start'][0]:.2f} at the start, "
      f"{m['load_average_end'][0]:.2f} at the end.",
      "",
  ]
  if json_name:
    lines += [f"Raw numbers: `{json_name}`.", ""]
  lines += table(result)
  flops_per_seq = result["flops"][0] / shapes[0][0] / 1e9
  lines += [
      "",
      f"ms/seq: median over {'/'.join(map(str, result['repeats_per_shape']))}"
      f" interleaved repeats after a first call and {result['warmup']} "
      f"warm-up call{'' if result['warmup'] == 1 else 's'}, per sequence "
      f"(call time / batch). ratio: to {baseline} at the same "
      f"shape. GFLOP/s: {flops_per_seq:.4g} GFLOP per sequence of "
      f"{shapes[0][1]} tokens (matmul multiply-adds x 2, see "
      "benchmarks/flops.py), against a 2048³ float32 tf.matmul at "
      f"{result['matmul_gflops']:.0f} GFLOP/s in the same run. peak MiB: "
      "peak RSS of a process running only that row at "
      f"b{result['memory_shape'][0]}×{result['memory_shape'][1]}, above its "
      "size after imports. rel. err: ‖row − ours‖/‖ours‖ of sequence_output "
      "(all rows hold the same weights).",
  ]
  skipped = [(r, t["error"]) for timing in result["timings"]
             for r, t in timing.items() if "error" in t]
  if skipped:
    lines += ["", "Skipped: " + "; ".join(
        f"{result['row_names'][r]} ({e})" for r, e in dict(skipped).items())
              + "."]
  layouts = _layout_lines(result)
  if layouts:
    lines += ["", "Attention layouts (ratio of medians, heads_first / "
              "standard):", ""] + layouts
  lines += ["", "Targets (ratios of this run):", ""] + _target_lines(result)
  return "\n".join(lines) + "\n"
