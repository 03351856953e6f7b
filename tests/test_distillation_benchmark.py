"""`python -m benchmarks.distillation`: result files, statistics, targets.

One --quick run (a fresh process, as a user runs it: tiny teacher and
student, one seed, a few steps of every run) serves the module's tests.
They check what the result files claim: the machine and versions; that
every row trained and was evaluated with the step counts the comparison
promises (every student row the same number of steps); that the means,
standard deviations, examples/s and target verdicts are those of the
per-seed numbers. The accuracies of a quick run mean nothing and timings
are never asserted; the statistics and targets are also checked on
made-up seeds.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import datetime
import math

import numpy as np
import pytest

from benchmarks import distillation
from tests import helpers

REPO_ROOT = helpers.REPO_ROOT

# Phases of each row, in order.
PHASES = {
    "teacher": ["pretraining", "evaluation"],
    "pkt": ["layer_wise", "pretraining_distillation", "evaluation"],
    "jkt": ["layer_wise", "pretraining_distillation", "evaluation"],
    "akt": ["pretraining_distillation", "evaluation"],
    "scratch": ["pretraining", "evaluation"],
}


@pytest.fixture(scope="module", name="quick_run")
def _quick_run(tmp_path_factory):
  base = tmp_path_factory.mktemp("distillation")
  output_dir, work_dir = base / "results", base / "work"
  run = helpers.run_benchmark(
      "distillation", ["--quick", f"--output_dir={output_dir}",
                       f"--work_dir={work_dir}"], str(output_dir),
      timeout=600)
  run.work_dir = work_dir
  return run


# === The result files ===


def test_files_record_date_cpu_versions_and_flags(quick_run):
  helpers.assert_records_the_run(
      quick_run, "distillation", ("tensorflow", "tf_keras"),
      max_start_delay=datetime.timedelta(minutes=2))
  assert quick_run.result["seeds"] == [1]
  # The work directory (records, models, logs) is gone without
  # --keep_work_dir.
  assert not quick_run.work_dir.exists()


def test_markdown_is_the_report_of_the_json(quick_run):
  assert quick_run.markdown == distillation.format_report(
      quick_run.result, os.path.basename(quick_run.json_path))


def test_quick_runs_never_default_to_the_committed_results():
  assert distillation.latency.default_output_dir(quick=False) == (
      os.path.join(REPO_ROOT, "benchmarks", "results"))
  stem = distillation.result_stem(dict(timestamp="20260101T000000Z",
                                       cpu_slug="amd-epyc"), quick=False)
  assert stem == "distillation-20260101T000000Z-amd-epyc"


# === The runs ===


def test_every_row_trained_as_many_student_steps_and_was_evaluated(
    quick_run):
  result = quick_run.result
  steps, batch = result["steps"], result["batch_size"]
  assert result["rows"] == list(distillation.ROW_IDS)
  assert result["data"]["held_out_instances"] > 0
  assert 0 < result["data"]["held_out_random_next"] < 1
  assert 0 < result["data"]["held_out_lines"] < result["data"]["lines"]
  assert steps["student"] == steps["distill"] + steps["train"]
  for row in result["rows"]:
    runs = result["per_seed"][row]
    assert [r["seed"] for r in runs] == result["seeds"], row
    for r in runs:
      assert "error" not in r, (row, r.get("error"))
      for name in distillation.METRICS:
        assert math.isfinite(r[name]) and 0.0 <= r[name] <= 1.0, (row, name)
      # Every held-out record was evaluated.
      assert r["eval_steps"] == math.ceil(
          result["data"]["held_out_instances"] / result["eval_batch_size"])
      assert list(r["phases"]) == PHASES[row]
      trained = 0
      for phase, figures in r["phases"].items():
        assert figures["seconds"] > 0, (row, phase)
        if phase != "evaluation":
          trained += figures["steps"]
          assert figures["examples_per_s"] == pytest.approx(
              figures["steps"] * batch / figures["seconds"], rel=1e-12)
      assert trained == (steps["teacher"] if row == "teacher"
                         else steps["student"]), row
      assert r["seconds"] == pytest.approx(
          sum(f["seconds"] for f in r["phases"].values()), rel=1e-9)
  for row in ("pkt", "jkt"):
    assert result["per_seed"][row][0]["phases"]["layer_wise"]["steps"] == (
        steps["distill"])


def test_summary_is_mean_and_std_of_the_seeds(quick_run):
  result = quick_run.result
  for row in result["rows"]:
    runs, summary = result["per_seed"][row], result["summary"][row]
    for name in distillation.METRICS + ("seconds",):
      values = [r[name] for r in runs]
      assert summary[name]["n"] == len(values)
      assert summary[name]["mean"] == pytest.approx(np.mean(values),
                                                    rel=1e-12)
      # One seed: no standard deviation.
      assert summary[name]["std"] is None
      cell = distillation.format_mean_std(summary[name], 100, 2)
      if name != "seconds":
        assert cell == f"{100 * np.mean(values):.2f}"
    table_row = "| " + " | ".join(
        [result["row_names"][row], "1"]
        + [distillation.format_mean_std(summary[name], 100, 2)
           for name in distillation.METRICS]) + " |"
    assert table_row in quick_run.markdown


def test_targets_follow_from_the_numbers(quick_run):
  result = quick_run.result
  top1 = {row: result["per_seed"][row][0]["masked_lm_accuracy"]
          for row in ("teacher", "pkt", "scratch")}
  beats = result["targets"]["beats_scratch"]
  reaches = result["targets"]["reaches_teacher"]
  # One seed: the stds count as 0, so beating scratch is any difference.
  assert beats["difference"] == pytest.approx(top1["pkt"] - top1["scratch"])
  assert beats["margin"] == 0.0
  assert beats["met"] is (top1["pkt"] - top1["scratch"] > 0)
  assert reaches["ratio"] == pytest.approx(top1["pkt"] / top1["teacher"])
  assert reaches["met"] is (top1["pkt"] / top1["teacher"] >= 0.9)
  lines = distillation.target_lines(result)
  assert lines[0].endswith(f"— {str(beats['met']).lower()}")
  assert lines[1].endswith(f"— {str(reaches['met']).lower()}")
  for line in lines:
    assert line in quick_run.markdown


# === Statistics and targets on made-up seeds ===


def _runs(values):
  return [dict(seed=i, masked_lm_accuracy=v, masked_lm_top5_accuracy=v,
               next_sentence_accuracy=0.5, masked_lm_loss=1.0, seconds=1.0,
               cpu_seconds=1.0, phases={"evaluation": dict(seconds=1.0)})
          for i, v in enumerate(values)]


@pytest.mark.parametrize("pkt, scratch, teacher, beats, reaches", [
    # Clear win: difference 0.10 > 2 x 0.01; 0.31 / 0.335 = 0.925.
    ([0.30, 0.31, 0.32], [0.20, 0.21, 0.22], [0.33, 0.335, 0.34], True,
     True),
    # Difference 0.03 < 2 x the larger std (0.02); 0.31 / 0.40 < 0.9.
    ([0.30, 0.31, 0.32], [0.26, 0.28, 0.30], [0.40, 0.40, 0.40], False,
     False),
])
def test_targets_on_made_up_seeds(pkt, scratch, teacher, beats, reaches):
  summaries = {"pkt": distillation.summarize(_runs(pkt)),
               "scratch": distillation.summarize(_runs(scratch)),
               "teacher": distillation.summarize(_runs(teacher))}
  for name, values in (("pkt", pkt), ("scratch", scratch)):
    stats = summaries[name]["masked_lm_accuracy"]
    assert stats["mean"] == pytest.approx(np.mean(values))
    assert stats["std"] == pytest.approx(np.std(values, ddof=1))
    assert stats["n"] == 3
  found = distillation.targets(summaries)
  larger = max(np.std(pkt, ddof=1), np.std(scratch, ddof=1))
  assert found["beats_scratch"]["larger_std"] == pytest.approx(larger)
  assert found["beats_scratch"]["met"] is beats
  assert found["reaches_teacher"]["ratio"] == pytest.approx(
      np.mean(pkt) / np.mean(teacher))
  assert found["reaches_teacher"]["met"] is reaches


def test_failed_seeds_are_left_out_and_a_missing_row_is_not_measured():
  runs = _runs([0.3, 0.5]) + [dict(seed=9, error="exit code 2")]
  summary = distillation.summarize(runs)
  assert summary["masked_lm_accuracy"]["n"] == 2
  assert summary["masked_lm_accuracy"]["mean"] == pytest.approx(0.4)
  missing = distillation.summarize([dict(seed=1, error="exit code 2")])
  assert missing["masked_lm_accuracy"] == dict(mean=None, std=None, n=0)
  found = distillation.targets({"pkt": summary, "scratch": missing,
                                "teacher": summary})
  assert found["beats_scratch"]["met"] is None
  assert found["reaches_teacher"]["met"] is True  # PKT = teacher here.


# === Flags ===


@pytest.mark.parametrize("argv, message", [
    (["--seeds=1,x"], "--seeds must be comma-separated integers"),
    (["--seeds=1,1"], "each once"),
    (["--seeds="], "at least one seed"),
    (["--rows=pkt,bogus"], "unknown bogus"),
    (["--teacher_steps=0"], "--teacher_steps must be at least 1"),
    (["--distill_steps=2"], "at least the student's 4 blocks"),
    (["--quick", "--seq_length=4096"], "exceeds the configs'"),
    (["--quick", "--max_predictions=32"], "must be less than --seq_length"),
    (["--learning_rate=0"], "--learning_rate must be positive"),
    (["--bogus"], "bogus"),
])
def test_bad_flags_exit_2(argv, message, capsys):
  assert distillation.main(["distillation", *argv]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err


def test_a_used_work_dir_is_refused(tmp_path, capsys):
  (tmp_path / "seed-1").mkdir()  # An earlier run's models would resume.
  assert distillation.main(["distillation", "--quick",
                            f"--work_dir={tmp_path}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "not a new or empty directory" in err[0], err
  assert os.listdir(tmp_path) == ["seed-1"]


def test_a_failed_run_reports_its_error_line(tmp_path):
  log = tmp_path / "run.log"
  outcome = distillation._call(  # pylint: disable=protected-access
      "pretrain", ["--bert_config_file=/nonexistent/config.json",
                   f"--model_dir={tmp_path / 'model'}",
                   f"--input_file={tmp_path / 'none.tfrecord'}"], str(log))
  assert outcome["error"].startswith("python -m training.pretrain: error:")
  assert outcome["error"] in log.read_text(encoding="utf-8")
  assert outcome["end"] >= outcome["start"]
