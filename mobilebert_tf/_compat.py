"""Every use of a private TensorFlow / Keras / TF Text API, in one place.

Each function here wraps one API that has no public equivalent in the
pinned versions (TF 2.20, tf_keras 2.20, tensorflow_text 2.20, LiteRT 2.x).
`tests/test_compat.py` exercises each one, so an upgrade that changes or
removes it fails there, loudly and by name, instead of deep inside an export.
"""

import contextlib
from typing import Iterator, List


@contextlib.contextmanager
def untracked_attributes(obj) -> Iterator[None]:
  """Attributes set inside are not checkpoint dependencies of `obj`.

  Keras tracks every layer assigned to a model attribute. Functional models
  already track their layers as `layer_with_weights-N`; convenience
  attributes set on top would add a second path to the same variables and
  change the checkpoint's object graph (tf-models-official's models use the
  same private switch for the same reason).
  """
  previous = obj._self_setattr_tracking  # pylint: disable=protected-access
  obj._self_setattr_tracking = False  # pylint: disable=protected-access
  try:
    yield
  finally:
    obj._self_setattr_tracking = previous  # pylint: disable=protected-access


def stop_attribute_tracking(obj) -> None:
  """From now on, attributes set on `obj` are not checkpoint dependencies.

  What tf-models-official's `MobileBERTEncoder` does before building its
  functional graph (and never undoes); doing the same keeps the two object
  graphs, and so their checkpoints, identical.
  """
  obj._self_setattr_tracking = False  # pylint: disable=protected-access


def attach_without_weights(model, name: str, submodel) -> None:
  """Sets `model.<name> = submodel` without adding submodel's weights.

  The SavedModel still saves `submodel` as a dependency (so `loaded.<name>`
  exists after `hub.load`), but `model.weights`, and so
  `hub.KerasLayer(...).trainable_weights`, keep only `model`'s own. This is
  how tf-models-official exports `.mlm` (see b/169210253).
  """
  model._auto_track_sub_layers = False  # pylint: disable=protected-access
  setattr(model, name, submodel)


def create_optimizer_slots(optimizer, variables) -> None:
  """Creates a tf_keras optimizer's slots and `iterations` now.

  Made in the first `apply_gradients`, inside a training step's
  `tf.function`, they would make TF trace the whole step twice (once
  creating variables, once not), and a checkpoint restored before the first
  step would restore them only when they appear. The legacy optimizers
  (tf-models-official's LAMB and AdamWeightDecay are) have no public way;
  the new ones have `build`. A `LossScaleOptimizer` forwards the call to
  the optimizer it wraps.
  """
  create = getattr(optimizer, "_create_all_weights", None)
  if create is not None:
    create(variables)
  else:
    optimizer.build(variables)


@contextlib.contextmanager
def op_determinism(enabled: bool) -> Iterator[None]:
  """TF op determinism inside the block, the previous setting after it.

  `tf.config.experimental.enable_op_determinism()` is process-wide and has
  no public way back; a CLI run in-process (`main([...])`) must not leave
  it on for the caller (it makes unseeded random ops, e.g. dropout, raise).
  """
  # pylint: disable-next=g-direct-tensorflow-import,g-import-not-at-top
  from tensorflow.python.framework import config
  previous = config.is_op_determinism_enabled()
  if enabled:
    config.enable_op_determinism()
  try:
    yield
  finally:
    if not previous:
      config.disable_op_determinism()


def convert_variables_to_constants(concrete_function):
  """`concrete_function` with every captured variable folded into a constant.

  TF2 has no public entry point for this conversion; TFLite, TF-TRT and
  TensorFlow.js use the same function.
  """
  # pylint: disable-next=g-direct-tensorflow-import,g-import-not-at-top
  from tensorflow.python.framework import convert_to_constants
  return convert_to_constants.convert_variables_to_constants_v2(
      concrete_function)


def bert_basic_tokenizer(lower_case: bool):
  """tensorflow_text's BERT word splitter (`BasicTokenizer`).

  `text.BertTokenizer` uses it internally but does not export it; we need it
  alone, to split words without the WordPiece step.
  """
  # pylint: disable-next=g-direct-tensorflow-import,g-import-not-at-top
  from tensorflow_text.python.ops import bert_tokenizer
  return bert_tokenizer.BasicTokenizer(lower_case=lower_case)


def saved_call(module):
  """The tf.function a Model Garden SavedModel wrapper stores as `__call__`.

  `BertPackInputsSavedModelWrapper` sets `self.__call__ = tf.function(...)`
  on the instance; Python looks `obj(...)` up on the class, so before saving
  the instance attribute is only reachable through `__dict__`.
  """
  return module.__dict__["__call__"]


def tflite_op_count(model_content: bytes) -> int:
  """Number of operators in a TFLite flatbuffer (LiteRT's interpreter)."""
  # pylint: disable-next=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter
  return len(tflite_op_details(Interpreter(model_content=model_content)))


def tflite_op_details(interpreter) -> List[dict]:
  """The operators of a LiteRT `Interpreter` (`op_name`, `inputs`, `outputs`
  tensor indices). Once its tensors are allocated, its default XNNPACK
  delegate has been applied: one `DELEGATE` node follows per partition that
  XNNPACK runs, and what XNNPACK cannot take splits the partitions."""
  return interpreter._get_ops_details()  # pylint: disable=protected-access


def saved_model_cli_main() -> int:
  """TensorFlow's `saved_model_cli` (its console entry point), in-process.

  The tool is only reachable as a private module; `export.saved_model_cli`
  runs it after importing tensorflow_text.
  """
  # pylint: disable-next=g-direct-tensorflow-import,g-import-not-at-top
  from tensorflow.python.tools import saved_model_cli
  return saved_model_cli.main()
