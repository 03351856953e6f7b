"""Writes the preprocessor SavedModel (TF-Hub text preprocessor API).

The SavedModel behaves like `tensorflow/bert_en_uncased_preprocess/3`: a
root callable from `[batch]` strings to the int32 encoder inputs, and
`.tokenize`, `.tokenize.get_special_tokens_dict()`,
`.tokenize_with_offsets`, `.bert_pack_inputs(segments, seq_length=N)` and
`.vocab_file`; see `mobilebert_tf.preprocessing`, which builds the model.
Loading it needs tensorflow_text's ops: `import tensorflow_text` first.

Example:

>>> export_preprocessor("vocab.txt", True, "/tmp/hub/preprocessor")
'/tmp/hub/preprocessor'
>>> import tensorflow_text  # registers the TFText ops
>>> preprocessor = hub.load("/tmp/hub/preprocessor")
"""

import os
import tempfile

import tensorflow as tf

from export import assets
from mobilebert_tf import files
from mobilebert_tf import preprocessing


def export_preprocessor(vocab_file: str, do_lower_case: bool, export_dir: str,
                        seq_length: int = 128, tokenizer: str = "fast",
                        overwrite: bool = False) -> str:
  """Exports the preprocessor as a SavedModel for `hub.load`/`hub.KerasLayer`.

  The vocab file is staged first (`export.assets`), so that the SavedModel
  refers to it only as an asset (`assets/<name>`) and the source path does
  not appear in `saved_model.pb`. The directory appears only when complete
  (`mobilebert_tf.files.staged_directory`).

  Args:
    vocab_file: str. BERT vocab file (see `preprocessing.read_vocab`).
    do_lower_case: bool. True for uncased vocabularies.
    export_dir: str. Target directory; must not exist unless `overwrite`.
    seq_length: int. Default sequence length. Defaults to 128.
    tokenizer: str. "fast" or "bert". Defaults to "fast".
    overwrite: bool. Replace an existing `export_dir`. Defaults to False.

  Returns:
    The absolute `export_dir`.

  Raises:
    FileExistsError: if `export_dir` exists and `overwrite` is False.
    FileNotFoundError: if `vocab_file` or the parent of `export_dir` does not
      exist.
    ValueError: as `preprocessing.build_preprocessor`.
  """
  export_dir = files.check_target(export_dir, overwrite)
  if not os.path.isdir(os.path.dirname(export_dir)):
    raise FileNotFoundError(f"Parent directory of `export_dir` does not exist."
                            f" Received: export_dir={export_dir!r}")
  preprocessing.read_vocab(vocab_file)  # Fail early, before any work.
  with files.staged_directory(export_dir, overwrite) as tmp_export:
    with tempfile.TemporaryDirectory() as tmp_assets:
      preprocessor = preprocessing.build_preprocessor(
          assets.stage_asset(vocab_file, tmp_assets), do_lower_case,
          seq_length=seq_length, tokenizer=tokenizer)
      # An explicit signature, so TF Serving sees the output names
      # `input_word_ids`, ... (Keras would name them after the packing layer).
      serve = tf.function(lambda sentences: preprocessor(sentences))
      preprocessor.save(
          tmp_export, include_optimizer=False, save_format="tf",
          signatures={"serving_default": serve.get_concrete_function(
              tf.TensorSpec([None], tf.string, name="sentences"))})
  return export_dir
