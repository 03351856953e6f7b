"""`python -m benchmarks.training`: result files, fairness, ratios, data tools.

One --quick run (a fresh process, as a user runs it; no memory processes,
no heads_first row: its trace takes seconds) serves the module's tests.
They check what the result files claim: the machine and versions; that
every row computes the same losses from the same weights, before and after
its steps (so the timed steps do the same work); that the ratios are the
measured values' ratios; that both data tools wrote records of the same
format. Timings themselves are never asserted. The per-row memory process
is `slow`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import datetime
import statistics

import pytest

from benchmarks import training
from mobilebert_tf import MobileBertConfig
from mobilebert_tf.vocab import SPECIAL_TOKENS
from tests import helpers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", name="quick_run")
def _quick_run(tmp_path_factory):
  output_dir = tmp_path_factory.mktemp("training")
  # Without the heads_first row: it would add a trace of seconds.
  return helpers.run_benchmark(
      "training", ["--quick", f"--output_dir={output_dir}", "--nomemory",
                   "--rows=ours,tfm"], output_dir, timeout=600)


def _tables(markdown):
  """The markdown tables: lists of {header: cell} rows, in order."""
  tables, current = [], None
  for line in markdown.splitlines() + [""]:
    if line.startswith("|"):
      cells = [c.strip() for c in line.strip("|").split("|")]
      if current is None:
        current = dict(header=cells, rows=[])
      elif not set("".join(cells)) <= set("-:"):
        current["rows"].append(dict(zip(current["header"], cells)))
    elif current is not None:
      tables.append(current["rows"])
      current = None
  return tables


# === The result files ===


def test_files_record_date_cpu_versions_and_flags(quick_run):
  helpers.assert_records_the_run(
      quick_run, "training", ("tensorflow", "tf_keras", "tf-models-official"),
      max_start_delay=datetime.timedelta(minutes=2))
  result, m = quick_run.result, quick_run.result["machine"]
  assert result["config"]["num_hidden_layers"] == 1
  assert result["rows"] == ["ours", "tfm"]
  assert (f"tf-models-official {m['versions']['tf-models-official']}"
          in quick_run.markdown)


def test_markdown_is_the_report_of_the_json(quick_run):
  assert quick_run.markdown == training.format_report(
      quick_run.result, os.path.basename(quick_run.json_path))


def test_quick_runs_never_default_to_the_committed_results():
  assert training.latency.default_output_dir(quick=False) == os.path.join(
      REPO_ROOT, "benchmarks", "results")
  assert not training.latency.default_output_dir(quick=True).startswith(
      os.path.join(REPO_ROOT, "benchmarks"))
  stem = training.result_stem(dict(timestamp="20260101T000000Z",
                                   cpu_slug="amd-epyc"), quick=False)
  assert stem == "training-20260101T000000Z-amd-epyc"


# === The train step ===


def test_every_row_computes_the_same_losses(quick_run):
  """Same weights, batch, losses and optimizer: the same numbers.

  The quick config has no dropout, so the losses after the rows' steps
  (each row trains its own copy) agree too: the updates were the same.
  """
  timings = quick_run.result["timings"]
  ours = timings["ours"]
  assert sorted(ours["initial_losses"]) == sorted(training.LOSS_NAMES)
  # The steps changed the weights (the comparison below is not vacuous).
  assert ours["final_losses"]["loss"] < 0.99 * ours["initial_losses"]["loss"]
  for row in quick_run.result["rows"]:
    t = timings[row]
    assert "error" not in t, (row, t.get("error"))
    for key in ("initial_losses", "final_losses"):
      for name, value in t[key].items():
        assert value == pytest.approx(ours[key][name], rel=1e-5), (row, key)
    assert t["loss_relative_difference_vs_ours"] <= 1e-5
    assert t["final_loss_relative_difference_vs_ours"] <= 1e-5


def test_ratios_are_the_measured_values(quick_run):
  result = quick_run.result
  timings, batch = result["timings"], result["batch_size"]
  steps_table = _tables(quick_run.markdown)[0]
  by_name = {row["row"]: row for row in steps_table}
  assert sorted(by_name) == sorted(result["row_names"].values())
  for row in result["rows"]:
    t = timings[row]
    assert len(t["times"]) == result["repeats"]
    assert t["ms_per_step"] == pytest.approx(
        statistics.median(t["times"]) * 1e3, rel=1e-12)
    assert t["examples_per_s"] == pytest.approx(
        batch / (t["ms_per_step"] / 1e3), rel=1e-12)
    assert t["ratio"] == pytest.approx(
        t["examples_per_s"] / timings["tfm"]["examples_per_s"], rel=1e-12)
    cells = by_name[result["row_names"][row]]
    assert cells["examples/s"] == f"{t['examples_per_s']:.2f}"
    assert cells["ratio"] == f"{t['ratio']:.2f}x"
  assert timings["tfm"]["ratio"] == 1.0
  ratio = timings["ours"]["ratio"]
  status = "met" if ratio >= training.TARGET_RATIO else "NOT met"
  assert (f"ours >= 1.25x tf-models-official examples/s: {ratio:.2f}x — "
          f"{status}") in quick_run.markdown


# === The data tools ===


def test_both_data_tools_wrote_records_of_the_same_format(quick_run):
  data = quick_run.result["data"]
  assert data["lines"] == training.QUICK_DATA_LINES
  assert data["dupe_factor"] == training.QUICK_DUPE_FACTOR
  data_table = {row["tool"]: row for row in _tables(quick_run.markdown)[1]}
  for tool, t in data["tools"].items():
    assert "error" not in t, (tool, t.get("error"))
    # Every record parsed with training.records' spec (count_records).
    assert t["instances"] > 0
    assert len(t["times"]) == data["repeats"]
    assert t["seconds"] == statistics.median(t["times"])
    assert t["instances_per_s"] == pytest.approx(
        t["instances"] / t["seconds"], rel=1e-12)
    assert t["ratio"] == pytest.approx(
        t["instances_per_s"] / data["tools"]["tfm"]["instances_per_s"],
        rel=1e-12)
    cells = data_table[data["tool_names"][tool]]
    assert cells["instances"] == str(t["instances"])
    assert cells["ratio"] == f"{t['ratio']:.2f}x"
  # The same flags for both (google-research/bert's), ours adds --overwrite.
  ours, tfm = data["tools"]["ours"]["command"], data["tools"]["tfm"]["command"]
  assert ours[:2] == ["-m", "training.create_pretraining_data"]
  assert "--output_file=ours.tfrecord" in ours
  assert "--output_file=tfm.tfrecord" in tfm
  def shared_flags(command):
    return [f for f in command[2:] if not f.startswith("--output_file=")]
  assert shared_flags(ours) == shared_flags(tfm) + ["--overwrite"]


def test_corpus_needs_lower_casing_and_word_pieces(tmp_path):
  corpus, vocab = tmp_path / "corpus.txt", tmp_path / "vocab.txt"
  assert training.write_corpus(str(corpus), str(vocab), 300) == 300
  lines = corpus.read_text(encoding="utf-8").splitlines()
  pieces = vocab.read_text(encoding="utf-8").splitlines()
  assert len(lines) == 300 and pieces[:len(SPECIAL_TOKENS)] == list(
      SPECIAL_TOKENS)
  assert "" in lines and lines[0][0].isupper()
  words = {w.strip(".,").lower() for line in lines for w in line.split()}
  whole = set(pieces)
  split = {w for w in words if w not in whole}
  assert split, "no word needs word pieces"
  for word in split:  # Each splits into a known word + a "##" syllable.
    assert any(word[:i] in whole and f"##{word[i:]}" in whole
               for i in range(1, len(word))), word


# === Flags and the memory process ===


@pytest.mark.parametrize("argv, message", [
    (["--rows=ours,bogus"], "unknown bogus"),
    (["--config=/nonexistent/config.json"], "--config"),
    (["--quick", "--seq_length=4096"], "exceeds the config's"),
    (["--quick", "--max_predictions=16"], "must be less than --seq_length"),
    (["--quick", "--repeats=0"], "--repeats must be at least 1"),
    (["--memory_child=bogus"], "--memory_child"),
    (["--bogus"], "bogus"),
])
def test_bad_flags_exit_2(argv, message, capsys):
  assert training.main(["training", *argv]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_memory_process_reports_its_peak(tmp_path):
  config = MobileBertConfig.from_dict(training.QUICK_CONFIG)
  config_file = tmp_path / "config.json"
  config_file.write_text(config.to_json_string(), encoding="utf-8")
  figures = training.measure_memory("tfm", str(config_file), (2, 16, 3),
                                    quick=True, timeout=300)
  assert "error" not in figures, figures
  assert figures["peak_mib"] > figures["baseline_mib"] > 0
  assert figures["increment_mib"] == pytest.approx(
      figures["peak_mib"] - figures["baseline_mib"])
