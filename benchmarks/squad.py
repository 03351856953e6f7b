r"""Fine-tunes the demonstration model on its bundled QA set: EM and F1.

  python -m benchmarks.squad [--quick] [--output_dir=benchmarks/results]

One `python -m training.run_squad` run (in this process): the bundled
student (`checkpoints/demo/model.ckpt`) on `checkpoints/demo/qa/train.json`
(standard library "What does NAME do?" questions, contexts of several
128-piece windows), predicting the held-out modules of `dev.json`. Writes
`squad-<UTC date-time>-<cpu>.{json,md}`: EM and F1 by the official SQuAD
v1.1 evaluation, beside two baselines scored the same way (the first
member's sentence of each context, and the sentence of a random member), the
windows, the flags, the time and the machine.

`--quick` trains a few steps (for the tests: its scores mean nothing).
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
from benchmarks import result_files

PROGRAM = "python -m benchmarks.squad"
DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "checkpoints", "demo")
# The run's windows: the demo model has 128 positions; questions are short.
WINDOW = dict(max_seq_length=128, max_query_length=16, doc_stride=48)


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("output_dir", os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results"),
                      "Where the result files go.", **define)
  flags.DEFINE_string("work_dir", None, "Checkpoints and predictions "
                      "(default: a temporary directory, removed).", **define)
  flags.DEFINE_float("num_train_epochs", 6.0, "Training epochs.", **define)
  flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate.", **define)
  flags.DEFINE_integer("train_batch_size", 32, "Batch size.", **define)
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


def _run_squad_args(values, work_dir: str) -> List[str]:
  epochs = _epochs(values)
  return [
      f"--bert_config_file={os.path.join(DEMO_DIR, 'bert_config.json')}",
      f"--init_checkpoint={os.path.join(DEMO_DIR, 'model.ckpt')}",
      f"--vocab_file={os.path.join(DEMO_DIR, 'vocab.txt')}",
      "--do_train", f"--train_file={os.path.join(DEMO_DIR, 'qa', 'train.json')}",
      "--do_predict",
      f"--predict_file={os.path.join(DEMO_DIR, 'qa', 'dev.json')}",
      f"--output_dir={work_dir}", f"--num_train_epochs={epochs}",
      f"--learning_rate={values.learning_rate}",
      f"--train_batch_size={values.train_batch_size}",
      f"--seed={values.seed}", "--steps_per_loop=20",
      "--save_checkpoints_steps=100000",
      *[f"--{k}={v}" for k, v in WINDOW.items()]]


def run(values, argv: Sequence[str], log) -> List[str]:
  """Runs the fine-tuning; returns the paths of the result files."""
  from training import run_squad  # pylint: disable=g-import-not-at-top
  machine = machine_lib.machine_record()
  start = time.time()
  work_dir = values.work_dir or tempfile.mkdtemp(prefix="mobilebert-squad-")
  lines = []
  try:
    args = _run_squad_args(values, work_dir)
    log(f"{PROGRAM}: python -m training.run_squad {' '.join(args)}")

    def collect(line):
      lines.append(line)
      log("  " + line)

    with contextlib.redirect_stdout(sys.stderr):  # Keras progress bars.
      code = run_squad.main(["run_squad", *args], log=collect)
    if code:
      raise RuntimeError(f"training.run_squad failed (exit code {code})")
    with open(os.path.join(work_dir, run_squad.EVAL_RESULTS_FILE),
              encoding="utf-8") as f:
      scores = json.load(f)
  finally:
    if not values.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  dev = os.path.join(DEMO_DIR, "qa", "dev.json")
  summary = [l for l in lines if l.startswith(("Training data:",
                                                "Predicting:"))]
  machine["load_average_end"] = list(os.getloadavg())
  result = dict(
      machine=machine, argv=list(argv[1:]),
      flags={name: values[name].value for name in sorted(values)},
      quick=values.quick, epochs=_epochs(values), window=WINDOW,
      data=summary,
      fine_tuned=scores, baselines=baselines(dev),
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
  flags_ = result["flags"]
  lines += ["", f"{result['epochs']:g} epochs, batch "
            f"{flags_['train_batch_size']}, learning rate "
            f"{flags_['learning_rate']:g}, windows "
            f"{result['window']['max_seq_length']} (stride "
            f"{result['window']['doc_stride']}); "
            + " ".join(result["data"]) +
            f" {result['seconds']:.0f} s in all."]
  if json_name:
    lines += ["", f"Every number: `{json_name}`."]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
  """Runs the benchmark on `argv` (argv[0] is the program name)."""
  return command.main(argv, PROGRAM, __doc__, _define_flags, run)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
