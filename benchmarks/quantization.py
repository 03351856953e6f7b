r"""Quantized TFLite classifiers: task accuracy and latency, float32 to int8.

  python -m benchmarks.quantization [--quick] [--repeats=N]
      [--output_dir=DIR] [--work_dir=DIR]

1. Accuracy on a fine-tuned task. The bundled student
   (`checkpoints/demo/model.ckpt`) is fine-tuned on the bundled sentence
   task (`checkpoints/demo/sentences`: a sentence's words in their original
   order, or two of them swapped) by `training.run_classifier` (in this
   process, TFLite output only), three times with the same flags: as a
   float model; as a float model with the quantization-friendly mask rule
   (the demo config with `attention_mask_rule`, whose masked scores int8
   can represent); and quantization-aware (`--quantization_aware`, its
   ranges calibrated on `--num_calibration_examples` training sentences
   before training). The
   float classifier becomes a float32, a dynamic-range int8 and a
   post-training full-int8 TFLite model (activations calibrated on
   `--num_calibration_examples` training sentences), the friendly-mask one
   a post-training full-int8 model, the QAT one a full-int8 model with the
   ranges it learnt (`export.classifier_tflite`). Each runs in LiteRT on
   every held-out sentence: accuracy, and against its own in-memory model
   the share of equal classes and the largest probability difference.
2. Latency at batch 1 x 128 (LiteRT, all cores, `--repeats` interleaved
   calls, median) of those five models, and of the English OPT
   configuration's classifier (random weights; latency does not depend on
   them) in the same five forms.

Targets (the on-device issue): QAT full int8 within 1 point of float32's
accuracy; QAT full int8 at most 0.6x the latency of dynamic-range int8 at
the English OPT shape. Writes `quantization-<UTC date-time>-<cpu>.{json,md}`.

`--quick` fine-tunes on a few sentences for one epoch at seq 32 and times
the demo models only, in place of the English OPT ones (for the tests: its
numbers mean nothing).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import contextlib
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Sequence

from absl import flags
import numpy as np

from benchmarks import command
from benchmarks import latency as latency_lib
from benchmarks import machine as machine_lib
from benchmarks import result_files
from benchmarks import timing

PROGRAM = "python -m benchmarks.quantization"
DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "checkpoints", "demo")
OPT_PRESET = "uncased_L-24_H-128_B-512_A-4_F-4_OPT"
SEQ_LENGTH = 128
QUICK_SEQ_LENGTH = 32
# The fine-tunings: "float" (the demo config as it is, mask rule
# "exclude"); "friendly" (float, with the quantization-friendly mask rule
# that QAT uses: its masked scores fit int8, the "exclude" rule's -1e9 does
# not); "qat" (quantization-aware).
FINE_TUNINGS = ("float", "friendly", "qat")
# (row id, label, quantization, fine-tuning). The first row of each
# fine-tuning is the TFLite model its run_classifier run writes.
VARIANTS = (("float32", "float32", "none", "float"),
            ("dynamic", "dynamic-range int8", "dynamic", "float"),
            ("int8_ptq", "post-training full int8", "int8", "float"),
            ("int8_ptq_friendly",
             "post-training full int8, quantization-friendly mask", "int8",
             "friendly"),
            ("int8_qat", "QAT full int8", "int8", "qat"))
QUICK_EXAMPLES = 48
# The issue's targets.
MAX_ACCURACY_DROP_POINTS = 1.0
MAX_LATENCY_RATIO = 0.6


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("output_dir", None, "Where the result files go. "
                      "Default: benchmarks/results (build/benchmarks with "
                      "--quick).", **define)
  flags.DEFINE_string("work_dir", None, "Exports and TFLite models "
                      "(default: a temporary directory, removed).", **define)
  flags.DEFINE_integer("epochs", 4, "Fine-tuning epochs.", lower_bound=1,
                       **define)
  flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate.", **define)
  flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1,
                       **define)
  flags.DEFINE_integer("num_calibration_examples", 100, "Training sentences "
                       "that calibrate post-training full int8.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("repeats", 30, "Timed calls of each TFLite model.",
                       lower_bound=1, **define)
  flags.DEFINE_integer("seed", 1, "Seed of the heads and the shuffle.",
                       **define)
  flags.DEFINE_boolean("quick", False, "A few sentences and the demo shape "
                       "only: checks the plumbing.", **define)
  return values


def _task_files(values, work_dir: str) -> Dict[str, str]:
  """The bundled train/dev TSVs (quick: their first lines)."""
  from checkpoints.demo import sentence_set
  bundled = {split: os.path.join(sentence_set.BUNDLED_DIR, f"{split}.tsv")
             for split in ("train", "dev")}
  if not values.quick:
    return bundled
  quick = {}
  for split, path in bundled.items():
    with open(path, encoding="utf-8") as f:
      head = [next(f) for _ in range(QUICK_EXAMPLES + 1)]
    quick[split] = os.path.join(work_dir, f"{split}.tsv")
    with open(quick[split], "w", encoding="utf-8") as f:
      f.writelines(head)
  return quick


def model_config(config, fine_tuning: str):
  """The config a fine-tuning trains (FINE_TUNINGS) from the demo's."""
  if fine_tuning == "friendly":
    return config.replace(attention_mask_rule="quantization_friendly")
  if fine_tuning == "qat":
    return config.for_quantization_aware_training()
  return config


def config_file(fine_tuning: str, work_dir: str) -> str:
  """The --bert_config_file of a fine-tuning (FINE_TUNINGS), for
  `training.run_classifier` and `training.run_squad`."""
  demo_config = os.path.join(DEMO_DIR, "bert_config.json")
  if fine_tuning != "friendly":
    return demo_config  # QAT: the CLIs' --quantization_aware.
  # The CLIs take the mask rule from the config file.
  from mobilebert_tf import config as config_lib
  from mobilebert_tf import files
  return files.write_text(
      os.path.join(work_dir, "friendly_mask_config.json"),
      model_config(config_lib.load_config(demo_config),
                   fine_tuning).to_json_string(), overwrite=True)


def _run_classifier_args(values, task: Dict[str, str], work_dir: str,
                         config_file: str, name: str, quantization: str,
                         fine_tuning: str) -> List[str]:
  return [
      f"--train_file={task['train']}", f"--eval_file={task['dev']}",
      f"--bert_config_file={config_file}",
      f"--init_checkpoint={os.path.join(DEMO_DIR, 'model.ckpt')}",
      f"--vocab_file={os.path.join(DEMO_DIR, 'vocab.txt')}", "--do_lower_case",
      # No serving SavedModel: the TFLite classifier is what is measured.
      f"--tflite_file={os.path.join(work_dir, name + '.tflite')}",
      f"--tflite_quantization={quantization}",
      # Measured here, not refused: the bar is what this benchmark informs.
      "--tflite_max_accuracy_drop=100",
      f"--num_calibration_examples={values.num_calibration_examples}",
      f"--epochs={1 if values.quick else values.epochs}",
      f"--batch_size={values.batch_size}",
      f"--learning_rate={values.learning_rate}", f"--seed={values.seed}",
      f"--seq_length={_seq_length(values)}",
      *(["--quantization_aware"] if fine_tuning == "qat" else [])]


def _seq_length(values) -> int:
  return QUICK_SEQ_LENGTH if values.quick else SEQ_LENGTH


def _report_record(report, size: int) -> dict:
  return dict(accuracy=report.accuracy,
              in_memory_accuracy=report.reference_accuracy,
              same_class=report.agreement, max_abs_diff=report.max_abs_diff,
              examples=report.examples, megabytes=size / 2**20)


def _fine_tune(values, task, work_dir: str, log) -> Dict[str, dict]:
  """The TFLite classifiers (VARIANTS) of the demo model, scored on the dev
  set."""
  import tensorflow as tf
  from export import classifier_tflite
  from mobilebert_tf import config as config_lib
  from mobilebert_tf import files
  from training import run_classifier
  from training import tsv

  records, runs = {}, {}
  for fine_tuning in FINE_TUNINGS:
    # The CLI writes one TFLite model per run: the fine-tuning's first row.
    row, _, quantization, _ = next(v for v in VARIANTS
                                   if v[3] == fine_tuning)
    args = _run_classifier_args(values, task, work_dir,
                                config_file(fine_tuning, work_dir), row,
                                quantization, fine_tuning)
    log(f"{PROGRAM}: python -m training.run_classifier {' '.join(args)}")
    flag_values = run_classifier.parse_flags(["run_classifier", *args])
    start = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # Keras progress bars.
      result = run_classifier.finetune(flag_values,
                                       log=lambda line: log("  " + line))
    runs[fine_tuning] = dict(
        eval_accuracy=result.eval_accuracy, seconds=time.time() - start,
        history={k: [float(x) for x in v] for k, v in result.history.items()})
    records[row] = _report_record(result.tflite_report, os.path.getsize(
        flag_values.tflite_file))
    if fine_tuning != "float":
      continue
    # The float classifier's other two forms, from the same weights.
    classifier = result.model.get_layer("classifier")
    config = config_lib.load_config(flag_values.bert_config_file)
    text_to_inputs = run_classifier.load_text_preprocessing(
        flag_values, flag_values.seq_length)

    def encode(columns):
      return {k: v.numpy() for k, v in text_to_inputs(
          [tf.constant(t) for t in columns]).items()}

    dev = tsv.read_tsv(task["dev"])
    dev_x, dev_y = encode(dev.texts), tsv.label_ids(dev, result.label_names)
    # Only the calibration sentences of the training set.
    train_x = encode([column[:values.num_calibration_examples]
                      for column in tsv.read_tsv(task["train"]).texts])
    calibration = [{k: v[i:i + 1] for k, v in train_x.items()}
                   for i in range(len(train_x["input_word_ids"]))]
    expected = tf.nn.softmax(classifier.predict(
        dev_x, batch_size=values.batch_size, verbose=0)).numpy()
    for row, label, quantization, row_fine_tuning in VARIANTS:
      if row_fine_tuning != "float" or row in records:
        continue
      log(f"{PROGRAM}: the float classifier as {label}")
      flatbuffer = classifier_tflite.convert_classifier(
          classifier, config, flag_values.seq_length, quantization,
          calibration if quantization == "int8" else None)
      files.write_bytes(os.path.join(work_dir, row + ".tflite"), flatbuffer,
                        overwrite=True)
      records[row] = _report_record(classifier_tflite.evaluate_classifier(
          flatbuffer, dev_x, dev_y, expected), len(flatbuffer))
  return dict(runs=runs, variants=records)


def _opt_models(work_dir: str, log) -> Dict[str, str]:
  """Every form (VARIANTS) of a random-weight classifier of the English OPT
  configuration; returns row -> .tflite path."""
  import tf_keras
  from export import classifier_tflite
  from mobilebert_tf import config as config_lib
  from mobilebert_tf import files
  from mobilebert_tf import heads
  from mobilebert_tf.encoder import build_encoder

  config = config_lib.load_config(OPT_PRESET)
  rng = np.random.default_rng(0)
  batches = [dict(
      input_word_ids=rng.integers(
          1, config.vocab_size, (1, SEQ_LENGTH)).astype(np.int32),
      input_mask=np.ones((1, SEQ_LENGTH), np.int32),
      input_type_ids=np.zeros((1, SEQ_LENGTH), np.int32)) for _ in range(4)]
  paths = {}
  tf_keras.utils.set_random_seed(0)
  for fine_tuning in FINE_TUNINGS:
    tuned_config = model_config(config, fine_tuning)
    classifier = heads.MobileBertForSequenceClassification(
        build_encoder(tuned_config), num_classes=2, name="classifier")
    classifier(batches[0])
    # NoNorm offsets and scales as training leaves them: an all-zero offset
    # makes TF 2.20's converter fail on QAT ranges (docs/tflite.md).
    for weight in classifier.weights:
      if weight.name.endswith(("/beta:0", "/gamma:0")):
        weight.assign_add(rng.normal(0, 0.1, weight.shape).astype(np.float32))
    for row, label, quantization, row_fine_tuning in VARIANTS:
      if row_fine_tuning != fine_tuning:
        continue
      start = time.time()
      flatbuffer = classifier_tflite.convert_classifier(
          classifier, tuned_config, SEQ_LENGTH, quantization,
          batches if quantization == "int8" else None)
      paths[row] = files.write_bytes(
          os.path.join(work_dir, f"shape_{row}.tflite"), flatbuffer,
          overwrite=True)
      log(f"{PROGRAM}: the random OPT classifier as {label} "
          f"({time.time() - start:.0f} s)")
  return paths


def _latencies(paths: Dict[str, str], repeats: int,
               seq_length: int) -> Dict[str, dict]:
  """Median ms of one batch-1 call of each model, the models interleaved
  (random ids, no padding: the values do not change the work done), and
  how LiteRT runs each: XNNPACK's partitions, the operators left in float."""
  from ai_edge_litert.interpreter import Interpreter
  from mobilebert_tf import _compat
  rng = np.random.default_rng(1)
  runners, records = {}, {}
  for row, path in paths.items():
    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    runner = interpreter.get_signature_runner("serving_default")
    inputs = dict(
        input_word_ids=rng.integers(1, 100, (1, seq_length)).astype(np.int32),
        input_mask=np.ones((1, seq_length), np.int32),
        input_type_ids=np.zeros((1, seq_length), np.int32))
    runner(**inputs)  # First call: allocation, XNNPACK packing.
    runners[row] = lambda r=runner, x=inputs: r(**x)
    ops = _compat.tflite_op_details(interpreter)
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    own = [op for op in ops if op["op_name"] != "DELEGATE"]
    records[row] = dict(
        megabytes=os.path.getsize(path) / 2**20, operators=len(own),
        xnnpack_partitions=len(ops) - len(own),
        float_operators=sum(
            op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and
            dtypes.get(op["outputs"][0]) == np.float32 for op in own),
        quantize_operators=sum(op["op_name"] in ("QUANTIZE", "DEQUANTIZE")
                               for op in own))
  times = timing.interleaved(runners, repeats)
  for row, record in records.items():
    record.update(ms=float(np.median(times[row])) * 1e3,
                  ms_min=float(np.min(times[row])) * 1e3)
  return records


def run(values, argv: Sequence[str], log) -> List[str]:
  """Runs the benchmark; returns the paths of the result files."""
  machine = machine_lib.machine_record()
  start = time.time()
  work_dir = values.work_dir or tempfile.mkdtemp(prefix="mobilebert-quant-")
  try:
    os.makedirs(work_dir, exist_ok=True)
    task = _task_files(values, work_dir)
    accuracy = _fine_tune(values, task, work_dir, log)
    demo_paths = {row: os.path.join(work_dir, row + ".tflite")
                  for row, *_ in VARIANTS}
    # Quick: the demo models stand for the shape's (no more conversions).
    shape_paths = (demo_paths if values.quick else
                   _opt_models(work_dir, log))
    log(f"{PROGRAM}: timing {len(demo_paths) + len(shape_paths)} models, "
        f"{values.repeats} calls each")
    latency = _latencies({**{f"demo/{r}": p for r, p in demo_paths.items()},
                          **{f"shape/{r}": p for r, p in shape_paths.items()}},
                         values.repeats, _seq_length(values))
  finally:
    if not values.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  machine["load_average_end"] = list(os.getloadavg())
  machine["matmul_gflops"] = timing.matmul_gflops()
  result = dict(
      machine=machine, argv=list(argv[1:]),
      flags={name: values[name].value for name in sorted(values)},
      quick=values.quick, seq_length=_seq_length(values),
      epochs=1 if values.quick else values.epochs,
      shape_config="demo" if values.quick else OPT_PRESET,
      accuracy=accuracy, latency=latency, targets=targets(accuracy, latency),
      seconds=time.time() - start)
  output_dir = (values.output_dir or
                latency_lib.default_output_dir(values.quick))
  stem = os.path.join(output_dir,
                      f"quantization-{machine['timestamp']}-"
                      f"{machine['cpu_slug']}"
                      + ("-quick" if values.quick else ""))
  return result_files.write(stem, result, format_report, start, log)


def targets(accuracy: dict, latency: dict) -> Dict[str, dict]:
  """The issue's two targets, measured: value, bar and whether met."""
  variants = accuracy["variants"]
  drop = 100 * (variants["float32"]["accuracy"] -
                variants["int8_qat"]["accuracy"])
  ratio = latency["shape/int8_qat"]["ms"] / latency["shape/dynamic"]["ms"]
  return {
      "qat_int8_accuracy_drop_points": dict(
          value=drop, bar=MAX_ACCURACY_DROP_POINTS,
          met=drop <= MAX_ACCURACY_DROP_POINTS),
      "qat_int8_over_dynamic_latency": dict(
          value=ratio, bar=MAX_LATENCY_RATIO, met=ratio <= MAX_LATENCY_RATIO)}


def format_report(result: dict, json_name: str = None) -> str:
  """The Markdown report of a result."""
  m = result["machine"]
  accuracy, latency = result["accuracy"], result["latency"]
  runs = accuracy["runs"]
  f = result["flags"]
  shape = ("the demo configuration (quick)" if result["quick"] else
           f"`{result['shape_config']}`")
  lines = [
      f"# Quantized TFLite classifiers: accuracy and latency "
      f"({'quick, meaningless' if result['quick'] else 'full run'})", "",
      f"{m['date']}, {m['cpu']} ({m['usable_cores']} usable cores), "
      f"TensorFlow {m['versions'].get('tensorflow')}, ai-edge-litert "
      f"{m['versions'].get('ai-edge-litert')}, commit {m.get('git_commit')}; "
      f"load average {m['load_average_start'][0]:.2f} at the start, "
      f"{m['load_average_end'][0]:.2f} at the end.", "",
      f"The demo model fine-tuned on the bundled sentence task "
      f"(`checkpoints/demo/sentences`, original word order or two words "
      f"swapped): {result['epochs']} epochs, batch {f['batch_size']}, learning "
      f"rate {f['learning_rate']:g}, seq {result['seq_length']}. In-memory "
      f"dev accuracy: float {100 * runs['float']['eval_accuracy']:.2f}, "
      f"float with the quantization-friendly mask "
      f"{100 * runs['friendly']['eval_accuracy']:.2f}, quantization-aware "
      f"{100 * runs['qat']['eval_accuracy']:.2f}.",
      "",
      "| TFLite model | dev accuracy | in-memory accuracy | same class | "
      "max abs prob diff | MiB |", "|---|---:|---:|---:|---:|---:|"]
  for row, label, _, _ in VARIANTS:
    a = accuracy["variants"][row]
    lines.append(
        f"| {label} | {100 * a['accuracy']:.2f} | "
        f"{100 * a['in_memory_accuracy']:.2f} | {100 * a['same_class']:.1f}% "
        f"| {a['max_abs_diff']:.2g} | {a['megabytes']:.1f} |")
  lines += [
      "", f"{accuracy['variants']['float32']['examples']} dev sentences; "
      "in-memory accuracy: the model the TFLite one was converted from (the "
      "float classifier for the first three, the friendly-mask one for the "
      "fourth, the QAT one for the last); same "
      "class: the share of sentences where both predict the same label.", "",
      f"Latency at batch 1 x {result['seq_length']}, and how LiteRT runs "
      f"each model of {shape}:", "",
      "| TFLite model | ms, demo | ms | ratio to dynamic | MiB | XNNPACK "
      "partitions | float ops | (de)quantize ops |",
      "|---|---:|---:|---:|---:|---:|---:|---:|"]
  dynamic = latency["shape/dynamic"]["ms"]
  for row, label, _, _ in VARIANTS:
    s = latency[f"shape/{row}"]
    lines.append(
        f"| {label} | {latency[f'demo/{row}']['ms']:.2f} | {s['ms']:.2f} | "
        f"{s['ms'] / dynamic:.2f}x | {s['megabytes']:.1f} | "
        f"{s['xnnpack_partitions']} | {s['float_operators']} | "
        f"{s['quantize_operators']} |")
  # Quick: the demo models stand for the shape's (`run`), fine-tuned.
  weights = ("the demo models are the fine-tuned ones above" if result["quick"]
             else f"the {shape} models have random weights")
  lines += ["", f"ms: median of {f['repeats']} interleaved calls (LiteRT, "
            f"{m['usable_cores']} threads); {weights}. XNNPACK partitions: "
            "the parts of the graph LiteRT's "
            "XNNPACK delegate runs; between them TFLite's own kernels run "
            "what XNNPACK does not take. A 2048³ float32 tf.matmul ran at "
            f"{m['matmul_gflops']:.0f} GFLOP/s after the run.", "",
            "Targets:", ""]
  t = result["targets"]
  drop = t["qat_int8_accuracy_drop_points"]
  ratio = t["qat_int8_over_dynamic_latency"]

  def verdict(target):
    return "met" if target["met"] else "NOT met"

  lines += [
      f"- QAT full int8 within {drop['bar']:g} point of float32's accuracy: "
      f"{drop['value']:+.2f} points lost — {verdict(drop)}",
      f"- QAT full int8 <= {ratio['bar']:g}x dynamic-range int8's latency at "
      f"{shape}: {ratio['value']:.2f}x — {verdict(ratio)}"]
  lines += ["", f"{result['seconds']:.0f} s in all."]
  if json_name:
    lines += ["", f"Every number: `{json_name}`."]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
  """Runs the benchmark on `argv` (argv[0] is the program name)."""
  return command.main(argv, PROGRAM, __doc__, _define_flags, run)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
