"""The benchmark's rows: what each one runs, and how it is built.

  ours                     our encoder, "standard" attention layout,
                           `tf.function` (the reference of the errors)
  ours_xla                 the same with `jit_compile=True`
  ours_frozen              the same, weights frozen (`freeze_for_inference`)
  ours_heads_first         "heads_first" attention layout, `tf.function`
  ours_heads_first_frozen  the same, weights frozen
  hub                      the SavedModel of `python -m export.to_savedmodel`,
                           `hub.load` and called
  tflite_none              `python -m export.to_tflite`, float32, run by the
                           LiteRT interpreter
  tflite_dynamic           the same, dynamic-range int8 weights
  tflite_float16           the same, float16 weights
  tfm                      tf-models-official's `MobileBERTEncoder`,
                           `tf.function` (the baseline of the ratios)
  tfm_xla                  the same with `jit_compile=True`
  tfm_frozen               the same, frozen with `freeze_for_inference`
  torch                    transformers' PyTorch `MobileBertModel`,
                           `inference_mode`

Every row holds the same weights (see `benchmarks.artifacts`) and returns
numpy `sequence_output` and `pooled_output`. Every row uses its library's
default threading (TensorFlow: all cores; LiteRT: `num_threads` = the number
of cores; PyTorch: its default).

Nothing here imports TensorFlow at module level (see `benchmarks.memory`).
"""

# Imports inside functions: each loads only what its row needs.
# pylint: disable=g-import-not-at-top

import dataclasses
import fnmatch
import os
from typing import Callable, Dict, List, Optional, Tuple

OUTPUTS = ("sequence_output", "pooled_output")


@dataclasses.dataclass(frozen=True)
class Row:
  """One way of running the encoder.

  Attributes:
    id: str. The `--rows` name.
    name: str. The table's label.
    family: str. "ours", "tfm", "hub", "tflite" or "torch".
    mode: str. For "ours" and "tfm": "function" (`tf.function`), "xla"
      (`jit_compile=True`) or "frozen" (`freeze_for_inference`).
    layout: str or None. For "ours": the encoder's `attention_layout`.
    quantization: str or None. For "tflite": `--quantization`.
  """
  id: str
  name: str
  family: str
  mode: str = "function"
  layout: Optional[str] = None
  quantization: Optional[str] = None

  @property
  def is_float32(self) -> bool:
    """Whether the row computes in float32 with float32 weights."""
    return self.quantization in (None, "none")


ROWS = (
    Row("ours", "mobilebert_tf standard, tf.function", "ours",
        layout="standard"),
    Row("ours_xla", "mobilebert_tf standard, tf.function + XLA", "ours",
        mode="xla", layout="standard"),
    Row("ours_frozen", "mobilebert_tf standard, frozen (freeze_for_inference)",
        "ours", mode="frozen", layout="standard"),
    Row("ours_heads_first", "mobilebert_tf heads_first, tf.function", "ours",
        layout="heads_first"),
    Row("ours_heads_first_frozen",
        "mobilebert_tf heads_first, frozen (freeze_for_inference)", "ours",
        mode="frozen", layout="heads_first"),
    Row("hub", "exported SavedModel, hub.load", "hub"),
    Row("tflite_none", "TFLite float32 (export.to_tflite)", "tflite",
        quantization="none"),
    Row("tflite_dynamic", "TFLite dynamic-range int8", "tflite",
        quantization="dynamic"),
    Row("tflite_float16", "TFLite float16 weights", "tflite",
        quantization="float16"),
    Row("tfm", "tf-models-official, tf.function", "tfm"),
    Row("tfm_xla", "tf-models-official, tf.function + XLA", "tfm", mode="xla"),
    Row("tfm_frozen", "tf-models-official, frozen (freeze_for_inference)",
        "tfm", mode="frozen"),
    Row("torch", "transformers (PyTorch)", "torch"),
)
BY_ID = {row.id: row for row in ROWS}
ROW_IDS = tuple(BY_ID)
# The ratios are to this row at the same shape...
BASELINE = "tfm"
# ... and the errors to this one (all rows hold its weights).
REFERENCE = "ours"


def select(spec: str) -> List[str]:
  """The row ids a `--rows` value names, in table order.

  Args:
    spec: str. Comma-separated ids or shell patterns ("ours*", "tflite_*").
      `REFERENCE` and `BASELINE` are always added: the errors and ratios
      need them.

  Raises:
    ValueError: a part matches no row.
  """
  parts = [p.strip() for p in spec.split(",") if p.strip()]
  unknown = [p for p in parts if not fnmatch.filter(ROW_IDS, p)]
  if unknown or not parts:
    raise ValueError(f"--rows: unknown {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(ROW_IDS)} (patterns like "
                     "ours* work)")
  chosen = {REFERENCE, BASELINE}
  for part in parts:
    chosen.update(fnmatch.filter(ROW_IDS, part))
  return [r for r in ROW_IDS if r in chosen]


def inputs(config_values, batch: int, seq: int, seed: int = 0):
  """Fixed random int32 encoder inputs: no padding, both token types."""
  import numpy as np
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, config_values["vocab_size"],
                     size=(batch, seq)).astype(np.int32)
  types = np.zeros_like(ids)
  types[:, seq // 2:] = 1
  return dict(input_word_ids=ids, input_mask=np.ones_like(ids),
              input_type_ids=types)


def our_encoder(config, attention_layout: str):
  """Our encoder for `config` in one attention layout (fresh weights)."""
  from mobilebert_tf import build_encoder
  return build_encoder(config, attention_layout=attention_layout)


def _read_encoder_weights(encoder, setup) -> None:
  """Gives `encoder` the shared weights (the object graphs are the same)."""
  import tensorflow as tf
  if setup.with_weights:
    tf.train.Checkpoint(encoder=encoder).read(
        setup.encoder_checkpoint).assert_existing_objects_matched()


def _tf_encoder(row: Row, setup, cache: Dict[str, object]):
  """The Keras encoder of an "ours" or "tfm" row, shared across shapes."""
  key = f"{row.family}_{row.layout}"
  if key not in cache:
    if row.family == "tfm":
      from benchmarks import peers
      encoder = peers.tfm_encoder(setup.config())
      _read_encoder_weights(encoder, setup)
    elif row.layout == "standard" and setup.pretrainer is not None:
      encoder = setup.pretrainer.encoder_network  # Holds the weights.
    else:
      encoder = our_encoder(setup.config(), row.layout)
      _read_encoder_weights(encoder, setup)
    cache[key] = encoder
  return cache[key]


def _tf_runner(row: Row, setup, inputs_np, cache) -> Callable[[], dict]:
  import tensorflow as tf
  encoder = _tf_encoder(row, setup, cache)
  tensors = {k: tf.constant(v) for k, v in inputs_np.items()}
  if row.mode == "frozen":
    from mobilebert_tf import freeze_for_inference
    if row.id not in cache:  # One frozen graph serves every shape.
      cache[row.id] = freeze_for_inference(encoder, output_keys=OUTPUTS)
    fn = cache[row.id]
  else:
    def call(x):  # Only what is fetched, as in the frozen rows.
      outputs = encoder(x, training=False)
      return {k: outputs[k] for k in OUTPUTS}
    fn = tf.function(call, jit_compile=row.mode == "xla")
  return lambda: {k: v.numpy() for k, v in fn(tensors).items()}


def _hub_runner(setup, inputs_np, cache) -> Callable[[], dict]:
  import tensorflow as tf
  if "hub" not in cache:
    import tensorflow_hub as hub
    cache["hub"] = hub.load(setup.hub_dir)
  loaded = cache["hub"]
  tensors = {k: tf.constant(v) for k, v in inputs_np.items()}
  def run():
    outputs = loaded(tensors, training=False)
    return {k: outputs[k].numpy() for k in OUTPUTS}
  return run


def _tflite_runner(row: Row, setup, shape, inputs_np) -> Callable[[], dict]:
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(
      model_path=setup.tflite_path(row.quantization, *shape),
      num_threads=os.cpu_count())
  runner = interpreter.get_signature_runner("serving_default")
  def run():
    outputs = runner(**inputs_np)
    return {k: outputs[k] for k in OUTPUTS}
  return run


def _torch_runner(setup, inputs_np, cache) -> Callable[[], dict]:
  import torch
  if "torch" not in cache:
    from benchmarks import peers
    cache["torch"] = peers.torch_model(
        setup.config_values,
        setup.tf1_checkpoint if setup.with_weights else None)
  model = cache["torch"]
  tensors = dict(
      input_ids=torch.tensor(inputs_np["input_word_ids"], dtype=torch.long),
      attention_mask=torch.tensor(inputs_np["input_mask"], dtype=torch.long),
      token_type_ids=torch.tensor(inputs_np["input_type_ids"],
                                  dtype=torch.long))
  def run():
    with torch.inference_mode():
      outputs = model(**tensors)
    return dict(sequence_output=outputs.last_hidden_state.numpy(),
                pooled_output=outputs.pooler_output.numpy())
  return run


def build_row(row_id: str, setup, shape: Tuple[int, int],
              cache: Dict[str, object]) -> Callable[[], dict]:
  """A callable running one row once at `shape`.

  Args:
    row_id: str. One of `ROW_IDS`.
    setup: `benchmarks.artifacts.Setup`.
    shape: (batch, seq).
    cache: dict kept across shapes (models, loaded SavedModels, frozen
      graphs).

  Returns:
    A function of no arguments returning {"sequence_output",
    "pooled_output"} as numpy arrays.

  Raises:
    RuntimeError: an artifact the row needs could not be made.
  """
  row = BY_ID[row_id]
  missing = setup.missing(row, shape)
  if missing:
    raise RuntimeError(missing)
  inputs_np = inputs(setup.config_values, *shape)
  if row.family in ("ours", "tfm"):
    return _tf_runner(row, setup, inputs_np, cache)
  if row.family == "hub":
    return _hub_runner(setup, inputs_np, cache)
  if row.family == "tflite":
    return _tflite_runner(row, setup, shape, inputs_np)
  if row.family == "torch":
    return _torch_runner(setup, inputs_np, cache)
  raise ValueError(f"Unknown row family {row.family!r}")


def import_libraries(row_id: str) -> None:
  """Imports what a row needs, and nothing more (for `benchmarks.memory`)."""
  # pylint: disable=unused-import
  row = BY_ID[row_id]
  if row.family == "tflite":
    import numpy
    from ai_edge_litert import interpreter
  elif row.family == "torch":
    import torch
    import transformers
  else:
    import tensorflow
    import tf_keras
    import mobilebert_tf
    if row.family == "hub":
      import tensorflow_hub
    if row.family == "tfm":
      from official.nlp.modeling import networks

