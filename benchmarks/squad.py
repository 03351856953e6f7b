r"""Fine-tunes the demonstration model on its bundled QA set: EM and F1,
in memory and as TFLite models from float32 to full int8.

  python -m benchmarks.squad [--quick] [--output_dir=benchmarks/results]

`python -m training.run_squad` runs (in this process): the bundled student
(`checkpoints/demo/model.ckpt`) on `checkpoints/demo/qa/train.json`
(standard library "What does NAME do?" questions, contexts of several
128-piece windows), predicting the held-out modules of `dev.json`. Three
fine-tunings with the same flags, as `benchmarks.quantization` makes its
classifiers: a float model; a float model with the quantization-friendly
mask rule (whose masked scores int8 can represent); and a
quantization-aware one (`--quantization_aware`). The float model becomes a
float32, a dynamic-range int8 and a post-training full-int8 TFLite model
(its first run writes the first; runs with `--do_predict` only, from its
checkpoint, the others), the friendly-mask one a post-training full-int8
model, the QAT one a full-int8 model with the ranges it learnt; full int8
calibrates on `--num_calibration_examples` training windows. Each TFLite
model answers every held-out question in LiteRT, scored as the in-memory
model (`run_squad`'s `tflite_eval_results.json`).

Writes `squad-<UTC date-time>-<cpu>.{json,md}`: EM and F1 by the official
SQuAD v1.1 evaluation of the float model beside two baselines scored the
same way (the first member's sentence of each context, and the sentence of
a random member); each TFLite model's EM and F1 beside its own in-memory
model's; the windows, the flags, the time and the machine. Target (the
on-device issue): QAT full int8 within 1 F1 point of float32.

`--quick` trains a step on the first questions of each file and makes three
of the TFLite models (for the tests: its scores mean nothing).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Sequence

from absl import flags

from benchmarks import command
from benchmarks import machine as machine_lib
from benchmarks import quantization
from benchmarks import result_files

PROGRAM = "python -m benchmarks.squad"
DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "checkpoints", "demo")
# The run's windows: the demo model has 128 positions; questions are short.
WINDOW = dict(max_seq_length=128, max_query_length=16, doc_stride=48)
# The classifier benchmark's five TFLite forms: (row id, label,
# quantization, fine-tuning). The first row of each fine-tuning is written by
# its training run, the others by runs that only predict.
VARIANTS = quantization.VARIANTS
QUICK_VARIANTS = ("float32", "dynamic", "int8_qat")
QUICK_QUESTIONS = dict(train=64, dev=16)
# The target.
MAX_F1_DROP_POINTS = 1.0


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("output_dir", os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results"),
                      "Where the result files go.", **define)
  flags.DEFINE_string("work_dir", None, "Checkpoints, predictions and "
                      "TFLite models, a directory per fine-tuning (default: "
                      "a temporary directory, removed).", **define)
  flags.DEFINE_float("num_train_epochs", 6.0, "Training epochs.", **define)
  flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate.", **define)
  flags.DEFINE_integer("train_batch_size", 32, "Batch size.", **define)
  flags.DEFINE_integer("num_calibration_examples", 100, "Training windows "
                       "that calibrate full int8 (and the QAT ranges before "
                       "training).", lower_bound=1, **define)
  flags.DEFINE_integer("seed", 1, "Seed of the head and the shuffle.",
                       **define)
  flags.DEFINE_boolean("quick", False, "A few steps: checks the plumbing.",
                       **define)
  return values


def baselines(dev_path: str, seed: int = 0) -> Dict[str, Dict[str, float]]:
  """EM and F1 of answering with the first, or a random, member's sentence
  of each context (what a model that ignores the question could do)."""
  from training import squad_data  # pylint: disable=g-import-not-at-top
  dataset = squad_data.load_dataset(dev_path)
  rng = random.Random(seed)
  first, chosen = {}, {}
  for article in dataset:
    for paragraph in article["paragraphs"]:
      sentences = [q["answers"][0]["text"] for q in paragraph["qas"]]
      for q in paragraph["qas"]:
        first[q["id"]] = sentences[0]
        chosen[q["id"]] = rng.choice(sentences)
  return {"first_member": squad_data.evaluate(dataset, first),
          "random_member": squad_data.evaluate(dataset, chosen)}


def _epochs(values) -> float:
  return 0.05 if values.quick else values.num_train_epochs


def _first_questions(path: str, count: int, target: str) -> str:
  """A copy of a SQuAD file with only its first `count` questions."""
  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  from training import squad_data  # pylint: disable=g-import-not-at-top
  kept, left = [], count
  for article in squad_data.load_dataset(path):
    paragraphs = []
    for paragraph in article["paragraphs"]:
      if left > 0 and paragraph["qas"]:
        paragraphs.append(dict(paragraph, qas=paragraph["qas"][:left]))
        left -= len(paragraphs[-1]["qas"])
    if paragraphs:
      kept.append(dict(article, paragraphs=paragraphs))
  return files.write_text(target, json.dumps({"version": "quick",
                                              "data": kept}),
                          overwrite=True)


def _data_files(values, work_dir: str) -> Dict[str, str]:
  """The bundled train/dev files (quick: their first questions)."""
  bundled = {split: os.path.join(DEMO_DIR, "qa", f"{split}.json")
             for split in ("train", "dev")}
  if not values.quick:
    return bundled
  return {split: _first_questions(path, QUICK_QUESTIONS[split],
                                  os.path.join(work_dir, f"{split}.json"))
          for split, path in bundled.items()}


def _variants(values):
  return [v for v in VARIANTS if not values.quick or v[0] in QUICK_VARIANTS]


def _run_squad_args(values, data: Dict[str, str], output_dir: str,
                    fine_tuning: str, row: str, tflite_quantization: str,
                    train: bool) -> List[str]:
  return [
      "--bert_config_file=" + quantization.config_file(
          fine_tuning, os.path.dirname(output_dir)),
      f"--init_checkpoint={os.path.join(DEMO_DIR, 'model.ckpt')}",
      f"--vocab_file={os.path.join(DEMO_DIR, 'vocab.txt')}",
      *(["--do_train", f"--train_file={data['train']}"] if train else []),
      "--do_predict", f"--predict_file={data['dev']}",
      f"--output_dir={output_dir}", f"--num_train_epochs={_epochs(values)}",
      f"--learning_rate={values.learning_rate}",
      f"--train_batch_size={values.train_batch_size}",
      f"--seed={values.seed}", "--steps_per_loop=20",
      "--save_checkpoints_steps=100000",
      f"--tflite_file={os.path.join(output_dir, row + '.tflite')}",
      f"--tflite_quantization={tflite_quantization}",
      # Measured here, not refused: the bar is what this benchmark informs.
      "--tflite_max_f1_drop=100",
      f"--num_calibration_examples={values.num_calibration_examples}",
      *(["--quantization_aware"] if fine_tuning == "qat" else []),
      *[f"--{k}={v}" for k, v in WINDOW.items()]]


def _read_json(path: str):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _run_squad(args: List[str], log) -> List[str]:
  """One `training.run_squad` run in this process; returns its lines."""
  from training import run_squad  # pylint: disable=g-import-not-at-top
  log(f"{PROGRAM}: python -m training.run_squad {' '.join(args)}")
  lines = []

  def collect(line):
    lines.append(line)
    log("  " + line)

  with contextlib.redirect_stdout(sys.stderr):  # Keras progress bars.
    code = run_squad.main(["run_squad", *args], log=collect)
  if code:
    raise RuntimeError(f"training.run_squad failed (exit code {code})")
  return lines


def _fine_tune(values, data: Dict[str, str], work_dir: str, log):
  """The fine-tunings and their TFLite models (VARIANTS), scored on the
  held-out questions."""
  from training import run_squad  # pylint: disable=g-import-not-at-top
  runs, records = {}, {}
  for fine_tuning in quantization.FINE_TUNINGS:
    rows = [v for v in _variants(values) if v[3] == fine_tuning]
    output_dir = os.path.join(work_dir, fine_tuning)
    for index, (row, _, tflite_quantization, _) in enumerate(rows):
      start = time.time()
      lines = _run_squad(_run_squad_args(
          values, data, output_dir, fine_tuning, row, tflite_quantization,
          train=index == 0), log)
      if index == 0:
        runs[fine_tuning] = dict(
            scores=_read_json(os.path.join(output_dir,
                                           run_squad.EVAL_RESULTS_FILE)),
            data=[l for l in lines if l.startswith(("Training data:",
                                                    "Predicting:"))],
            seconds=time.time() - start)
      records[row] = dict(
          _read_json(os.path.join(output_dir,
                                  run_squad.TFLITE_EVAL_RESULTS_FILE)),
          megabytes=os.path.getsize(os.path.join(
              output_dir, row + ".tflite")) / 2**20)
  return runs, records


def run(values, argv: Sequence[str], log) -> List[str]:
  """Runs the fine-tunings; returns the paths of the result files."""
  machine = machine_lib.machine_record()
  start = time.time()
  work_dir = values.work_dir or tempfile.mkdtemp(prefix="mobilebert-squad-")
  try:
    data = _data_files(values, work_dir)
    runs, variants = _fine_tune(values, data, work_dir, log)
    baseline_scores = baselines(data["dev"])
  finally:
    if not values.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  machine["load_average_end"] = list(os.getloadavg())
  result = dict(
      machine=machine, argv=list(argv[1:]),
      flags={name: values[name].value for name in sorted(values)},
      quick=values.quick, epochs=_epochs(values), window=WINDOW,
      # Quick: the copies of the first questions, in --work_dir.
      data_files={k: os.path.basename(v) if values.quick else
                  os.path.relpath(v, os.path.dirname(os.path.dirname(
                      DEMO_DIR))) for k, v in data.items()},
      data=runs["float"]["data"], fine_tuned=runs["float"]["scores"],
      baselines=baseline_scores, runs=runs, variants=variants,
      seconds=time.time() - start)
  stem = os.path.join(values.output_dir,
                      f"squad-{machine['timestamp']}-{machine['cpu_slug']}"
                      + ("-quick" if values.quick else ""))
  return result_files.write(stem, result, format_report, start, log)


def format_report(result: dict, json_name: str = None) -> str:
  """The Markdown report of a result."""
  m = result["machine"]
  rows = [("demo model fine-tuned", result["fine_tuned"])] + [
      (f"baseline: {name.replace('_', ' ')}'s sentence", scores)
      for name, scores in result["baselines"].items()]
  lines = [
      f"# SQuAD-format fine-tuning of the demo model "
      f"({'quick, meaningless' if result['quick'] else 'full run'})", "",
      f"{m['date']}, {m['cpu']} ({m['usable_cores']} usable cores), "
      f"TensorFlow {m['versions'].get('tensorflow')}, commit "
      f"{m.get('git_commit')}.", "",
      "Held-out modules of `checkpoints/demo/qa/dev.json`, official SQuAD "
      "v1.1 evaluation:", "",
      "| model | EM | F1 |", "|---|---|---|"]
  for name, scores in rows:
    lines.append(f"| {name} | {scores['exact_match']:.1f} | "
                 f"{scores['f1']:.1f} |")
  variants = result.get("variants", {})
  if variants:
    lines += ["", "The TFLite models (batch 1 x 128) in LiteRT on the same "
              "questions, each beside its own in-memory model:", "",
              "| TFLite model | EM | F1 | in memory EM | in memory F1 | "
              "same answer | MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row, label, _, _ in VARIANTS:
      if row in variants:
        v = variants[row]
        lines.append(
            f"| {label} | {v['exact_match']:.2f} | {v['f1']:.2f} | "
            f"{v['reference_exact_match']:.2f} | {v['reference_f1']:.2f} | "
            f"{100 * v['same_answer']:.1f}% | {v['megabytes']:.2f} |")
    if "float32" in variants and "int8_qat" in variants:
      drop = variants["float32"]["f1"] - variants["int8_qat"]["f1"]
      lines += ["", f"Target: QAT full int8 within {MAX_F1_DROP_POINTS:g} F1 "
                f"point of float32: {abs(drop):.2f} points "
                f"{'below' if drop > 0 else 'above'} it "
                f"({'met' if drop <= MAX_F1_DROP_POINTS else 'NOT met'})."]
  flags_ = result["flags"]
  seconds = " ".join(f"{name} {run['seconds']:.0f} s;" for name, run in
                     result.get("runs", {}).items())
  lines += ["", f"{result['epochs']:g} epochs, batch "
            f"{flags_['train_batch_size']}, learning rate "
            f"{flags_['learning_rate']:g}, windows "
            f"{result['window']['max_seq_length']} (stride "
            f"{result['window']['doc_stride']}); "
            + " ".join(result["data"]) +
            (f" Fine-tunings (with their first TFLite model): {seconds}"
             if seconds else "") +
            f" {result['seconds']:.0f} s in all."]
  if json_name:
    lines += ["", f"Every number: `{json_name}`."]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
  """Runs the benchmark on `argv` (argv[0] is the program name)."""
  return command.main(argv, PROGRAM, __doc__, _define_flags, run)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
