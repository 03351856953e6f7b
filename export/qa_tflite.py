"""The question-answering TFLite model: packed windows in, span logits out.

`convert_qa` turns a `MobileBertForQuestionAnswering` over a
`MobileBERTEncoder` into a fixed-shape float32 TFLite model whose
`serving_default` takes the three int32 encoder inputs `[1, seq_length]`
(one window: `qa.prepare_qa_inputs`'s rows) and returns float32
`start_logits` and `end_logits` `[1, seq_length]`, the shape of TFLite's
BERT question-answerer models. The model is rebuilt without input checks
(TFLite has no Assert op) and its weights restored by object graph from the
trained one. `verify_qa` runs the flatbuffer in LiteRT on every window of
some questions and checks that `qa.extract_answers` gives the in-memory
model's answers.

Example:

>>> flatbuffer = convert_qa(model, config, seq_length=384)
>>> verify_qa(flatbuffer, model, preprocessor, questions, contexts,
...           seq_length=384)
"""

from typing import Dict, Sequence

import numpy as np

from export import tflite_convert
from export import tflite_verify
from mobilebert_tf import heads
from mobilebert_tf import qa

QA_OUTPUTS = ("start_logits", "end_logits")


def rebuild_without_checks(model, config):
  """A copy of the QA model, its encoder without input checks."""
  return tflite_convert.rebuild_without_checks(
      model, config, lambda encoder: heads.MobileBertForQuestionAnswering(
          encoder, classifier_dropout=0.0, name=model.name))


def convert_qa(model, config, seq_length: int) -> bytes:
  """The float32 TFLite flatbuffer of a QA model (batch 1)."""
  return tflite_convert.convert_model(
      rebuild_without_checks(model, config), QA_OUTPUTS, "none",
      seq_length=seq_length, batch_size=1)


def verify_qa(flatbuffer: bytes, model, preprocessor,
              questions: Sequence[str], contexts: Sequence[str],
              seq_length: int, max_query_length: int = 64,
              doc_stride: int = 128, **answer_options) -> Dict[str, float]:
  """Checks that LiteRT answers as the in-memory model.

  Args:
    flatbuffer: from `convert_qa`.
    model: the in-memory QA model.
    preprocessor: the project's preprocessor of its vocabulary.
    questions, contexts: the check's examples.
    seq_length, max_query_length, doc_stride: the windows.
    **answer_options: `qa.extract_answers` arguments (n_best_size, ...).

  Returns:
    {"questions", "windows", "max_abs_logit_diff"} (over the context
    pieces).

  Raises:
    RuntimeError: an answer differs.
  """
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, questions, contexts, seq_length=seq_length,
      max_query_length=max_query_length, doc_stride=doc_stride)
  rows = [{k: v[i:i + 1] for k, v in inputs.items()}
          for i in range(len(features))]
  got = tflite_verify.run_tflite(flatbuffer, rows, output_names=QA_OUTPUTS)
  want = model(inputs, training=False)
  want = {k: want[k].numpy() for k in QA_OUTPUTS}
  context = features.context_mask
  diff = max(float(np.abs(got[k][context] - want[k][context]).max())
             for k in QA_OUTPUTS)
  ours = qa.extract_answers(got["start_logits"], got["end_logits"], features,
                            **answer_options)
  theirs = qa.extract_answers(want["start_logits"], want["end_logits"],
                              features, **answer_options)
  for row, (a, b) in enumerate(zip(ours, theirs)):
    if (a.text, a.start_char) != (b.text, b.start_char):
      raise RuntimeError(
          f"The TFLite QA model answers question {row} with {a.text!r}, the "
          f"in-memory model with {b.text!r} (max |logit difference| "
          f"{diff:.3g}); nothing was written.")
  return dict(questions=len(questions), windows=len(features),
              max_abs_logit_diff=diff)
