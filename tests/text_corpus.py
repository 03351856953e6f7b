"""Deterministic real-text fixture: docstrings of Python standard library modules.

The tokenizer parity tests and the vocabulary tests need a few thousand lines of
real English prose (with code, punctuation and the odd non-ASCII character).
The docstrings of the standard library are always available, need no network
and, for a fixed Python version, never change.

Example:

>>> lines = stdlib_docstring_lines(max_lines=5)
>>> len(lines)
5
"""

import importlib
import inspect
import warnings
from typing import List

# Fixed, ordered list: the order of the modules (and of `sorted(dir(module))`
# inside each) defines the order of the lines.
STDLIB_MODULES = (
    "json", "collections", "functools", "itertools", "os", "re", "string",
    "textwrap", "argparse", "logging", "pathlib", "typing", "dataclasses",
    "datetime", "decimal", "fractions", "heapq", "bisect", "statistics",
    "random", "shutil", "subprocess", "tempfile", "unittest", "email",
    "http.client", "urllib.parse", "xml.etree.ElementTree", "csv",
    "configparser", "difflib", "enum", "inspect", "pprint", "queue",
    "threading",
)


def _docstrings_of_module(module) -> List[str]:
  """Returns the docstrings of a module and of its public classes/functions.

  Args:
    module: an imported module.

  Returns:
    A list of raw docstrings, module first, then members sorted by name, each
    class followed by its public methods sorted by name.
  """
  docs = [module.__doc__ or ""]
  for name in sorted(dir(module)):
    if name.startswith("_"):
      continue
    member = getattr(module, name, None)
    if not (inspect.isclass(member) or inspect.isfunction(member) or
            inspect.isbuiltin(member)):
      continue
    # Skip re-exports from other modules, so that each docstring appears once.
    if getattr(member, "__module__", module.__name__) != module.__name__:
      continue
    docs.append(member.__doc__ or "")
    if inspect.isclass(member):
      for attr_name in sorted(vars(member)):
        if attr_name.startswith("_"):
          continue
        attr = vars(member)[attr_name]
        if inspect.isfunction(attr):
          docs.append(attr.__doc__ or "")
  return docs


def stdlib_docstring_lines(max_lines: int = 4000) -> List[str]:
  """Returns non-empty, stripped lines from standard library docstrings.

  Args:
    max_lines: int. Maximum number of lines to return. Defaults to 4000.

  Returns:
    A list of at most `max_lines` strings, in a stable order (the order of
    `STDLIB_MODULES`, then member names), without duplicates.

  Raises:
    ValueError: if `max_lines` is not positive.
  """
  if max_lines <= 0:
    raise ValueError(f"`max_lines` must be positive. Received: {max_lines}")
  lines, seen = [], set()
  for module_name in STDLIB_MODULES:
    module = importlib.import_module(module_name)
    with warnings.catch_warnings():  # e.g. deprecated typing.re, typing.io
      warnings.simplefilter("ignore", DeprecationWarning)
      docs = _docstrings_of_module(module)
    for doc in docs:
      for line in doc.splitlines():
        line = line.strip()
        if not line or line in seen:
          continue
        seen.add(line)
        lines.append(line)
        if len(lines) >= max_lines:
          return lines
  return lines
