"""`python -m benchmarks.latency --quick`: a well-formed report (no timings).

The benchmark runs once per module, in-process, on its tiny quick config;
the tests check the shape of the markdown table and the JSON, the numerical
agreement of the rows (they share weights), and the FLOP formula. Timings
are never asserted.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import json
import re
import types

import pytest

from benchmarks import latency
from mobilebert_tf import MobileBertConfig

REPEATS = 2


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  output_dir = tmp_path_factory.mktemp("bench")
  code = latency.main(["latency", "--quick", f"--output_dir={output_dir}",
                       f"--repeats={REPEATS}"])
  assert code == 0
  markdown = (output_dir / "latency_quick.md").read_text(encoding="utf-8")
  result = json.loads((output_dir / "latency_quick.json").read_text(
      encoding="utf-8"))
  return types.SimpleNamespace(markdown=markdown, result=result)


def _table(markdown):
  lines = [line for line in markdown.splitlines() if line.startswith("|")]
  return [[cell.strip() for cell in line.strip("|").split("|")]
          for line in lines]


def test_table_is_well_formed(quick):
  table = _table(quick.markdown)
  header, separator, rows = table[0], table[1], table[2:]
  shapes = [tuple(s) for s in quick.result["shapes"]]
  assert len(shapes) == 3
  expected_header = ["row"]
  for batch, seq in shapes:
    expected_header += [f"b{batch}×{seq} ms/seq", "ratio"]
  assert header[:len(expected_header)] == expected_header
  assert header[len(expected_header):] == [
      f"GFLOP/s (b{shapes[0][0]}×{shapes[0][1]})", "% of matmul", "peak MiB",
      "rel. err vs ours"]
  assert len(separator) == len(header)
  assert [r[0] for r in rows] == [latency.ROW_NAMES[r] for r in latency.ROWS]
  for row in rows:
    assert len(row) == len(header)
    for i in range(len(shapes)):
      assert float(row[1 + 2 * i]) > 0
      assert re.fullmatch(r"\d+\.\d\dx", row[2 + 2 * i])
    assert float(row[-4]) > 0  # GFLOP/s
    assert float(row[-2]) >= 0  # peak MiB
    assert float(row[-1]) >= 0  # relative error
  baseline = rows[latency.ROWS.index(latency.BASELINE)]
  assert all(baseline[2 + 2 * i] == "1.00x" for i in range(len(shapes)))


def test_report_records_machine_flops_and_targets(quick):
  markdown, result = quick.markdown, quick.result
  machine = result["machine"]
  assert machine["logical_cores"] == os.cpu_count()
  assert machine["versions"]["tensorflow"]
  assert machine["cpu"] in markdown
  assert f"TensorFlow {machine['versions']['tensorflow']}" in markdown
  assert "GFLOP per sequence" in markdown
  assert result["matmul_gflops"] > 0
  config = MobileBertConfig.from_dict(latency.QUICK_CONFIG)
  assert result["flops"] == [latency.encoder_flops(config, b, s)
                             for b, s in result["shapes"]]
  targets = [line for line in markdown.splitlines() if line.startswith("- ")]
  assert len(targets) == len(latency.TARGETS)
  assert all(re.search(r": \d+\.\d\dx \(.*\) — (met|NOT met)", line)
             for line in targets)


def test_json_has_every_repeat_and_rows_agree(quick):
  result = quick.result
  assert result["rows"] == list(latency.ROWS)
  for timing in result["timings"]:
    for row in latency.ROWS:
      assert len(timing[row]["times"]) == REPEATS, row
      assert timing[row]["ms_per_sequence"] > 0
    # Every row holds the same weights as `ours`.
    for row in ("ours_xla", "ours_frozen", "hub", "tflite_none", "tfm",
                "tfm_xla", "tfm_frozen", "torch"):
      assert timing[row]["relative_error_vs_ours"] < 1e-4, row
    assert timing["tflite_float16"]["relative_error_vs_ours"] < 1e-2
    assert timing["tflite_dynamic"]["cosine_vs_ours"] > 0.999
  for row in latency.ROWS:
    memory = result["memory"][row]
    assert memory["peak_mib"] >= memory["baseline_mib"] > 0, row


def test_flop_formula():
  opt = MobileBertConfig.from_preset(latency.DEFAULT_CONFIG)
  t, s = 128, 128
  h, w, i, f, e = 512, 128, 512, 4, 3 * 128
  block = 2 * t * (h * w + h * w + 2 * w * w + h * w + 2 * s * w + w * w
                   + 2 * f * w * i + w * h)
  assert latency.encoder_flops(opt, 1, 128) == 2 * t * e * h + 24 * block
  assert 5.3e9 < latency.encoder_flops(opt, 1, 128) < 5.45e9
  assert latency.encoder_flops(opt, 8, 128) == 8 * latency.encoder_flops(
      opt, 1, 128)
  # A BERT block: 4 H^2 projections, 2 S H attention, 2 H I feed-forward.
  bert = MobileBertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=256)
  t = 2 * 16
  expected = 2 * (2 * t * (4 * 64 * 64 + 2 * 16 * 64 + 2 * 64 * 256))
  expected += 2 * 2 * 64 * 64  # tanh pooler
  assert latency.encoder_flops(bert, 2, 16) == expected


@pytest.mark.parametrize("argv, message", [
    (["--rows=ours,bogus"], "unknown bogus"),
    (["--shapes=1by128"], "--shapes must be like"),
    (["--config=/nonexistent/config.json"], "--config"),
    (["--quick", "--shapes=1x4096"], "exceeds the config's"),
])
def test_bad_flags_exit_2(argv, message, capsys):
  assert latency.main(["latency", *argv]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0]
