"""The question-answering serving SavedModel: strings in, answers out.

`serving_default(question, context)` (string `[batch]` each) returns
`answer` (string), `start_char` and `end_char` (int64 character offsets of
the answer in its context, -1 for none) and `score` (float32, the answer's
`start_logit + end_logit`). The whole of `mobilebert_tf.qa`'s pipeline runs
inside: tokenization, windows `doc_stride` pieces apart over a context of any
length, the QA model on every window, the max-context rule and the n-best
pairing of start and end logits, and (SQuAD 2.0, with a
`null_score_diff_threshold`) the null answer "". It answers what
`qa.prepare_qa_inputs` + `qa.extract_answers` answer with the same model:
`export_qa` checks that on the examples it is given before it renames the
export into place.

Consumers import `tensorflow_text` first (TF Text ops: the tokenizer); TF
Serving needs a build that links them, as the official model server does.

Example:

>>> export_qa(model, "vocab.txt", True, "OUT", questions, contexts)
>>> served = tf.saved_model.load("OUT").signatures["serving_default"]
>>> served(question=tf.constant(["who?"]), context=tf.constant(["ada."]))
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from mobilebert_tf import files
from mobilebert_tf import preprocessing
from mobilebert_tf import qa

SIGNATURE_INPUTS = ("question", "context")
SIGNATURE_OUTPUTS = ("answer", "start_char", "end_char", "score")


class QAServingModule(tf.Module):
  """The exported object: the QA model, the tokenizers and the signature.

  Args:
    model: a `MobileBertForQuestionAnswering` (inputs `[windows, seq]`).
    vocab_file: str. Its WordPiece vocabulary.
    do_lower_case: bool.
    seq_length, max_query_length, doc_stride: the windows, as
      `qa.prepare_qa_inputs`.
    n_best_size, max_answer_length, null_score_diff_threshold: the answer
      rules, as `qa.extract_answers` (threshold None: SQuAD 1.1).
  """

  def __init__(self, model, vocab_file: str, do_lower_case: bool,
               seq_length: int = 384, max_query_length: int = 64,
               doc_stride: int = 128, n_best_size: int = 20,
               max_answer_length: int = 30,
               null_score_diff_threshold: Optional[float] = None):
    super().__init__(name="question_answering")
    self.model = model
    self.tokenize = preprocessing.BertWordpieceTokenizer(
        vocab_file=vocab_file, lower_case=do_lower_case)
    self.tokenize_with_offsets = preprocessing.BertWordpieceTokenizer(
        vocab_file=vocab_file, lower_case=do_lower_case,
        tokenize_with_offsets=True)
    special = self.tokenize.get_special_tokens_dict()
    self._cls = special["start_of_sequence_id"]
    self._sep = special["end_of_segment_id"]
    self._pad = special["padding_id"]
    self.seq_length = seq_length
    self.max_query_length = max_query_length
    self.doc_stride = doc_stride
    self.n_best_size = min(n_best_size, seq_length)
    self.max_answer_length = max_answer_length
    self.null_score_diff_threshold = null_score_diff_threshold
    self.serve = tf.function(self._serve, input_signature=[
        tf.TensorSpec([None], tf.string, name=name)
        for name in SIGNATURE_INPUTS])

  def _serve(self, question, context):
    return tf.map_fn(
        lambda pair: self._answer(pair[0], pair[1]), (question, context),
        fn_output_signature=dict(
            answer=tf.string, start_char=tf.int64, end_char=tf.int64,
            score=tf.float32))

  def _windows(self, question, context):
    """The packed windows of one pair, and their context pieces."""
    query = self.tokenize(question[None]).flat_values[:self.max_query_length]
    pieces, starts, limits = self.tokenize_with_offsets(context[None])
    pieces = pieces.flat_values
    num = tf.size(pieces)
    query_length = tf.size(query)
    room = self.seq_length - query_length - 3
    step = tf.minimum(room, self.doc_stride)
    count = tf.maximum(0, (num - room + step - 1) // step) + 1
    window_start = tf.range(count) * step  # [W]
    window_length = tf.maximum(tf.minimum(room, num - window_start), 0)
    first = query_length + 2
    position = tf.range(self.seq_length)[None, :]  # [1, seq]
    piece = window_start[:, None] + position - first  # [W, seq]
    in_context = (position >= first) & (
        position < first + window_length[:, None])
    padded = tf.concat([pieces, [self._pad]], 0)  # Gathers on no pieces.
    context_ids = tf.gather(padded, tf.clip_by_value(piece, 0, num))
    query_ids = tf.gather(tf.concat([query, [self._pad]], 0),
                          tf.clip_by_value(position - 1, 0, query_length))
    last = first + window_length[:, None]  # The final [SEP].
    ids = tf.where(in_context, context_ids, self._pad)
    ids = tf.where((position >= 1) & (position < first - 1), query_ids, ids)
    ids = tf.where(position == 0, self._cls, ids)
    ids = tf.where((position == first - 1) | (position == last), self._sep,
                   ids)
    mask = tf.cast(position <= last, tf.int32)
    types = tf.cast((position >= first) & (position <= last), tf.int32)
    inputs = dict(input_word_ids=ids, input_mask=mask, input_type_ids=types)
    windows = dict(start=window_start, length=window_length, piece=piece,
                   in_context=in_context)
    offsets = (starts.flat_values, limits.flat_values)
    return inputs, windows, offsets

  def _max_context(self, windows):
    """True where a context piece has its max context in this window."""
    start = tf.cast(windows["start"], tf.float64)  # [W]
    length = tf.cast(windows["length"], tf.float64)
    piece = tf.cast(windows["piece"], tf.float64)[:, :, None]  # [W, seq, 1]
    left = piece - start[None, None, :]  # In each other window v.
    right = start[None, None, :] + length[None, None, :] - 1 - piece
    score = tf.minimum(left, right) + qa.WINDOW_LENGTH_WEIGHT * length
    score = tf.where((left >= 0) & (right >= 0), score,
                     tf.constant(-np.inf, tf.float64))  # [W, seq, V]
    best = tf.reduce_max(score, -1, keepdims=True)
    # The first window with the best score, as the scripts' strict ">".
    count = tf.shape(start)[0]
    first_best = tf.reduce_min(tf.where(
        score == best, tf.range(count)[None, None, :], count), -1)
    return windows["in_context"] & tf.equal(first_best,
                                            tf.range(count)[:, None])

  def _answer(self, question, context):
    inputs, windows, (byte_starts, byte_limits) = self._windows(question,
                                                                context)
    outputs = self.model(inputs, training=False)
    start_logits = tf.cast(outputs["start_logits"], tf.float64)  # [W, seq]
    end_logits = tf.cast(outputs["end_logits"], tf.float64)
    allowed_start = self._max_context(windows)
    in_context = windows["in_context"]
    top_start_logits, top_starts = tf.math.top_k(start_logits,
                                                 self.n_best_size)
    top_end_logits, top_ends = tf.math.top_k(end_logits, self.n_best_size)
    s, e = top_starts[:, :, None], top_ends[:, None, :]  # [W, n, 1], [W, 1, n]
    valid = (tf.gather(allowed_start, top_starts, batch_dims=1)[:, :, None] &
             tf.gather(in_context, top_ends, batch_dims=1)[:, None, :] &
             (e >= s) & (e - s + 1 <= self.max_answer_length))
    score = top_start_logits[:, :, None] + top_end_logits[:, None, :]
    score = tf.reshape(tf.where(valid, score, -np.inf), [-1])  # (w, i, k)
    has_span = tf.reduce_any(valid)
    best = tf.reduce_max(score)
    first = tf.cast(tf.reduce_min(tf.where(
        score == best, tf.range(tf.size(score)), tf.size(score))), tf.int32)
    n = self.n_best_size
    window, i, k = first // (n * n), (first // n) % n, first % n
    piece_start = tf.gather(windows["piece"][window], top_starts[window, i])
    piece_end = tf.gather(windows["piece"][window], top_ends[window, k])
    no_answer = tf.logical_not(has_span)
    null_score = tf.reduce_min(start_logits[:, 0] + end_logits[:, 0])
    if self.null_score_diff_threshold is not None:
      no_answer |= null_score - best > self.null_score_diff_threshold
    safe = lambda values, index: tf.gather(
        tf.concat([values, tf.zeros([1], values.dtype)], 0),
        tf.where(has_span, index, tf.size(values)))
    begin = safe(byte_starts, piece_start)
    limit = safe(byte_limits, piece_end)
    text = tf.strings.substr(context, begin, limit - begin)
    start_char = tf.strings.length(
        tf.strings.substr(context, tf.constant(0, begin.dtype), begin),
                                   unit="UTF8_CHAR")
    end_char = start_char + tf.strings.length(text, unit="UTF8_CHAR")
    none = tf.constant(-1, tf.int64)
    return dict(
        answer=tf.where(no_answer, "", text),
        start_char=tf.where(no_answer, none, tf.cast(start_char, tf.int64)),
        end_char=tf.where(no_answer, none, tf.cast(end_char, tf.int64)),
        score=tf.cast(tf.where(has_span, best, null_score), tf.float32))


def answers_in_memory(module: QAServingModule, preprocessor,
                      questions: Sequence[str], contexts: Sequence[str]):
  """`qa.prepare_qa_inputs` + the model + `qa.extract_answers`, with the
  module's settings: what the export must answer."""
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, questions, contexts, seq_length=module.seq_length,
      max_query_length=module.max_query_length, doc_stride=module.doc_stride)
  outputs = module.model(inputs, training=False)
  return qa.extract_answers(
      outputs["start_logits"].numpy(), outputs["end_logits"].numpy(),
      features, n_best_size=module.n_best_size,
      max_answer_length=module.max_answer_length,
      null_score_diff_threshold=module.null_score_diff_threshold)


def export_qa(module: QAServingModule, preprocessor, export_dir: str,
              questions: Sequence[str], contexts: Sequence[str],
              overwrite: bool = False) -> str:
  """Saves `module`, reloads it and checks it answers as in memory.

  Args:
    module: the `QAServingModule`.
    preprocessor: the project's preprocessor of the same vocabulary (for the
      in-memory answers).
    export_dir: str. Written beside, renamed into place after the check.
    questions, contexts: the check's examples (a few long contexts are
      best).
    overwrite: bool. Replace an existing `export_dir`.

  Returns:
    The absolute path of the export.

  Raises:
    FileExistsError: `export_dir` exists and `overwrite` is False.
    RuntimeError: the reloaded export answers otherwise (nothing written).
  """
  import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import
  expected = answers_in_memory(module, preprocessor, questions, contexts)
  with files.staged_directory(export_dir, overwrite) as tmp:
    tf.saved_model.save(module, tmp, signatures={
        "serving_default": module.serve.get_concrete_function()})
    served = tf.saved_model.load(tmp).signatures["serving_default"]
    got = served(question=tf.constant(list(questions)),
                 context=tf.constant(list(contexts)))
    texts = [t.decode("utf-8") for t in got["answer"].numpy()]
    for row, answer in enumerate(expected):
      found = (texts[row], int(got["start_char"][row]))
      if found != (answer.text, answer.start_char) or not np.isclose(
          float(got["score"][row]), answer.score, rtol=1e-5, atol=1e-5):
        raise RuntimeError(
            f"The exported QA model answers question {row} with {found!r} "
            f"(score {float(got['score'][row]):.6g}), the in-memory model "
            f"with {(answer.text, answer.start_char)!r} (score "
            f"{answer.score:.6g}); nothing was written.")
  return files.check_target(export_dir, overwrite=True)
