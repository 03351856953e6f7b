"""`python -m benchmarks.latency`: result files, agreement, ratios, FLOPs.

One --quick run of every row (SavedModel, TFLite, XLA; the peak memory of
one row of each kind of process) runs once per module, in a fresh process,
into a temporary directory. The tests check what a result file claims: the machine and versions, that every row computes what
ours computes, that the ratios are the medians' ratios, that the FLOP count
is the traced graph's. Timings themselves are never asserted.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import datetime
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import flops
from benchmarks import latency
from benchmarks import machine
from benchmarks import report
from benchmarks import rows as rows_lib
from benchmarks import timing as timing_lib
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_encoder
from mobilebert_tf.encoder import ENCODER_INPUTS
from tests import helpers

REPEATS = 2
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Peak memory of one row of each kind of process: TensorFlow, PyTorch,
# LiteRT (one process per row measured).
MEMORY_ROWS = ("ours", "torch", "tflite_none")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """Every row at one --quick shape, in a fresh process."""
  output_dir = tmp_path_factory.mktemp("quick")
  return helpers.run_benchmark(
      "latency", ["--quick", f"--output_dir={output_dir}",
                  f"--repeats={REPEATS}", "--shapes=1x16",
                  f"--memory_rows={','.join(MEMORY_ROWS)}"], output_dir)


def _table(markdown):
  """{row label: cells} of the markdown table, and its header."""
  lines = [line for line in markdown.splitlines() if line.startswith("|")]
  cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
  return cells[0], {row[0]: row[1:] for row in cells[2:]}


# === The result files ===


def test_files_record_date_cpu_versions_and_flags(run):
  helpers.assert_records_the_run(
      run, "latency", ("tensorflow", "tf_keras", "tf-models-official", "torch",
                       "transformers"),
      max_start_delay=datetime.timedelta(minutes=1))
  assert run.result["flags"]["repeats"] == REPEATS
  assert f"torch {run.result['machine']['versions']['torch']}" in run.markdown


def test_markdown_is_the_report_of_the_json(run):
  assert run.markdown == report.format_report(
      run.result, os.path.basename(run.json_path))


def test_quick_runs_never_default_to_the_committed_results():
  assert latency.default_output_dir(quick=False) == os.path.join(
      REPO_ROOT, "benchmarks", "results")
  quick_dir = latency.default_output_dir(quick=True)
  assert not quick_dir.startswith(os.path.join(REPO_ROOT, "benchmarks"))


def test_interleaved_rotates_the_order_and_times_every_call():
  calls = []
  runners = {row: (lambda row=row: calls.append(row)) for row in "abc"}
  times = timing_lib.interleaved(runners, repeats=3)
  assert calls == list("abc" "bca" "cab")
  assert {row: len(t) for row, t in times.items()} == dict(a=3, b=3, c=3)
  assert all(t >= 0 for ts in times.values() for t in ts)
  assert timing_lib.error_text(ValueError("bad\nmore")) == "ValueError: bad"


def test_cpu_slug():
  assert (machine.cpu_slug("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")
          == "intel-xeon-platinum-8375c")
  assert machine.cpu_slug("AMD EPYC") == "amd-epyc"
  assert re.fullmatch(r"[a-z0-9-]+", machine.cpu_slug("??"))


# === The rows ===


def test_every_row_ran_and_agrees_with_ours(run):
  result = run.result
  assert result["rows"] == list(rows_lib.ROW_IDS)
  for timing in result["timings"]:
    for row_id in result["rows"]:
      t, row = timing[row_id], rows_lib.BY_ID[row_id]
      assert "error" not in t, (row_id, t.get("error"))
      if row.is_float32:
        assert t["relative_error_vs_ours"] <= 1e-5, row_id
        assert t["pooled_relative_error_vs_ours"] <= 1e-5, row_id
      elif row.quantization == "float16":
        assert t["relative_error_vs_ours"] <= 1e-2, row_id
      else:  # int8 weights: export.to_tflite's bar.
        assert t["cosine_vs_ours"] >= 0.999, row_id
        assert t["relative_error_vs_ours"] <= 5e-2, row_id
    assert timing["ours"]["relative_error_vs_ours"] == 0


def test_ratios_are_the_medians_ratios(run):
  result = run.result
  header, table = _table(run.markdown)
  shapes = [tuple(s) for s in result["shapes"]]
  assert header[1:1 + 2 * len(shapes)] == [
      h for b, s in shapes for h in (f"b{b}×{s} ms/seq", "ratio")]
  assert sorted(table) == sorted(result["row_names"].values())
  for i, ((batch, _), timing) in enumerate(zip(shapes, result["timings"])):
    base = timing[result["baseline"]]
    for row_id in result["rows"]:
      t = timing[row_id]
      assert len(t["times"]) == REPEATS
      assert t["ms_per_sequence"] == pytest.approx(
          np.median(t["times"]) * 1e3 / batch, rel=1e-12)
      assert t["ratio"] == pytest.approx(
          t["ms_per_sequence"] / base["ms_per_sequence"], rel=1e-12)
      cells = table[result["row_names"][row_id]]
      assert cells[2 * i] == f"{t['ms_per_sequence']:.2f}"
      assert cells[2 * i + 1] == f"{t['ratio']:.2f}x"
    assert base["ratio"] == 1.0


# === FLOPs ===


def _graph_flops(encoder, batch, seq):
  """2 x multiply-adds of every matmul op of the traced inference graph."""
  spec = {name: tf.TensorSpec([batch, seq], tf.int32)
          for name in ENCODER_INPUTS}
  function = tf.function(lambda x: encoder(x, training=False))
  graph = function.get_concrete_function(spec).graph
  total, calls = 0, []
  for op in graph.get_operations():
    if op.type == "MatMul":
      a, b = (t.shape for t in op.inputs)
      rows_, inner = (a[1], a[0]) if op.get_attr("transpose_a") else a
      cols = b[0] if op.get_attr("transpose_b") else b[1]
      total += 2 * rows_ * inner * cols
    elif op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
      a = op.inputs[0].shape
      inner = a[-2] if op.get_attr("adj_x") else a[-1]
      total += 2 * op.outputs[0].shape.num_elements() * inner
    elif op.type in ("Einsum", "Conv2D", "PartitionedCall",
                     "StatefulPartitionedCall"):
      calls.append(op.type)  # Would hide matmuls from this count.
  assert not calls, calls
  return total


@pytest.mark.parametrize("changes, layout", [
    ({}, "standard"), ({}, "heads_first"),
    (dict(classifier_activation=True), "standard"),
    (dict(use_bottleneck_attention=True), "standard"),
    (dict(use_bottleneck=False), "standard"),
    (dict(trigram_input=False, embedding_size=32), "standard"),
    (dict(key_query_shared_bottleneck=False, intra_bottleneck_size=8),
     "standard"),
], ids=["tiny", "tiny_heads_first", "pooler", "bottleneck_attention",
        "no_bottleneck", "no_trigram", "no_shared_bottleneck"])
def test_flops_equal_the_traced_graphs_matmuls(changes, layout):
  config = MobileBertConfig.from_dict({**helpers.TINY_CONFIG, **changes})
  encoder = build_encoder(config, attention_layout=layout)
  assert flops.encoder_flops(config, 2, 8) == _graph_flops(encoder, 2, 8)


def test_result_flops_are_the_quick_configs(run):
  result = run.result
  config = MobileBertConfig.from_dict(latency.QUICK_CONFIG)
  assert result["config"] == config.to_dict()
  encoder = build_encoder(config)
  assert result["flops"] == [_graph_flops(encoder, b, s)
                             for b, s in result["shapes"]]


def test_flops_of_the_english_model():
  opt = MobileBertConfig.from_preset(latency.DEFAULT_CONFIG)
  t, s = 128, 128
  h, w, i, f, e = 512, 128, 512, 4, 3 * 128
  block = 2 * t * (h * w + h * w + 2 * w * w + h * w + 2 * s * w + w * w
                   + 2 * f * w * i + w * h)
  assert flops.encoder_flops(opt, 1, 128) == 2 * t * e * h + 24 * block
  assert round(flops.encoder_flops(opt, 1, 128) / 1e9, 2) == 5.39
  assert flops.encoder_flops(opt, 8, 128) == 8 * flops.encoder_flops(
      opt, 1, 128)


# === Memory ===


def test_memory_rows_have_their_peak_memory(run):
  result = run.result
  assert sorted(result["memory"]) == sorted(MEMORY_ROWS)
  table = _table(run.markdown)[1]
  assert len(table) == len(result["rows"])  # every row, with or without
  for row_id, figures in result["memory"].items():
    assert "error" not in figures, (row_id, figures)
    assert figures["peak_mib"] >= figures["baseline_mib"] > 0, row_id
    assert figures["increment_mib"] == pytest.approx(
        figures["peak_mib"] - figures["baseline_mib"])
  # The PyTorch and TFLite processes never load TensorFlow.
  tf_baseline = result["memory"]["ours"]["baseline_mib"]
  for row_id in ("torch", "tflite_none"):
    assert result["memory"][row_id]["baseline_mib"] < tf_baseline, row_id


def test_memory_process_of_torch_imports_no_tensorflow(tmp_path):
  config = MobileBertConfig.from_dict(helpers.TINY_CONFIG)
  (tmp_path / "config.json").write_text(config.to_json_string(),
                                        encoding="utf-8")
  script = (
      "import sys; from benchmarks import memory; "
      f"figures = memory.child('torch', {str(tmp_path)!r}, (1, 8)); "
      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
      "print(figures['peak_mib'] >= figures['baseline_mib'] > 0)")
  done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, USE_TF="0"), check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip().splitlines()[-1] == "True"


# === Flags ===


@pytest.mark.parametrize("argv, message", [
    (["--rows=ours,bogus"], "unknown bogus"),
    (["--shapes=1by128"], "--shapes must be like"),
    (["--config=/nonexistent/config.json"], "--config"),
    (["--quick", "--shapes=1x4096"], "exceeds the config's"),
    (["--quick", "--repeats=0"], "--repeats must be at least 1"),
    (["--quick", "--rows=ours", "--memory_rows=torch"],
     "--memory_rows: torch names none of the rows run"),
    (["--bogus"], "bogus"),
])
def test_bad_flags_exit_2(argv, message, capsys):
  assert latency.main(["latency", *argv]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0]


def test_row_patterns():
  assert rows_lib.select("tflite_*") == [
      "ours", "tflite_none", "tflite_dynamic", "tflite_float16", "tfm"]
  assert rows_lib.select("ours*") == [
      r for r in rows_lib.ROW_IDS if r.startswith("ours")] + ["tfm"]
