r"""Latency of MobileBERT encoders on this machine's CPU, in one process.

Usage:

  python -m benchmarks.latency [--quick] [--config=PRESET_OR_JSON]
      [--output_dir=build/benchmarks] [--repeats=N] [--rows=ID,...]

Measures, on the English OPT configuration (`--config`, default
uncased_L-24_H-128_B-512_A-4_F-4_OPT: 24 blocks, random weights) and for
batch 1 x seq 128, batch 8 x seq 128 and batch 1 x seq 384, the median
milliseconds per sequence of these rows:

| id              | what                                                   |
|-----------------|--------------------------------------------------------|
| ours            | `mobilebert_tf` encoder, `tf.function`                 |
| ours_xla        | the same with `jit_compile=True`                       |
| ours_frozen     | the same, weights frozen (`freeze_for_inference`)      |
| hub             | the exported SavedModel (`export.hub_export`), `hub.load` and called |
| tflite_none     | `export.to_tflite`, float32, LiteRT interpreter        |
| tflite_dynamic  | `export.to_tflite`, dynamic-range int8 weights         |
| tflite_float16  | `export.to_tflite`, float16 weights                    |
| tfm             | tf-models-official `MobileBERTEncoder`, `tf.function` (the baseline of the ratios) |
| tfm_xla         | the same with `jit_compile=True`                       |
| tfm_frozen      | the same, frozen with `freeze_for_inference`           |
| torch           | transformers' PyTorch `MobileBertModel`, `inference_mode` |

All rows hold the same weights (tf-models-official's through the shared
checkpoint layout, transformers' through an original TF1 checkpoint), so the
table also reports each row's relative error against `ours`. Every row uses
the library's default threading (TF: all cores; LiteRT: `num_threads` = the
number of cores; PyTorch: its default).

Timing: each row is built and warmed up (XLA compiles then), then the rows
are run in turn, the order rotating between repeats, so that load from other
processes hits every row alike; a row's figure is the median over repeats of
(time of one call / batch). Ratios are to tf-models-official's `tf.function`
at the same shape. Peak memory is the peak resident set size of a separate
process that loads only that row and runs batch 1 x the first sequence length,
minus the process's size after its imports.

FLOPs (multiply-adds count 2; elementwise ops, softmax and lookups are not
counted), for T = batch * seq tokens, hidden H, bottleneck width W
(`true_hidden_size`), FFN width I, F FFNs, L blocks, embedding input width
E' (3 * embedding_size with the trigram input):

  embedding projection  2 T E' H
  per block             2 T (H W [input bottleneck] + H W [key/query
                        bottleneck] + 2 W W [query, key] + H W [value]
                        + 2 seq W [scores, context] + W W [attention output]
                        + 2 F W I [FFNs] + W H [output bottleneck])

(`encoder_flops` handles the other layouts). For the OPT model that is
5.38 GFLOP per sequence of 128 tokens. Achieved GFLOP/s are set against a
2048^3 float32 `tf.matmul` measured in the same run, before and after the
rows (the best of both), so the distance to this machine's limit is visible.

Writes `latency.md` (the table, the machine, the targets) and `latency.json`
(every timing) into `--output_dir` (`latency_quick.*` with `--quick`); the
exported models live in `--output_dir`/latency_work during the run
(`--keep_work_dir` keeps them).
`--quick` uses a tiny configuration, short sequences and few repeats, and
finishes in about a minute or two.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import datetime
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import flags

_PROGRAM = "python -m benchmarks.latency"

DEFAULT_CONFIG = "uncased_L-24_H-128_B-512_A-4_F-4_OPT"
SHAPES = ((1, 128), (8, 128), (1, 384))
QUICK_SHAPES = ((1, 16), (4, 16), (1, 48))
QUICK_CONFIG = dict(
    vocab_size=512, hidden_size=64, embedding_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64, intra_bottleneck_size=32,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="no_norm", hidden_act="relu",
    max_position_embeddings=64, type_vocab_size=2, classifier_activation=False,
    hidden_dropout_prob=0.0)

ROWS = ("ours", "ours_xla", "ours_frozen", "hub", "tflite_none",
        "tflite_dynamic", "tflite_float16", "tfm", "tfm_xla", "tfm_frozen",
        "torch")
BASELINE = "tfm"
ROW_NAMES = {
    "ours": "mobilebert_tf, tf.function",
    "ours_xla": "mobilebert_tf, tf.function + XLA",
    "ours_frozen": "mobilebert_tf, frozen weights (freeze_for_inference)",
    "hub": "exported SavedModel, hub.load",
    "tflite_none": "TFLite float32 (export.to_tflite)",
    "tflite_dynamic": "TFLite dynamic-range int8",
    "tflite_float16": "TFLite float16 weights",
    "tfm": "tf-models-official, tf.function",
    "tfm_xla": "tf-models-official, tf.function + XLA",
    "tfm_frozen": "tf-models-official, frozen weights",
    "torch": "transformers (PyTorch)",
}
TFLITE_QUANTIZATION = {"tflite_none": "none", "tflite_dynamic": "dynamic",
                       "tflite_float16": "float16"}

# The targets: (description, row, shape index, reference row, max).
TARGETS = (
    ("ours (best TF mode) <= 0.6x tf-models-official",
     ("ours", "ours_xla", "ours_frozen"), 0, "tfm", 0.6),
    ("ours (best TF mode) <= 0.9x tf-models-official",
     ("ours", "ours_xla", "ours_frozen"), 1, "tfm", 0.9),
    ("SavedModel via hub.load <= 1.15x the in-process encoder",
     ("hub",), 0, "ours", 1.15),
    ("TFLite float32 <= 0.45x tf-models-official",
     ("tflite_none",), 0, "tfm", 0.45),
    ("TFLite dynamic int8 <= 0.6x TFLite float32",
     ("tflite_dynamic",), 0, "tflite_none", 0.6),
)
MIN_DYNAMIC_COSINE = 0.999


# === FLOPs ===


def encoder_flops(config, batch: int, seq: int) -> int:
  """Matmul FLOPs of one encoder forward pass (see the module docstring).

  Args:
    config: a `MobileBertConfig`.
    batch, seq: ints.

  Returns:
    int. 2 x multiply-adds of every matmul (dense layers, attention scores
    and context); elementwise ops, softmax and lookups are not counted.
  """
  c = config
  tokens = batch * seq
  hidden, width = c.hidden_size, c.true_hidden_size
  embed = c.embedding_size * (3 if c.trigram_input else 1)
  total = 0
  if embed != hidden or c.trigram_input:
    total += 2 * tokens * embed * hidden
  block = 0
  query_width = value_width = hidden
  if c.use_bottleneck:
    block += 2 * tokens * hidden * width * 2  # input + output bottlenecks
    if c.use_bottleneck_attention:
      query_width = value_width = width
    elif c.key_query_shared_bottleneck:
      block += 2 * tokens * hidden * width
      query_width = width
  block += 2 * tokens * width * (2 * query_width + value_width)  # q, k, v
  block += 2 * 2 * batch * seq * seq * width  # scores, context
  block += 2 * tokens * width * width  # attention output
  block += c.num_feedforward_networks * 2 * 2 * tokens * width * (
      c.intermediate_size)
  total += c.num_hidden_layers * block
  if c.classifier_activation:
    total += 2 * batch * hidden * hidden
  return total


# === Machine ===


def machine_record() -> Dict[str, object]:
  """CPU model, cores, load and library versions."""
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  versions = {}
  for package in ("tensorflow", "tf_keras", "tf-models-official",
                  "tensorflow-hub", "ai-edge-litert", "torch",
                  "transformers"):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = None
  return dict(
      date=datetime.datetime.now(datetime.timezone.utc).strftime(
          "%Y-%m-%d %H:%M UTC"),
      cpu=cpu, logical_cores=os.cpu_count(), usable_cores=affinity,
      python=platform.python_version(), platform=platform.platform(),
      versions=versions, load_average_start=os.getloadavg())


# === Rows ===


@dataclasses.dataclass
class Setup:
  """Everything the rows share: config, weights, artifacts."""
  config: object
  work_dir: str
  pretrainer: object = None
  hub_dir: str = ""
  tf1_prefix: str = ""
  tflite_paths: Dict[Tuple[str, int, int], str] = dataclasses.field(
      default_factory=dict)
  tflite_agreement: Dict[Tuple[str, int, int], dict] = dataclasses.field(
      default_factory=dict)


def make_config(config_flag: Optional[str], quick: bool):
  from mobilebert_tf import MobileBertConfig  # pylint: disable=g-import-not-at-top
  if config_flag:
    if os.path.isfile(config_flag):
      return MobileBertConfig.from_json_file(config_flag)
    return MobileBertConfig.from_preset(config_flag)
  if quick:
    return MobileBertConfig.from_dict(QUICK_CONFIG)
  return MobileBertConfig.from_preset(DEFAULT_CONFIG)


def _inputs(config, batch: int, seq: int, seed: int = 0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, config.vocab_size, size=(batch, seq)).astype(np.int32)
  types = np.zeros_like(ids)
  types[:, seq // 2:] = 1
  return dict(input_word_ids=ids, input_mask=np.ones_like(ids),
              input_type_ids=types)


def _tfm_encoder(config):
  """tf-models-official's MobileBERTEncoder for `config`, or raises."""
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  if not (config.trigram_input and config.use_bottleneck):
    raise ValueError("tf-models-official's MobileBERTEncoder always uses the "
                     "trigram input and the bottleneck")
  # Our encoder's arguments are its, plus the two options it lacks.
  from mobilebert_tf.encoder import encoder_kwargs  # pylint: disable=g-import-not-at-top
  kwargs = encoder_kwargs(config)
  del kwargs["trigram_input"], kwargs["use_bottleneck"]
  return networks.MobileBERTEncoder(**kwargs)


def _tf_runner(fn, inputs):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tensors = {k: tf.constant(v) for k, v in inputs.items()}

  def run():
    outputs = fn(tensors)
    return {k: outputs[k].numpy() for k in ("sequence_output",
                                            "pooled_output")}
  return run


def _our_encoder(setup: Setup, cache: Dict[str, object]):
  if "ours" not in cache:
    if setup.pretrainer is not None:
      cache["ours"] = setup.pretrainer.encoder_network
    else:
      from mobilebert_tf import build_encoder  # pylint: disable=g-import-not-at-top
      cache["ours"] = build_encoder(setup.config)
  return cache["ours"]


def _tfm_copy(setup: Setup, cache: Dict[str, object]):
  """tf-models-official's encoder holding our weights."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if "tfm" not in cache:
    encoder = _tfm_encoder(setup.config)
    if setup.pretrainer is not None:
      # The checkpoint layouts are the same: tf-models-official gets ours.
      path = tf.train.Checkpoint(
          encoder=setup.pretrainer.encoder_network).write(
              os.path.join(setup.work_dir, "tfm_weights", "ckpt"))
      status = tf.train.Checkpoint(encoder=encoder).read(path)
      status.assert_existing_objects_matched()
    cache["tfm"] = encoder
  return cache["tfm"]


def build_row(row: str, setup: Setup, shape: Tuple[int, int],
              cache: Dict[str, object]) -> Callable[[], dict]:
  """A callable running `row` once at `shape`; returns numpy outputs.

  `cache` keeps what the shapes share (models, loaded SavedModels).
  """
  batch, seq = shape
  inputs = _inputs(setup.config, batch, seq)
  if row in ("ours", "ours_xla", "ours_frozen", "tfm", "tfm_xla",
             "tfm_frozen"):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    family, _, mode = row.partition("_")
    encoder = (_our_encoder if family == "ours" else _tfm_copy)(setup, cache)
    if mode == "frozen":
      from mobilebert_tf.inference import freeze_for_inference  # pylint: disable=g-import-not-at-top
      if row not in cache:  # One frozen graph serves every shape.
        cache[row] = freeze_for_inference(encoder)
      frozen = cache[row]
      tensors = {k: tf.constant(v) for k, v in inputs.items()}
      return lambda: {k: v.numpy() for k, v in frozen(tensors).items()}
    def call(x):  # Only what is fetched, as in the frozen rows.
      outputs = encoder(x, training=False)
      return {k: outputs[k] for k in ("sequence_output", "pooled_output")}
    return _tf_runner(tf.function(call, jit_compile=mode == "xla"), inputs)
  if row == "hub":
    if "hub" not in cache:
      import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
      cache["hub"] = hub.load(setup.hub_dir)
    loaded = cache["hub"]
    return _tf_runner(lambda x: loaded(x, training=False), inputs)
  if row in TFLITE_QUANTIZATION:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    path = setup.tflite_paths[(TFLITE_QUANTIZATION[row], batch, seq)]
    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    runner = interpreter.get_signature_runner("serving_default")
    return lambda: runner(**inputs)
  if row == "torch":
    import torch  # pylint: disable=g-import-not-at-top
    if "torch" not in cache:
      cache["torch"] = _torch_model(setup)
    model = cache["torch"]
    tensors = dict(
        input_ids=torch.tensor(inputs["input_word_ids"], dtype=torch.long),
        attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
        token_type_ids=torch.tensor(inputs["input_type_ids"],
                                    dtype=torch.long))

    def run():
      with torch.inference_mode():
        outputs = model(**tensors)
      return dict(sequence_output=outputs.last_hidden_state.numpy(),
                  pooled_output=outputs.pooler_output.numpy())
    return run
  raise ValueError(f"Unknown row {row!r}; rows are {ROWS}")


def _torch_model(setup: Setup):
  import transformers  # pylint: disable=g-import-not-at-top
  from transformers.models.mobilebert import modeling_mobilebert  # pylint: disable=g-import-not-at-top
  transformers.logging.set_verbosity_error()
  c = setup.config
  hf_config = transformers.MobileBertConfig(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size,
      num_hidden_layers=c.num_hidden_layers,
      num_attention_heads=c.num_attention_heads,
      intermediate_size=c.intermediate_size, hidden_act=c.hidden_act,
      hidden_dropout_prob=c.hidden_dropout_prob,
      attention_probs_dropout_prob=c.attention_probs_dropout_prob,
      max_position_embeddings=c.max_position_embeddings,
      type_vocab_size=c.type_vocab_size, embedding_size=c.embedding_size,
      trigram_input=c.trigram_input, use_bottleneck=c.use_bottleneck,
      intra_bottleneck_size=c.intra_bottleneck_size,
      use_bottleneck_attention=c.use_bottleneck_attention,
      key_query_shared_bottleneck=c.key_query_shared_bottleneck,
      num_feedforward_networks=c.num_feedforward_networks,
      normalization_type=c.normalization_type,
      classifier_activation=c.classifier_activation)
  model = transformers.MobileBertForPreTraining(hf_config)
  if setup.tf1_prefix:
    modeling_mobilebert.load_tf_weights_in_mobilebert(
        model, hf_config, setup.tf1_prefix)
  model = model.mobilebert
  model.eval()
  return model


# === Setup ===


def prepare(config, work_dir: str, rows: Sequence[str],
            shapes: Sequence[Tuple[int, int]], log) -> Setup:
  """Builds the shared model and the artifacts the rows need."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from mobilebert_tf import build_pretrainer  # pylint: disable=g-import-not-at-top
  os.makedirs(work_dir, exist_ok=True)
  with open(os.path.join(work_dir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config.to_dict(), f)  # For the memory processes.
  setup = Setup(config=config, work_dir=work_dir)
  log(f"Building the model ({config.num_hidden_layers} blocks, random "
      "weights)")
  # The initializer's weights (truncated normal, stddev 0.02): finite
  # activations through any depth, as in a fresh model.
  tf_keras.utils.set_random_seed(0)
  setup.pretrainer = build_pretrainer(config, with_nsp=True)
  if "torch" in rows:
    from checkpoints import tf1_io  # pylint: disable=g-import-not-at-top
    setup.tf1_prefix = tf1_io.export_tf1_checkpoint(
        setup.pretrainer, config, os.path.join(work_dir, "tf1", "model.ckpt"))
  needs_hub = "hub" in rows or any(r in TFLITE_QUANTIZATION for r in rows)
  if needs_hub:
    from export import hub_export  # pylint: disable=g-import-not-at-top
    setup.hub_dir = os.path.join(work_dir, "export", "encoder")
    vocab_file = os.path.join(work_dir, "vocab.txt")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = specials + [f"w{i}" for i in range(config.vocab_size - 5)]
    with open(vocab_file, "w", encoding="utf-8") as f:
      f.write("\n".join(tokens) + "\n")
    log(f"Exporting the SavedModel to {setup.hub_dir}")
    if os.path.exists(setup.hub_dir):
      shutil.rmtree(setup.hub_dir)
    os.makedirs(os.path.dirname(setup.hub_dir), exist_ok=True)
    hub_export.export_encoder(setup.pretrainer, vocab_file, True,
                              setup.hub_dir)
  tflite_rows = [r for r in rows if r in TFLITE_QUANTIZATION]
  if tflite_rows:
    from export import to_tflite  # pylint: disable=g-import-not-at-top
    source = to_tflite.load_encoder(setup.hub_dir)
    for row in tflite_rows:
      quantization = TFLITE_QUANTIZATION[row]
      for batch, seq in shapes:
        path = os.path.join(work_dir, "tflite",
                            f"{quantization}_b{batch}_s{seq}.tflite")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        start = time.time()
        report = to_tflite.export_tflite(
            setup.hub_dir, path, quantization, seq_length=seq,
            batch_size=batch, overwrite=True, source=source)
        log(f"  {os.path.basename(path)}: {time.time() - start:.0f} s, "
            f"cosine {report.agreement.cosine:.6f}")
        setup.tflite_paths[(quantization, batch, seq)] = path
        setup.tflite_agreement[(quantization, batch, seq)] = (
            dataclasses.asdict(report.agreement))
  return setup


# === Measurement ===


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
  """Best GFLOP/s of a `size`^3 float32 `tf.matmul` (default threading)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.random.normal([size, size], seed=1)
  b = tf.random.normal([size, size], seed=2)
  fn = tf.function(tf.matmul)
  fn(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * size ** 3 / best / 1e9


def _relative_error(value, reference) -> float:
  import numpy as np  # pylint: disable=g-import-not-at-top
  value = np.asarray(value, np.float64)
  reference = np.asarray(reference, np.float64)
  return float(np.linalg.norm(value - reference) /
               max(np.linalg.norm(reference), 1e-30))


def _cosine(value, reference) -> float:
  import numpy as np  # pylint: disable=g-import-not-at-top
  a = np.asarray(value, np.float64).ravel()
  b = np.asarray(reference, np.float64).ravel()
  return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def measure_shape(rows: Sequence[str], setup: Setup, shape, cache,
                  warmup: int, repeats: int, log) -> Dict[str, dict]:
  """Interleaved timings of `rows` at one shape."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  runners, results = {}, {}
  for row in rows:
    start = time.perf_counter()
    try:
      runners[row] = build_row(row, setup, shape, cache)
      outputs = runners[row]()  # First call: tracing / compiling.
      first = time.perf_counter() - start
      for _ in range(warmup):
        runners[row]()
      results[row] = dict(first_call_s=first, outputs=outputs, times=[])
    except Exception as e:  # pylint: disable=broad-except
      message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
      log(f"  {row}: skipped ({type(e).__name__}: {message})")
      runners.pop(row, None)
      results[row] = dict(error=f"{type(e).__name__}: {message}")
  active = [r for r in rows if r in runners]
  for repeat in range(repeats):
    shift = repeat % max(len(active), 1)
    for row in active[shift:] + active[:shift]:
      start = time.perf_counter()
      runners[row]()
      results[row]["times"].append(time.perf_counter() - start)
  batch = shape[0]
  reference = results.get("ours", {}).get("outputs")
  for row in active:
    r = results[row]
    times = np.asarray(r["times"])
    r["ms_per_sequence"] = float(np.median(times)) * 1e3 / batch
    r["ms_per_call_min"] = float(times.min()) * 1e3
    outputs = r.pop("outputs")
    if reference is not None:
      r["relative_error_vs_ours"] = _relative_error(
          outputs["sequence_output"], reference["sequence_output"])
      r["cosine_vs_ours"] = _cosine(outputs["sequence_output"],
                                    reference["sequence_output"])
  for row in rows:
    results[row].pop("outputs", None)
  return results


def measure_memory(row: str, args: Dict[str, str], work_dir: str,
                   timeout: int = 600) -> Optional[dict]:
  """Runs `row` in a fresh process; returns its peak RSS figures (MiB)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", USE_TF="0",
             TRANSFORMERS_NO_TF="1")
  command = [sys.executable, "-m", "benchmarks.latency",
             f"--memory_row={row}", f"--work_dir={work_dir}"] + [
                 f"--{k}={v}" for k, v in args.items()]
  try:
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, env=env,
                          cwd=os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__))))
  except subprocess.TimeoutExpired:
    return None
  for line in reversed(done.stdout.splitlines()):
    if line.startswith("MEMORY "):
      return json.loads(line[len("MEMORY "):])
  return None


def _memory_child(row: str, config, work_dir: str, shape) -> dict:
  """In the child: load one row, run it, report peak RSS."""
  def peak_mib():
    # VmHWM: the high-water mark of this process image. (getrusage's
    # ru_maxrss would include the parent's peak, inherited across fork.)
    try:
      with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
          if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    except OSError:
      pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  if row in TFLITE_QUANTIZATION:
    import numpy as np  # pylint: disable=g-import-not-at-top,unused-import
    from ai_edge_litert import interpreter  # pylint: disable=g-import-not-at-top,unused-import
  elif row == "torch":
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    import transformers  # pylint: disable=g-import-not-at-top,unused-import
  else:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    import tf_keras  # pylint: disable=g-import-not-at-top,unused-import
    import mobilebert_tf  # pylint: disable=g-import-not-at-top,unused-import
    if row == "hub":
      import tensorflow_hub  # pylint: disable=g-import-not-at-top,unused-import
    if row.startswith("tfm"):
      from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top,unused-import
  baseline = peak_mib()
  if row.startswith(("ours", "tfm")):
    from mobilebert_tf import MobileBertConfig  # pylint: disable=g-import-not-at-top
    config = MobileBertConfig.from_dict(vars(config))
  setup = Setup(config=config, work_dir=work_dir,
                hub_dir=os.path.join(work_dir, "export", "encoder"))
  batch, seq = shape
  for quantization in TFLITE_QUANTIZATION.values():
    setup.tflite_paths[(quantization, batch, seq)] = os.path.join(
        work_dir, "tflite", f"{quantization}_b{batch}_s{seq}.tflite")
  run = build_row(row, setup, shape, {})
  for _ in range(3):
    run()
  peak = peak_mib()
  return dict(baseline_mib=baseline, peak_mib=peak,
              increment_mib=peak - baseline)


def _memory_main(values) -> int:
  """The per-row memory process: imports only what its row needs."""
  import types  # pylint: disable=g-import-not-at-top
  shape = tuple(int(x) for x in values.shape.split("x"))
  _quiet()
  with open(os.path.join(values.work_dir, "config.json"),
            encoding="utf-8") as f:
    config = types.SimpleNamespace(**json.load(f))
  figures = _memory_child(values.memory_row, config, values.work_dir, shape)
  print("MEMORY " + json.dumps(figures), flush=True)
  return 0


# === Report ===


def _fmt(value, digits=1):
  if value is None:
    return "—"
  return f"{value:.{digits}f}"


def format_report(result: dict) -> str:
  """The markdown report: machine, table, notes, targets."""
  shapes = [tuple(s) for s in result["shapes"]]
  rows = result["rows"]
  timings = result["timings"]
  flops = result["flops"]
  peak = result["matmul_gflops"]
  lines = []
  m = result["machine"]
  v = m["versions"]
  lines += [
      f"MobileBERT encoder latency, {m['date']}, `{result['config_name']}` "
      f"({result['config']['num_hidden_layers']} blocks, random weights)"
      + (" — quick mode" if result["quick"] else ""),
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
  header = ["row"]
  for batch, seq in shapes:
    header += [f"b{batch}×{seq} ms/seq", "ratio"]
  header += [f"GFLOP/s (b{shapes[0][0]}×{shapes[0][1]})", "% of matmul",
             "peak MiB", "rel. err vs ours"]
  lines.append("| " + " | ".join(header) + " |")
  lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
  for row in rows:
    cells = [ROW_NAMES[row]]
    for i, shape in enumerate(shapes):
      t = timings[i].get(row, {})
      base = timings[i].get(BASELINE, {}).get("ms_per_sequence")
      ms = t.get("ms_per_sequence")
      cells.append(_fmt(ms, 2) if ms is not None else "skipped")
      cells.append(_fmt(ms / base, 2) + "x" if ms and base else "—")
    first = timings[0].get(row, {}).get("ms_per_sequence")
    gflops = flops[0] / shapes[0][0] / (first / 1e3) / 1e9 if first else None
    cells.append(_fmt(gflops, 0 if gflops is None or gflops >= 10 else 2))
    cells.append(_fmt(100 * gflops / peak, 0) + "%" if gflops and peak else
                 "—")
    memory = result["memory"].get(row)
    cells.append(_fmt(memory["increment_mib"], 0) if memory else "—")
    errors = [timings[i].get(row, {}).get("relative_error_vs_ours")
              for i in range(len(shapes))]
    errors = [e for e in errors if e is not None]
    cells.append(f"{max(errors):.1e}" if errors else "—")
    lines.append("| " + " | ".join(cells) + " |")
  lines += [
      "",
      f"ms/seq: median over {result['repeats']} interleaved repeats after "
      f"{result['warmup']} warm-up calls, per sequence (call time / batch). "
      f"ratio: to {ROW_NAMES[BASELINE]} at the same shape. GFLOP/s: "
      f"{flops[0] / shapes[0][0] / 1e9:.2f} GFLOP per sequence of "
      f"{shapes[0][1]} tokens (matmul multiply-adds x 2, see "
      "benchmarks/latency.py), against a 2048³ float32 tf.matmul at "
      f"{peak:.0f} GFLOP/s in the same run. peak MiB: peak RSS of a process "
      f"running only that row at b{shapes[0][0]}×{shapes[0][1]}, above its "
      "size after imports. rel. err: ‖row − ours‖/‖ours‖ of sequence_output "
      "(all rows hold the same weights).",
  ]
  agreements = result.get("tflite_agreement", {})
  if agreements:
    parts = [f"{k}: cosine {a['cosine']:.6f}, rel. err "
             f"{a['relative_error']:.1e}" for k, a in sorted(agreements.items())
             if k.endswith(f"_b{shapes[0][0]}_s{shapes[0][1]}")]
    if parts:
      lines += ["", "TFLite vs the SavedModel (export.to_tflite's probe): "
                + "; ".join(parts) + "."]
  lines += ["", "Targets (ratios of this run):", ""]
  for description, target_rows, shape_index, reference, limit in TARGETS:
    if shape_index >= len(shapes):
      continue
    t = timings[shape_index]
    ref = t.get(reference, {}).get("ms_per_sequence")
    candidates = [(t[r]["ms_per_sequence"], r) for r in target_rows
                  if t.get(r, {}).get("ms_per_sequence")]
    if not ref or not candidates:
      lines.append(f"- {description}, batch {shapes[shape_index][0]} x "
                   f"{shapes[shape_index][1]}: not measured")
      continue
    ms, best = min(candidates)
    ratio = ms / ref
    status = "met" if ratio <= limit else "NOT met"
    extra = ""
    if best == "tflite_dynamic":
      cosine = t.get("tflite_dynamic", {}).get("cosine_vs_ours")
      if cosine is not None:
        extra = (f"; cosine of sequence_output vs the float32 encoder "
                 f"{cosine:.6f} (target >= {MIN_DYNAMIC_COSINE})")
        if cosine < MIN_DYNAMIC_COSINE:
          status = "NOT met"
    batch, seq = shapes[shape_index]
    lines.append(f"- {description}, batch {batch} x {seq}: {ratio:.2f}x "
                 f"({ROW_NAMES[best]}) — {status}{extra}")
  return "\n".join(lines) + "\n"


# === CLI ===


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  flags.DEFINE_boolean("quick", False,
                       "Tiny config, short sequences, few repeats.",
                       flag_values=values)
  flags.DEFINE_string("config", None,
                      f"Preset name or bert_config.json path. Default: "
                      f"{DEFAULT_CONFIG} (a tiny config with --quick).",
                      flag_values=values)
  flags.DEFINE_string("output_dir", os.path.join("build", "benchmarks"),
                      "Where latency.md and latency.json go.",
                      flag_values=values)
  flags.DEFINE_integer("repeats", None,
                       "Interleaved repeats per shape. Default: 20 (batch 1) "
                       "and 10 (larger); 3 with --quick.", flag_values=values)
  flags.DEFINE_integer("warmup", None, "Warm-up calls per row and shape. "
                       "Default: 3; 1 with --quick.", flag_values=values)
  flags.DEFINE_string("rows", ",".join(ROWS),
                      f"Comma-separated rows to run, of {', '.join(ROWS)}.",
                      flag_values=values)
  flags.DEFINE_string("shapes", None,
                      "Comma-separated BATCHxSEQ shapes. Default: 1x128,8x128,"
                      "1x384 (1x16,4x16,1x48 with --quick).",
                      flag_values=values)
  flags.DEFINE_boolean("keep_work_dir", False,
                       "Keep the exported SavedModel and TFLite models (in "
                       "OUTPUT_DIR/latency_work) after the run.",
                       flag_values=values)
  flags.DEFINE_boolean("memory", True, "Measure peak memory per row (one "
                       "process each).", flag_values=values)
  # Internal: the per-row memory process.
  flags.DEFINE_string("memory_row", None, "(internal)", flag_values=values)
  flags.DEFINE_string("work_dir", None, "(internal)", flag_values=values)
  flags.DEFINE_string("shape", None, "(internal)", flag_values=values)
  return values


def _error(message: str) -> int:
  print(f"{_PROGRAM}: error: {' '.join(message.split())}", file=sys.stderr)
  return 2


def main(argv: Sequence[str]) -> int:
  """Runs the benchmark on `argv` (argv[0] is the program name)."""
  values = _define_flags()
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
    print(__doc__)
    print("Flags:\n" + values.get_help())
    return 0
  try:
    rest = values(list(argv))
  except flags.Error as e:
    return _error(f"{str(e).splitlines()[0]} (see --help)")
  if len(rest) > 1:
    return _error(f"unexpected arguments {' '.join(rest[1:])} (see --help)")
  rows = [r.strip() for r in values.rows.split(",") if r.strip()]
  unknown = [r for r in rows if r not in ROWS]
  if unknown or not rows:
    return _error(f"--rows: unknown {', '.join(unknown) or '(none)'}; "
                  f"choose from {', '.join(ROWS)}")
  if BASELINE not in rows:
    rows.append(BASELINE)
  rows = [r for r in ROWS if r in rows]
  if values.memory_row:  # The per-row memory process.
    return _memory_main(values)
  try:
    config = make_config(values.config, values.quick)
  except (OSError, ValueError, TypeError) as e:
    return _error(f"--config: {str(e).splitlines()[0]}")
  shapes = QUICK_SHAPES if values.quick else SHAPES
  if values.shapes:
    try:
      shapes = tuple(tuple(int(x) for x in part.lower().split("x"))
                     for part in values.shapes.split(","))
      if any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise ValueError
    except ValueError:
      return _error(f"--shapes must be like 1x128,8x128. Received: "
                    f"{values.shapes!r}")
  too_long = [s for s in shapes if s[1] > config.max_position_embeddings]
  if too_long:
    return _error(f"sequence length {too_long[0][1]} exceeds the config's "
                  f"max_position_embeddings ({config.max_position_embeddings})")

  _quiet()
  log = lambda line: print(line, flush=True)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  del tf
  machine = machine_record()
  output_dir = os.path.abspath(values.output_dir)
  os.makedirs(output_dir, exist_ok=True)
  stem = "latency_quick" if values.quick else "latency"
  work_dir = os.path.join(output_dir, stem + "_work")
  warmup = values.warmup if values.warmup is not None else (
      1 if values.quick else 3)
  start = time.time()
  config_name = values.config or ("tiny (--quick)" if values.quick
                                  else DEFAULT_CONFIG)
  log(f"{_PROGRAM}: {config_name}, shapes "
      f"{', '.join(f'{b}x{s}' for b, s in shapes)}, rows {', '.join(rows)}")
  setup = prepare(config, work_dir, rows, shapes, log)
  peak_before = matmul_gflops()
  log(f"2048^3 float32 matmul: {peak_before:.0f} GFLOP/s")
  cache, timings, repeats_used = {}, [], []
  for index, shape in enumerate(shapes):
    repeats = values.repeats or (3 if values.quick else
                                 (20 if index == 0 else 10))
    repeats_used.append(repeats)
    log(f"Shape batch {shape[0]} x seq {shape[1]}: warm-up, then {repeats} "
        "interleaved repeats")
    timing = measure_shape(rows, setup, shape, cache, warmup, repeats, log)
    for row in rows:
      if "ms_per_sequence" in timing[row]:
        log(f"  {row:15s} {timing[row]['ms_per_sequence']:9.2f} ms/seq")
    timings.append(timing)
  peak_after = matmul_gflops()
  memory = {}
  if values.memory:
    log("Peak memory, one process per row")
    args = dict(shape=f"{shapes[0][0]}x{shapes[0][1]}")
    if values.config:
      args["config"] = values.config
    if values.quick:
      args["quick"] = "true"
    import concurrent.futures  # pylint: disable=g-import-not-at-top
    measured = [r for r in rows if "ms_per_sequence" in timings[0].get(r, {})]
    # Peak RSS does not depend on what else runs: a few processes at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
      futures = {r: pool.submit(measure_memory, r, args, work_dir)
                 for r in measured}
      memory = {r: f.result() for r, f in futures.items()}
  machine["load_average_end"] = os.getloadavg()
  result = dict(
      machine=machine, quick=values.quick, config_name=config_name,
      config=config.to_dict(), shapes=[list(s) for s in shapes], rows=rows,
      repeats=max(repeats_used) if len(set(repeats_used)) == 1 else
      "/".join(str(r) for r in repeats_used),
      repeats_per_shape=repeats_used, warmup=warmup,
      flops=[encoder_flops(config, b, s) for b, s in shapes],
      matmul_gflops=max(peak_before, peak_after),
      matmul_gflops_before_after=[peak_before, peak_after],
      timings=timings, memory=memory,
      tflite_agreement={f"{q}_b{b}_s{s}": a for (q, b, s), a in
                        setup.tflite_agreement.items()},
      seconds=time.time() - start)
  report = format_report(result)
  with open(os.path.join(output_dir, stem + ".md"), "w",
            encoding="utf-8") as f:
    f.write(report)
  with open(os.path.join(output_dir, stem + ".json"), "w",
            encoding="utf-8") as f:
    json.dump(result, f, indent=1, default=_json_default)
  if not values.keep_work_dir:
    shutil.rmtree(work_dir, ignore_errors=True)
  print()
  print(report)
  log(f"Wrote {os.path.join(output_dir, stem)}.md and .json in "
      f"{time.time() - start:.0f} s.")
  del np
  return 0


def _json_default(value):
  import numpy as np  # pylint: disable=g-import-not-at-top
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, tuple):
    return list(value)
  raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _quiet() -> None:
  import logging  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings("ignore")
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.ERROR)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
