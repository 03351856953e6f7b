"""Reading and writing name-based (TF1) MobileBERT checkpoints.

Writers stage their files with `mobilebert_tf.files.staged_prefix`, so a
checkpoint appears only when complete.
"""

import collections
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

from checkpoints import name_map
from mobilebert_tf import files
from mobilebert_tf.config import MobileBertConfig


def write_tf1_checkpoint(variables: Mapping[str, np.ndarray], prefix: str,
                         overwrite: bool = True, verify: bool = False) -> str:
  """Writes `{name: array}` as a name-based (TF1) checkpoint.

  Runs `SaveV2`, the op `tf.compat.v1.train.Saver` runs, directly: the same
  files (`prefix.index`, `prefix.data-00000-of-00001`), without building a
  graph of thousands of variables (a minute for a full-size checkpoint with
  optimizer slots). They appear only when complete (`files.staged_prefix`).

  Args:
    variables: {TF1 name: array}.
    prefix: str. The checkpoint prefix; missing directories are created.
    overwrite: bool. Replace an existing checkpoint. Defaults to True.
    verify: bool. Read the written files back and compare every tensor
      with `variables` bit for bit before they are renamed into place.
      Defaults to False.

  Returns:
    The prefix written.

  Raises:
    FileExistsError: a checkpoint exists at `prefix` and `overwrite` is
      False.
    RuntimeError: `verify` found a difference (nothing is renamed then).
  """
  names = list(variables)
  with files.staged_prefix(prefix, overwrite=overwrite) as tmp_prefix:
    tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                      shape_and_slices=[""] * len(names),
                      tensors=[np.asarray(variables[n]) for n in names])
    if verify:
      written = read_tf1_checkpoint(tmp_prefix)
      differ = sorted(set(written).symmetric_difference(names)) + [
          n for n in names
          if n in written and not np.array_equal(written[n], variables[n])]
      if differ:
        raise RuntimeError(f"The written checkpoint differs from the "
                           f"variables in {len(differ)} names: {differ[:5]}")
  return prefix


def read_tf1_checkpoint(prefix: str) -> Dict[str, np.ndarray]:
  """All tensors of a name-based checkpoint, `{name: array}`."""
  reader = tf.train.load_checkpoint(prefix)
  return collections.OrderedDict(
      (name, reader.get_tensor(name))
      for name in sorted(reader.get_variable_to_shape_map()))


def pretrainer_to_tf1_variables(pretrainer, config: MobileBertConfig
                                ) -> Dict[str, np.ndarray]:
  """A pretrainer's weights under their original TF1 names and shapes."""
  items = pretrainer.checkpoint_items
  table = name_map.tf1_to_keras(
      config, with_nsp="next_sentence" in items)
  return collections.OrderedDict(
      (tf1_name, name_map.to_tf1_value(
          name_map.resolve(items, entry.keras_path).numpy(), entry))
      for tf1_name, entry in table.items())


def export_tf1_checkpoint(pretrainer, config: MobileBertConfig,
                          prefix: str, overwrite: bool = True) -> str:
  """Writes a pretrainer as an original-layout TF1 checkpoint."""
  return write_tf1_checkpoint(
      pretrainer_to_tf1_variables(pretrainer, config), prefix,
      overwrite=overwrite)


def assign_tf1_variables(pretrainer, config: MobileBertConfig,
                         variables: Mapping[str, np.ndarray]) -> None:
  """Sets a pretrainer's weights from `{TF1 name: array}` (all must be there).

  Optimizer slots and names outside the table are ignored here; the converter
  (`checkpoints.convert`) is the strict, reporting path.

  Raises:
    KeyError: a model variable has no TF1 value.
  """
  items = pretrainer.checkpoint_items
  table = name_map.tf1_to_keras(config, with_nsp="next_sentence" in items)
  missing = [name for name in table if name not in variables]
  if missing:
    raise KeyError(f"{len(missing)} model variables have no TF1 value: "
                   f"{', '.join(missing[:5])}")
  for tf1_name, entry in table.items():
    variable = name_map.resolve(items, entry.keras_path)
    variable.assign(name_map.to_keras_value(
        np.asarray(variables[tf1_name]), entry, variable.shape))
