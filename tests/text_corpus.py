"""Real text for tests: docstrings of the Python standard library.

The same deterministic corpus the demo model is trained on
(`checkpoints.demo.corpus`), read in a fresh interpreter so that what this
process imported (tf_keras rewrites some stdlib docstrings) cannot change it.
"""

from checkpoints.demo.corpus import stdlib_docstring_lines  # noqa: F401
