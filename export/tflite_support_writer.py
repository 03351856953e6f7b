"""TFLite Metadata by tflite-support's writers: run in its own interpreter.

tflite-support (the TFLite Task Library and its metadata writers) pins
`protobuf<4`, which TensorFlow 2.20 cannot share a venv with, so this module
runs under the interpreter of `.venv-tflite-support` (`make
.venv-tflite-support/.done`) and imports nothing of the project's that needs
TensorFlow. `export.tflite_metadata` is its front end in the project's venv:
it checks the model and the flags, runs this module in a subprocess and
writes the result.

`text_classifier` metadata is what MediaPipe Tasks' `TextClassifier` (and
the Task Library's `BertNLClassifier`) reads: the same tokenizer unit and
input names, and the one output `probabilities` with the label file packed
in as its axis labels, by tflite-support's `bert_nl_classifier` writer.

`text_embedder` metadata is what MediaPipe Tasks' `TextEmbedder` reads: the
tokenizer unit and input names, and the one output `pooled_output` as the
feature vector `embedding`.

`question_answerer` metadata is what the Task Library's
`BertQuestionAnswerer` reads: a BERT tokenizer process unit with the
vocabulary packed into the model, the input tensors named `ids`, `mask`,
`segment_ids` and the outputs `start_logits`, `end_logits`. tflite-support
has no question-answerer writer of its own; this composes its generic
`MetadataWriter` with the same `metadata_info` pieces its
`bert_nl_classifier` writer uses.

Usage (what the front end runs):

    .venv-tflite-support/bin/python -m export.tflite_support_writer \\
      question_answerer IN.tflite vocab.txt OUT.tflite
    .venv-tflite-support/bin/python -m export.tflite_support_writer \
      text_classifier IN.tflite vocab.txt OUT.tflite labels.txt

prints the metadata as JSON on stdout.
"""

import sys

from tensorflow_lite_support.metadata import schema_py_generated as schema_fb
from tensorflow_lite_support.metadata.python import metadata
from tensorflow_lite_support.metadata.python.metadata_writers import bert_nl_classifier
from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info
from tensorflow_lite_support.metadata.python.metadata_writers import metadata_writer
from tensorflow_lite_support.metadata.python.metadata_writers import writer_utils

# Each task's command line length (with the program and the task).
_ARGUMENTS = {"question_answerer": 5, "text_classifier": 6,
              "text_embedder": 5}
TASKS = tuple(_ARGUMENTS)


def signature_tensor_names(model_buffer, key="serving_default"):
  """`({input key: tensor name}, {output key: tensor name})` of a signature.

  The writers match metadata to tensors by tensor name, and the converter's
  tensor names (`serving_default_input_mask:0`, `StatefulPartitionedCall:1`)
  do not say which output is which: the signature does.
  """
  model = schema_fb.Model.GetRootAsModel(model_buffer, 0)
  subgraph = model.Subgraphs(0)
  for i in range(model.SignatureDefsLength()):
    signature = model.SignatureDefs(i)
    if signature.SignatureKey().decode() != key:
      continue

    def names(count, get):
      return {get(j).Name().decode():
              subgraph.Tensors(get(j).TensorIndex()).Name().decode()
              for j in range(count)}

    return (names(signature.InputsLength(), signature.Inputs),
            names(signature.OutputsLength(), signature.Outputs))
  raise ValueError(f"the model has no {key!r} signature")


def question_answerer_metadata(model_buffer: bytes, vocab_file: str) -> bytes:
  """The model with `BertQuestionAnswerer`'s metadata and the vocabulary."""
  model_buffer = bytearray(model_buffer)
  inputs, outputs = signature_tensor_names(model_buffer)
  input_md = metadata_info.BertInputTensorsMd(
      model_buffer, ids_name=inputs["input_word_ids"],
      mask_name=inputs["input_mask"], segment_name=inputs["input_type_ids"],
      tokenizer_md=metadata_info.BertTokenizerMd(vocab_file))
  output_md = [
      metadata_info.TensorMd(
          name="start_logits", tensor_name=outputs["start_logits"],
          description="Logit of each word piece being the answer's start."),
      metadata_info.TensorMd(
          name="end_logits", tensor_name=outputs["end_logits"],
          description="Logit of each word piece being the answer's end."),
  ]
  # The writer wants the output metadata in the model's tensor order.
  output_md = metadata_writer._order_tensor_metadata(  # pylint: disable=protected-access
      output_md, writer_utils.get_output_tensor_names(model_buffer))
  general_md = metadata_info.GeneralMd(
      name="MobileBERT question answerer",
      description="Extractive question answering: start and end logits "
      "over [CLS] question [SEP] context [SEP].",
      version="1", author="mobilebert_tf")
  writer = metadata_writer.MetadataWriter.create_from_metadata(
      model_buffer,
      model_metadata=general_md.create_metadata(),
      # (sic: the library's spelling)
      input_metadata=input_md.create_input_tesnor_metadata(),
      output_metadata=[m.create_metadata() for m in output_md],
      associated_files=input_md.get_tokenizer_associated_files(),
      input_process_units=input_md.create_input_process_unit_metadata())
  return bytes(writer.populate())


def text_classifier_metadata(model_buffer: bytes, vocab_file: str,
                             labels_file: str) -> bytes:
  """The model with `TextClassifier`'s metadata, vocabulary and labels."""
  model_buffer = bytearray(model_buffer)
  inputs, outputs = signature_tensor_names(model_buffer)
  if list(outputs) != ["probabilities"]:
    raise ValueError(f"a text classifier has one output, probabilities; "
                     f"this model has {sorted(outputs)}")
  writer = bert_nl_classifier.MetadataWriter.create_for_inference(
      model_buffer, metadata_info.BertTokenizerMd(vocab_file), [labels_file],
      ids_name=inputs["input_word_ids"], mask_name=inputs["input_mask"],
      segment_name=inputs["input_type_ids"])
  return bytes(writer.populate())


def text_embedder_metadata(model_buffer: bytes, vocab_file: str) -> bytes:
  """The model with `TextEmbedder`'s metadata and the vocabulary."""
  model_buffer = bytearray(model_buffer)
  inputs, outputs = signature_tensor_names(model_buffer)
  if list(outputs) != ["pooled_output"]:
    raise ValueError(f"a text embedder has one output, pooled_output; this "
                     f"model has {sorted(outputs)}")
  input_md = metadata_info.BertInputTensorsMd(
      model_buffer, ids_name=inputs["input_word_ids"],
      mask_name=inputs["input_mask"], segment_name=inputs["input_type_ids"],
      tokenizer_md=metadata_info.BertTokenizerMd(vocab_file))
  output_md = metadata_info.TensorMd(
      name="embedding", tensor_name=outputs["pooled_output"],
      description="The encoder's pooled output ([CLS] vector) of the text.")
  general_md = metadata_info.GeneralMd(
      name="MobileBERT text embedder",
      description="Embeds a text as the encoder's pooled output.",
      version="1", author="mobilebert_tf")
  writer = metadata_writer.MetadataWriter.create_from_metadata(
      model_buffer,
      model_metadata=general_md.create_metadata(),
      input_metadata=input_md.create_input_tesnor_metadata(),  # (sic)
      output_metadata=[output_md.create_metadata()],
      associated_files=input_md.get_tokenizer_associated_files(),
      input_process_units=input_md.create_input_process_unit_metadata())
  return bytes(writer.populate())


def main(argv) -> int:
  if len(argv) < 2 or _ARGUMENTS.get(argv[1]) != len(argv):
    print(f"usage: {argv[0]} (question_answerer|text_embedder) IN.tflite "
          "VOCAB OUT.tflite | text_classifier IN.tflite VOCAB OUT.tflite "
          "LABELS",
          file=sys.stderr)
    return 2
  task, source, vocab_file, target = argv[1:5]
  with open(source, "rb") as f:
    model = f.read()
  if task == "text_classifier":
    written = text_classifier_metadata(model, vocab_file, argv[5])
  elif task == "text_embedder":
    written = text_embedder_metadata(model, vocab_file)
  else:
    written = question_answerer_metadata(model, vocab_file)
  with open(target, "wb") as f:
    f.write(written)
  print(metadata.MetadataDisplayer.with_model_buffer(
      written).get_metadata_json())
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
