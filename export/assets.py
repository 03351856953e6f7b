"""Asset files for SavedModels, staged so that no source path is saved.

A `tf.saved_model.Asset` records the path it was created with; the
SavedModel copies the file to `assets/<basename>`, but the original path would
still appear in `saved_model.pb`. Staging a copy under a temporary directory
named after a hash of the source directory (as tf-models-official does)
leaves only the basename.

Example:

>>> with tempfile.TemporaryDirectory() as tmp_dir:
...   model.vocab_file = tf.saved_model.Asset(
...       stage_asset("vocab.txt", tmp_dir))
...   model.save(export_dir)
"""

import hashlib
import os
import shutil
from typing import Optional

from mobilebert_tf import files


def stage_asset(path: str, tmp_dir: str,
                basename: Optional[str] = None) -> str:
  """Copies `path` to `tmp_dir/<sha1 of its dir>/<basename>`.

  Args:
    path: str. The source file.
    tmp_dir: str. A temporary directory that outlives the SavedModel write.
    basename: str. The asset's file name. Defaults to `path`'s.

  Returns:
    The copy's path, for `tf.saved_model.Asset`.

  Raises:
    FileNotFoundError: `path` does not exist.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Asset file not found: {path}")
  source_dir, source_name = os.path.split(os.path.abspath(path))
  target_dir = os.path.join(tmp_dir,
                            hashlib.sha1(source_dir.encode()).hexdigest())
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, basename or source_name)
  shutil.copyfile(path, target)
  return target


def stage_text_asset(text: str, basename: str, tmp_dir: str) -> str:
  """Writes `text` to `tmp_dir/generated/<basename>`; returns the path."""
  target = os.path.join(tmp_dir, "generated", basename)
  os.makedirs(os.path.dirname(target), exist_ok=True)
  return files.write_text(target, text, overwrite=True)
