"""Writes the encoder SavedModel (TF-Hub text encoder API, with `.mlm`).

The encoder SavedModel written by `export_encoder` implements the Common
SavedModel API for text embeddings with Transformer encoders
(https://www.tensorflow.org/hub/common_saved_model_apis/text), like
`tensorflow/small_bert/bert_en_uncased_L-12_H-512_A-8` and the SavedModels
that tf-models-official's `official/nlp/tools/export_tfhub_lib.py` writes:

```
encoder = hub.KerasLayer(export_dir + "/encoder", trainable=True)
encoder_inputs = dict(
    input_word_ids=...,  # int32 [batch, seq_length], seq_length <= max
    input_mask=...,      # int32 [batch, seq_length], 1 = token, 0 = padding
    input_type_ids=...,  # int32 [batch, seq_length], segment ids
)
outputs = encoder(encoder_inputs, training=False)  # dropout iff training
outputs["pooled_output"]    # float32 [batch, width]
outputs["default"]          # alias of pooled_output
outputs["sequence_output"]  # float32 [batch, seq_length, width]
outputs["encoder_outputs"]  # list, one [batch, seq_length, width] per block;
                            # the last one is sequence_output

mlm_inputs = dict(encoder_inputs,
                  masked_lm_positions=...)  # int32 [batch, num_predict]
mlm_outputs = hub.load(export_dir + "/encoder").mlm(mlm_inputs)
mlm_outputs["mlm_logits"]   # float32 [batch, num_predict, vocab_size]
# ... plus pooled_output, sequence_output and encoder_outputs as above.
```

Besides, the encoder SavedModel has

* `.vocab_file`: the WordPiece vocabulary, a `tf.saved_model.Asset`;
* `.do_lower_case`: a non-trainable bool `tf.Variable`, as Google's models;
* `.bert_config_file`: the model's `MobileBertConfig` as JSON (original
  `bert_config.json` keys), a `tf.saved_model.Asset` at
  `assets/bert_config.json`: with it a consumer rebuilds the Keras model and
  restores the SavedModel's variables by object graph (`export.rebuild`);
* the signatures `serving_default` (the three int32 inputs -> `pooled_output`,
  `default`, `sequence_output`, `encoder_outputs_0` ... `encoder_outputs_<L-1>`)
  and `mlm` (the same plus `masked_lm_positions` -> the same plus
  `mlm_logits`), for TF Serving and `saved_model_cli`.

`hub.KerasLayer(..., trainable=True)` fine-tunes every encoder variable; the
`.mlm` head's own variables (transform, layer norm, output bias, extra output
weights) are not among the encoder's (like tf-models-official's exports).

Example:

>>> export_encoder(pretrainer, "vocab.txt", True, "/tmp/hub/encoder")
'/tmp/hub/encoder'
"""

import os
import tempfile
from typing import Optional

import tensorflow as tf

from export import assets
from export import encoder_model
from mobilebert_tf import files
from mobilebert_tf.config import MobileBertConfig

# File name of the config asset: `<export_dir>/assets/bert_config.json`.
CONFIG_ASSET = "bert_config.json"
# The vocabulary's asset name when its own name is CONFIG_ASSET.
_VOCAB_FALLBACK_NAME = "vocab.txt"


def pretrainer_config(pretrainer) -> MobileBertConfig:
  """The `MobileBertConfig` a pretrainer was built from.

  Raises:
    ValueError: the pretrainer was assembled from parts, not by
      `build_pretrainer(config)`: pass `config=` explicitly.
  """
  try:
    values = pretrainer.get_config()["config"]
  except (NotImplementedError, KeyError, TypeError):
    raise ValueError(
        "The pretrainer has no config (it was not built by "
        "build_pretrainer(config)); pass config= to export_encoder.") from None
  return MobileBertConfig.from_dict(values)


def export_encoder(pretrainer, vocab_file: str, do_lower_case: bool,
                   export_dir: str, overwrite: bool = False,
                   config: Optional[MobileBertConfig] = None) -> str:
  """Writes the encoder SavedModel (with `.mlm`, assets and signatures).

  See the module docstring for the SavedModel's contract. The directory
  appears only when complete (`mobilebert_tf.files.staged_directory`).

  Args:
    pretrainer: a `MobileBertPretrainer` holding the weights to export.
    vocab_file: str. The WordPiece vocabulary the model was trained with;
      copied into the SavedModel as an asset.
    do_lower_case: bool. Whether the vocabulary is uncased; stored as the
      `do_lower_case` variable.
    export_dir: str. Target directory; missing parents are created.
    overwrite: bool. Replace an existing `export_dir`. Defaults to False.
    config: the pretrainer's `MobileBertConfig`, stored as the
      `bert_config.json` asset. Defaults to the config the pretrainer was
      built from (`build_pretrainer(config)`).

  Returns:
    The absolute `export_dir`.

  Raises:
    FileExistsError: `export_dir` exists and `overwrite` is False.
    FileNotFoundError: `vocab_file` does not exist.
    ValueError: no config given and the pretrainer has none.
  """
  export_dir = files.check_target(export_dir, overwrite)
  if not os.path.isfile(vocab_file):
    raise FileNotFoundError(f"Vocab file not found: {vocab_file}")
  if config is None:
    config = pretrainer_config(pretrainer)
  core_model = encoder_model.build_export_model(pretrainer)
  with files.staged_directory(export_dir, overwrite) as tmp_export:
    with tempfile.TemporaryDirectory() as tmp_assets:
      vocab_name = os.path.basename(vocab_file)
      if vocab_name == CONFIG_ASSET:
        vocab_name = _VOCAB_FALLBACK_NAME
      core_model.vocab_file = tf.saved_model.Asset(
          assets.stage_asset(vocab_file, tmp_assets, basename=vocab_name))
      core_model.bert_config_file = tf.saved_model.Asset(
          assets.stage_text_asset(config.to_json_string(), CONFIG_ASSET,
                                  tmp_assets))
      core_model.do_lower_case = tf.Variable(bool(do_lower_case),
                                             trainable=False,
                                             name="do_lower_case")
      core_model.save(tmp_export, include_optimizer=False, save_format="tf",
                      signatures=encoder_model.serving_signatures(core_model))
  return export_dir


def read_config(saved_model_dir: str) -> MobileBertConfig:
  """The `MobileBertConfig` stored in an encoder SavedModel.

  Reads `<saved_model_dir>/assets/bert_config.json`, the `bert_config_file`
  asset of `export_encoder`; no need to load the SavedModel.

  Args:
    saved_model_dir: str. An encoder SavedModel directory.

  Raises:
    ValueError: the SavedModel has no config asset (it was written by an
      older version of `export.to_savedmodel`, or by another exporter), or
      the asset is not a valid config.
  """
  path = os.path.join(saved_model_dir, "assets", CONFIG_ASSET)
  if not os.path.isfile(path):
    raise ValueError(
        f"{saved_model_dir} has no config asset (assets/{CONFIG_ASSET}; an "
        "older export, or another exporter's), so its model cannot be "
        "rebuilt. Re-export the checkpoint with this version of "
        "`python -m export.to_savedmodel`.")
  try:
    return MobileBertConfig.from_json_file(path)
  except (OSError, ValueError, TypeError) as e:
    raise ValueError(
        f"{saved_model_dir}: the config asset is not a valid MobileBERT "
        "config. Re-export the checkpoint with this version of "
        "`python -m export.to_savedmodel`. "
        f"({str(e).strip().splitlines()[0]})") from None
