"""Writes a benchmark's result: `STEM.json` (every number) and `STEM.md`.

The one writing step of `benchmarks.latency`, `benchmarks.training` and
`benchmarks.distillation`: each file appears complete (written beside it,
then renamed: `mobilebert_tf.files`), the report is printed, and its paths
are returned.
"""

import json
import os
import time
from typing import Callable, List


def write(stem: str, result: dict, format_report: Callable[[dict, str], str],
          start: float, log: Callable[[str], None]) -> List[str]:
  """Writes `stem.json` and `stem.md`; returns their paths.

  Args:
    stem: str. The path without the extension.
    result: dict. Every number of the run (JSON-serializable).
    format_report: callable `(result, json file name) -> Markdown text`.
    start: float. `time.time()` when the run started, for the last line.
    log: callable taking one progress line.
  """
  from mobilebert_tf import files  # pylint: disable=g-import-not-at-top
  json_path = files.write_text(stem + ".json",
                               json.dumps(result, indent=1) + "\n")
  text = format_report(result, os.path.basename(json_path))
  md_path = files.write_text(stem + ".md", text)
  print()
  print(text)
  log(f"Wrote {json_path} and {os.path.basename(md_path)} in "
      f"{time.time() - start:.0f} s.")
  return [json_path, md_path]
