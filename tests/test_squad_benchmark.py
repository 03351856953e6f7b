"""`python -m benchmarks.squad` and the demo model's QA set.

One --quick run (a fresh process, a few training steps) checks what the
result files claim: the machine, the flags, the scores of the run's own
predictions and the baselines, recomputed here from the bundled files. Its
scores mean nothing and timings are never asserted.
"""

import datetime
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from benchmarks import squad
from checkpoints.demo import qa_set
from tests import helpers
from tests import workspace
from training import squad_data

BUNDLED = {split: os.path.join(qa_set.BUNDLED_DIR, f"{split}.json")
           for split in ("train", "dev")}


@pytest.fixture(scope="module", name="quick_run")
def _quick_run(tmp_path_factory):
  base = tmp_path_factory.mktemp("squad_benchmark")
  output_dir = base / "results"
  run = helpers.run_benchmark(
      "squad", ["--quick", f"--output_dir={output_dir}",
                f"--work_dir={base / 'work'}"], str(output_dir), timeout=600)
  run.work_dir = base / "work"
  return run


def test_files_record_the_run_and_its_scores(quick_run):
  helpers.assert_records_the_run(
      quick_run, "squad", ("tensorflow", "tf_keras"),
      max_start_delay=datetime.timedelta(minutes=2))
  result = quick_run.result
  assert result["epochs"] == 0.05 and result["window"] == squad.WINDOW
  # Quick: the first questions of the bundled files, copied to --work_dir.
  dev_path = str(quick_run.work_dir / result["data_files"]["dev"])
  dataset = squad_data.load_dataset(dev_path)
  assert sum(len(p["qas"]) for a in dataset for p in a["paragraphs"]) == (
      squad.QUICK_QUESTIONS["dev"])
  first = squad_data.load_dataset(BUNDLED["dev"])[0]["paragraphs"][0]
  assert dataset[0]["paragraphs"][0]["qas"][0] == first["qas"][0]
  # The fine-tuned scores are the official evaluation of the float run's
  # own predictions (kept in --work_dir).
  with open(quick_run.work_dir / "float" / "predictions.json",
            encoding="utf-8") as f:
    predictions = json.load(f)
  assert result["fine_tuned"] == pytest.approx(
      squad_data.evaluate(dataset, predictions))
  assert result["baselines"] == squad.baselines(dev_path)
  for name, scores in [("demo model fine-tuned", result["fine_tuned"])]:
    assert (f"| {name} | {scores['exact_match']:.1f} | {scores['f1']:.1f} |"
            in quick_run.markdown)


def test_tflite_models_are_scored_beside_their_in_memory_models(quick_run):
  variants = quick_run.result["variants"]
  assert sorted(variants) == sorted(squad.QUICK_VARIANTS)
  labels = {row: label for row, label, _, _ in squad.VARIANTS}
  for row, record in variants.items():
    quantization = next(v[2] for v in squad.VARIANTS if v[0] == row)
    fine_tuning = next(v[3] for v in squad.VARIANTS if v[0] == row)
    assert record["quantization"] == quantization
    assert record["questions"] == squad.QUICK_QUESTIONS["dev"]
    # Each TFLite model's reference is its own fine-tuning's in-memory
    # evaluation (the float32 and dynamic rows share one).
    in_memory = quick_run.result["runs"][fine_tuning]["scores"]
    assert record["reference_f1"] == pytest.approx(in_memory["f1"])
    assert (quick_run.work_dir / fine_tuning / f"{row}.tflite").exists()
    assert (f"| {labels[row]} | {record['exact_match']:.2f} | "
            f"{record['f1']:.2f} |") in quick_run.markdown
  # float32 answers as its in-memory model (run_squad's check).
  assert variants["float32"]["same_answer"] == 1.0
  assert "Target: QAT full int8 within 1 F1 point of float32: " in (
      quick_run.markdown)


def test_baselines_score_the_first_member_of_each_context(tmp_path):
  context = "load: Read a thing. dump: Write a thing."
  document = {"data": [{"paragraphs": [{"context": context, "qas": [
      {"id": "load", "question": "What does load do?",
       "answers": [{"text": "Read a thing.", "answer_start": 6}]},
      {"id": "dump", "question": "What does dump do?",
       "answers": [{"text": "Write a thing.", "answer_start": 26}]}]}]}]}
  path = tmp_path / "dev.json"
  path.write_text(json.dumps(document), encoding="utf-8")
  first = squad.baselines(str(path))["first_member"]
  # "load" right; "dump" gets "Read a thing." -> "thing" shared: F1 1/2.
  assert first["exact_match"] == pytest.approx(50.0)
  assert first["f1"] == pytest.approx(100.0 * (1 + 0.5) / 2)


def test_bundled_set_has_answers_at_their_offsets_and_disjoint_modules():
  modules = {}
  for split, path in BUNDLED.items():
    examples, skipped = squad_data.read_examples(path, is_training=True)
    assert skipped == 0 and len(examples) >= 100
    for example in examples:
      assert example.context[example.answer_start:].startswith(
          example.answer_text)
      name = example.question[len("What does "):-len(" do?")]
      assert example.context[:example.answer_start].endswith(f"{name}: ")
      assert example.qas_id.endswith("." + name)
    modules[split] = {a["title"] for a in squad_data.load_dataset(path)}
    assert all(qa_set.is_held_out(m) == (split == "dev")
               for m in modules[split])
  assert not modules["train"] & modules["dev"]


def test_qa_set_cli_writes_both_files_and_refuses_to_overwrite(tmp_path):
  command = [sys.executable, "-m", "checkpoints.demo.qa_set",
             f"--output_dir={tmp_path}"]
  done = subprocess.run(command, cwd=workspace.REPO,
                        env=workspace.environment(), capture_output=True,
                        text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  for split in ("train", "dev"):
    examples, skipped = squad_data.read_examples(
        str(tmp_path / f"{split}.json"), is_training=True)
    assert skipped == 0 and examples
  again = subprocess.run(command, cwd=workspace.REPO,
                         env=workspace.environment(), capture_output=True,
                         text=True, timeout=300, check=False)
  assert again.returncode == 2
  errors = [line for line in again.stderr.splitlines()
            if line.startswith("python -m checkpoints.demo.qa_set: error: ")]
  assert len(errors) == 1 and "already exists. Pass --overwrite" in errors[0]
  assert "Traceback" not in again.stderr
