"""Rebuilds the Keras model of an encoder SavedModel, restored by object graph.

An encoder SavedModel of `export.encoder_savedmodel` carries its
`MobileBertConfig` (`assets/bert_config.json`). `rebuild_export_model` builds
the same Keras model from it (`build_pretrainer` + `build_export_model`, so
the object graph is the exported one) and restores the SavedModel's
variables (`variables/variables`) into it with `tf.train.Checkpoint`, by
object path, never by name, order or shape. It fails unless the two graphs
match exactly: every checkpoint value is consumed, every model variable is
written (they are set to NaN first).

The result is an ordinary Keras model of this library's classes: it can be
traced anew (TFLite conversion traces it with `validate_inputs=False`, since
TFLite has no Assert op), fine-tuned or saved again.

Example:

>>> rebuilt = rebuild_export_model("/tmp/hub/encoder")
>>> rebuilt.export_model(inputs)["sequence_output"]
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tf_keras

from checkpoints import restore
from export import encoder_model
from export import encoder_savedmodel
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.pretrainer import build_pretrainer

_REEXPORT = ("Re-export the checkpoint with this version of "
             "`python -m export.to_savedmodel`.")


class RebuildError(ValueError):
  """The SavedModel cannot be rebuilt (no config, or another object graph)."""


@dataclasses.dataclass
class RebuiltExport:
  """An encoder SavedModel's model, rebuilt and restored.

  Attributes:
    saved_model_dir: str.
    config: the `MobileBertConfig` from the config asset.
    pretrainer: the `MobileBertPretrainer` holding the restored weights.
    export_model: `build_export_model(pretrainer)`, with `.mlm`.
  """
  saved_model_dir: str
  config: MobileBertConfig
  pretrainer: object
  export_model: tf_keras.Model


def rebuild_export_model(saved_model_dir: str,
                         **encoder_overrides) -> RebuiltExport:
  """Rebuilds and restores the Keras model of an encoder SavedModel.

  Args:
    saved_model_dir: str. An encoder SavedModel written by
      `export.encoder_savedmodel.export_encoder` (`DIR/encoder` of an
      export).
    **encoder_overrides: `MobileBERTEncoder` arguments that change no
      variable, e.g. `validate_inputs=False` or
      `attention_layout="heads_first"`.

  Returns:
    A `RebuiltExport`.

  Raises:
    FileNotFoundError: no SavedModel at `saved_model_dir`.
    RebuildError: no config asset, or the SavedModel's object graph differs
      from the rebuilt model's (a modified SavedModel, or another exporter's).
  """
  saved_model_dir = os.path.abspath(os.fspath(saved_model_dir))
  if not tf.saved_model.contains_saved_model(saved_model_dir):
    raise FileNotFoundError(
        f"No SavedModel in {saved_model_dir} (no saved_model.pb). Pass the "
        "encoder directory of an export, e.g. DIR/encoder.")
  try:
    config = encoder_savedmodel.read_config(saved_model_dir)
  except ValueError as e:
    raise RebuildError(str(e)) from None
  pretrainer = build_pretrainer(config, **encoder_overrides)
  export_model = encoder_model.build_export_model(pretrainer)
  # The export's one variable outside the model; restored below.
  export_model.do_lower_case = tf.Variable(False, trainable=False,
                                           name="do_lower_case")
  variables = restore.unique_variables(export_model, export_model.mlm)
  for variable in variables:  # Sentinel: anything not restored stays NaN.
    if variable.dtype.is_floating:
      variable.assign(tf.fill(variable.shape, float("nan")))

  prefix = os.path.join(saved_model_dir, tf.saved_model.VARIABLES_DIRECTORY,
                        tf.saved_model.VARIABLES_FILENAME)
  try:
    status = tf.train.Checkpoint(root=export_model).read(prefix)
    status.assert_consumed()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    raise RebuildError(
        f"{saved_model_dir}: its variables do not match the model rebuilt "
        f"from its config asset (modified after export, or another "
        f"version's). {_REEXPORT} ({message})") from None
  stored = [k for k, _ in tf.train.list_variables(prefix)
            if k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")]
  not_restored = [v.name for v in variables if v.dtype.is_floating
                  and not np.isfinite(v.numpy()).all()]
  if not_restored or len(stored) != len(variables):
    raise RebuildError(
        f"{saved_model_dir}: its variables do not match the model rebuilt "
        f"from its config asset ({len(stored)} vs {len(variables)} "
        f"variables). {_REEXPORT} (Not restored, or NaN in the SavedModel: "
        f"{', '.join(sorted(not_restored)[:5]) or 'none'}.)")
  return RebuiltExport(saved_model_dir=saved_model_dir, config=config,
                       pretrainer=pretrainer, export_model=export_model)
