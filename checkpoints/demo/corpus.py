"""The demonstration model's corpus: docstrings of the Python standard library.

The docstrings are redistributable (Python Software Foundation licence), ship
with every Python installation, need no network and, for a fixed Python
version, never change, so the corpus is reproducible from the module list
alone.

Each docstring is split into paragraphs (at blank lines); the lines of a prose
paragraph are joined and split into sentences; doctest and other indented
code lines stay one line each. Whitespace is collapsed, and duplicates
(inherited or repeated docstrings) are dropped, keeping the first occurrence.

Example:

>>> lines = stdlib_docstring_lines(modules=("json",), max_lines=3)
>>> len(lines)
3
"""

import contextlib
import importlib
import inspect
import io
import json
import os
import re
import subprocess
import sys
import warnings
from typing import Iterator, List, Optional, Sequence

# Fixed, ordered list: the order of the modules (and of the sorted member
# names inside each) defines the order of the lines.
STDLIB_MODULES = (
    "json", "collections", "functools", "itertools", "os", "re", "string",
    "textwrap", "argparse", "logging", "pathlib", "typing", "dataclasses",
    "datetime", "decimal", "fractions", "heapq", "bisect", "statistics",
    "random", "shutil", "subprocess", "tempfile", "unittest", "email",
    "http.client", "urllib.parse", "xml.etree.ElementTree", "csv",
    "configparser", "difflib", "enum", "inspect", "pprint", "queue",
    "threading", "asyncio", "concurrent.futures", "contextlib", "copy", "io",
    "math", "operator", "pickle", "socket", "sqlite3", "struct", "zipfile",
    "tarfile", "abc", "ast", "base64", "calendar", "codecs", "cmd", "doctest",
    "ftplib", "getopt", "gettext", "glob", "gzip", "hashlib", "hmac",
    "imaplib", "ipaddress", "locale", "mailbox", "mimetypes", "numbers",
    "optparse", "os.path", "pdb", "platform", "plistlib", "poplib", "pydoc",
    "selectors", "shelve", "shlex", "smtplib", "socketserver", "ssl", "sys",
    "sysconfig", "timeit", "tokenize", "traceback", "types", "uuid",
    "warnings", "weakref", "wsgiref.handlers", "xml.dom.minidom", "zipimport",
    "bz2", "lzma", "html.parser", "http.server", "http.cookiejar",
    "urllib.request", "urllib.robotparser", "xmlrpc.client", "fnmatch",
    "filecmp", "fileinput", "linecache", "netrc", "nntplib", "pkgutil",
    "quopri", "reprlib", "sched", "secrets", "stat", "symtable",
    "tabnanny", "trace", "zlib", "array", "cmath", "colorsys", "graphlib",
    "importlib", "importlib.metadata", "importlib.resources", "json.decoder",
    "json.encoder", "logging.handlers", "multiprocessing",
    "email.message", "email.utils", "email.policy", "email.headerregistry",
    "unittest.mock", "asyncio.streams", "asyncio.tasks", "asyncio.events",
    "asyncio.base_events", "collections.abc", "concurrent.futures.thread",
    "concurrent.futures.process", "builtins", "time", "unittest.case",
    "pickletools", "wave", "asyncio.locks", "xml.sax.handler",
    "email.charset", "importlib.abc", "asyncio.transports",
    "xml.sax.xmlreader", "http.cookies", "site", "asyncio.protocols",
    "asyncio.unix_events", "venv", "py_compile", "multiprocessing.managers",
    "logging.config", "pyclbr", "profile", "email.header", "pstats",
    "asyncio.selector_events", "importlib.util", "webbrowser",
    "asyncio.runners", "unittest.result", "unittest.loader", "asyncio.queues",
    "multiprocessing.shared_memory", "dbm", "email.feedparser",
    "email.generator", "ctypes", "multiprocessing.connection", "xml.sax",
    "runpy", "xml.dom", "multiprocessing.pool", "cProfile", "zoneinfo",
    "tomllib", "keyword", "token", "urllib.error", "urllib.response",
    "xml.sax.saxutils", "xml.dom.pulldom",
)

# A sentence ends with . ! or ? followed by whitespace and an upper-case
# letter, a digit or an opening quote/bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WHITESPACE = re.compile(r"\s+")
# Sentences shorter than this (after collapsing whitespace) are dropped:
# mostly section headers ("Args:") and underlines ("-----").
_MIN_CHARS = 8


def _quiet_import(name: str):
  """Imports a module, or returns None if this Python lacks it."""
  with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
    warnings.simplefilter("ignore")
    try:
      return importlib.import_module(name)
    except ImportError:  # e.g. tkinter or nntplib missing from a build.
      return None


def _docstrings_of_module(module) -> Iterator[str]:
  """Yields the module docstring, then its public members' docstrings.

  Members are sorted by name; each class is followed by its public methods
  (functions defined in the class body), sorted by name. Members re-exported
  from another module are skipped, so each docstring appears once.
  """
  yield module.__doc__ or ""
  for name in sorted(dir(module)):
    if name.startswith("_"):
      continue
    with warnings.catch_warnings():  # e.g. deprecated typing aliases
      warnings.simplefilter("ignore")
      member = getattr(module, name, None)
    if not (inspect.isclass(member) or inspect.isfunction(member) or
            inspect.isbuiltin(member)):
      continue
    if getattr(member, "__module__", module.__name__) != module.__name__:
      continue
    yield member.__doc__ or ""
    if inspect.isclass(member):
      members = vars(member)
      for attr_name in sorted(members):
        if attr_name.startswith("_"):
          continue
        attr = members[attr_name]
        if isinstance(attr, (staticmethod, classmethod)):
          attr = attr.__func__
        elif isinstance(attr, property):
          attr = attr.fget
        if inspect.isroutine(attr):  # Python functions and C methods.
          yield attr.__doc__ or ""


def docstring_sentences(doc: str) -> List[str]:
  """Splits one docstring into normalized sentences and code lines.

  Args:
    doc: str. A raw docstring.

  Returns:
    A list of non-empty strings with single spaces: the sentences of each
    prose paragraph, and each doctest (`>>>`, `...`) or indented code line on
    its own.
  """
  doc = inspect.cleandoc(doc)
  result = []
  paragraph = []

  def flush():
    if paragraph:
      text = " ".join(paragraph)
      result.extend(_SENTENCE_END.split(text))
      paragraph.clear()

  for raw in doc.splitlines():
    line = _WHITESPACE.sub(" ", raw).strip()
    if not line:
      flush()
    elif line.startswith((">>>", "...")) or raw.startswith((" ", "\t")):
      flush()
      result.append(line)
    else:
      paragraph.append(line)
  flush()
  return [s.strip() for s in result if len(s.strip()) >= _MIN_CHARS]


def _collect_lines(modules: Sequence[str],
                   max_lines: Optional[int]) -> List[str]:
  """`stdlib_docstring_lines` in this interpreter (see there)."""
  lines, seen, done = [], set(), set()
  for module_name in modules:
    if module_name in done:
      continue
    done.add(module_name)
    module = _quiet_import(module_name)
    if module is None:
      continue
    for doc in _docstrings_of_module(module):
      for line in docstring_sentences(doc):
        if line in seen:
          continue
        seen.add(line)
        lines.append(line)
        if max_lines is not None and len(lines) >= max_lines:
          return lines
  return lines


def stdlib_docstring_lines(modules: Sequence[str] = STDLIB_MODULES,
                           max_lines: Optional[int] = None) -> List[str]:
  """Returns the corpus: unique sentences of standard library docstrings.

  The docstrings are read in a fresh, isolated Python interpreter (this one's
  executable, `-I`): libraries may rewrite standard library docstrings when
  imported (tf_keras replaces `collections.abc.Mapping.get.__doc__`), which
  would make the corpus depend on what the caller imported before.

  Args:
    modules: sequence of str. Module names, in order. Modules this Python
      cannot import are skipped; a name listed twice is read once. Defaults
      to `STDLIB_MODULES`.
    max_lines: int or None. Stop after this many lines. Defaults to None (all
      lines).

  Returns:
    A list of unique, non-empty, whitespace-normalized strings in a stable
    order (the order of `modules`, then member names, then position in the
    docstring).

  Raises:
    ValueError: if `max_lines` is not None and not positive.
    RuntimeError: if the child interpreter fails.
  """
  if max_lines is not None and (
      isinstance(max_lines, bool) or not isinstance(max_lines, int) or
      max_lines <= 0):
    raise ValueError("`max_lines` must be a positive int or None. "
                     f"Received: max_lines={max_lines!r}")
  modules = [str(m) for m in modules]
  request = json.dumps(dict(modules=modules, max_lines=max_lines))
  result = subprocess.run(
      [sys.executable, "-I", os.path.abspath(__file__)], input=request,
      capture_output=True, text=True, encoding="utf-8", check=False)
  if result.returncode:
    raise RuntimeError("Reading the docstrings failed: "
                       f"{result.stderr.strip().splitlines()[-1:]}")
  return json.loads(result.stdout)


if __name__ == "__main__":
  # The child of `stdlib_docstring_lines`: a JSON request on stdin, the JSON
  # list of lines on stdout.
  _request = json.loads(sys.stdin.read())
  sys.stdout.write(json.dumps(_collect_lines(_request["modules"],
                                             _request["max_lines"])))
