r"""TensorFlow's `saved_model_cli`, with the TF Text ops registered.

The preprocessor and the fine-tuned serving models take strings and run TF
Text ops (normalization, WordPiece); the stock `saved_model_cli run` does
not load tensorflow_text and fails on them with "Op type not registered
'NormalizeUTF8'". This runs the same tool, with the same arguments, after
importing tensorflow_text:

  python -m export.saved_model_cli show --dir DIR/preprocessor --all
  python -m export.saved_model_cli run --dir DIR/preprocessor \
    --tag_set serve --signature_def serving_default \
    --input_exprs 'sentences=["Return the sum of the list."]'

(TF Serving needs the same ops linked into the model server: the official
`tensorflow/serving` builds have them.)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import sys

import tensorflow_text  # pylint: disable=unused-import  # registers the ops

from mobilebert_tf import _compat

if __name__ == "__main__":
  sys.argv[0] = "python -m export.saved_model_cli"
  sys.exit(_compat.saved_model_cli_main())
