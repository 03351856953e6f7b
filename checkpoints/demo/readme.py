"""The README of the demonstration bundle (`checkpoints/demo/README.md`).

`render(info)` turns the numbers of a training run
(`checkpoints.demo.train_demo_model.run`) into the Markdown text that
describes the files: how they were made, the held-out accuracy, example
predictions.
"""

import textwrap

from training.pretraining_data import EVAL_SEED

# Masked sentences shown in the README (and a sanity check for a reader).
EXAMPLE_SENTENCES = (
    "Return a new [MASK] containing the items of the iterable.",
    "If the file does not [MASK], an exception is raised.",
    "Raise ValueError if the value is not [MASK].",
    "The default [MASK] is None.",
    "Return True if the object is an [MASK] of the class.",
    "This function is not thread [MASK].",
)


def _code(token: str) -> str:
  """A token as Markdown inline code (also a backtick)."""
  return f"`` {token} ``" if "`" in token else f"`{token}`"


def render(info: dict) -> str:
  """The README of a trained bundle, from the run's numbers.

  Args:
    info: dict. What `train_demo_model.run` returns: `config` (dict),
      `num_params`, `num_modules`, `python`, `num_lines`, `num_words`,
      `num_pieces`, `num_train_lines`, `num_heldout_lines`, `steps`,
      `batch_size`, `seq_length`, `epochs`, `learning_rate`,
      `warmup_fraction`, `weight_decay`, `seed`, `train_seconds`,
      `machine`, `command`, `final` and `history` (progress records with
      `step`, `train_mlm_loss`, `train_nsp_loss`, `heldout_loss`,
      `heldout_top1`, `heldout_top5`, `heldout_count`), `examples` (per
      `EXAMPLE_SENTENCES` entry, per mask, the top tokens) and `sizes`
      (bytes of each file).

  Returns:
    The Markdown text.
  """
  c = info["config"]
  final = info["final"]

  def para(*parts):  # One wrapped paragraph, then a blank line.
    return textwrap.fill(" ".join(parts), width=79,
                         break_on_hyphens=False) + "\n"

  out = ["# Demonstration MobileBERT (trained on Python docstrings)\n"]
  out.append(para(
      "A small MobileBERT pretrained from scratch by",
      "`checkpoints/demo/train_demo_model.py`, for the exporter's default run",
      "(`python -m export.to_savedmodel` with no flags) and for tests. It is a",
      "real masked-LM, not random weights, but tiny and trained on a tiny",
      "corpus: it knows the language of Python documentation, not much",
      "else. This file is written by the training script",
      "(`checkpoints/demo/readme.py`)."))
  out.append("## Files\n")
  out.append("| file | content | bytes |\n|---|---|---|")
  descriptions = {
      "bert_config.json": "configuration, original `bert_config.json` keys",
      "vocab.txt": "uncased WordPiece vocabulary learned from the corpus",
      "model.ckpt.index": "TF1 checkpoint (index)",
      "model.ckpt.data-00000-of-00001":
          "TF1 checkpoint (float32 weights, no optimizer slots)",
  }
  for name, description in descriptions.items():
    out.append(f"| `{name}` | {description} | {info['sizes'][name]:,} |")
  out.append("")
  out.append(para(
      "The checkpoint has the variable names and shapes of the original",
      "google-research code (`bert/embeddings/...`,",
      "`bert/encoder/layer_N/...` with `FakeLayerNorm`, `cls/predictions/...`,",
      "`cls/seq_relationship/...`), like Google's published MobileBERT",
      "checkpoints, so it goes through the same conversion path:"))
  out.append("```sh\n"
             "python -m checkpoints.convert \\\n"
             "  --bert_config_file=checkpoints/demo/bert_config.json \\\n"
             "  --tf1_checkpoint_path=checkpoints/demo/model.ckpt \\\n"
             "  --tf2_checkpoint_path=build/demo/model\n"
             "```\n")
  out.append("## Model\n")
  out.append(para(
      "The MobileBERT_OPT structure, shrunk:",
      f"{c['num_hidden_layers']} blocks of inter-block width",
      f"{c['hidden_size']} with a bottleneck of {c['intra_bottleneck_size']}",
      f"(key/query-shared), {c['num_attention_heads']} attention heads,",
      f"{c['num_feedforward_networks']} stacked feed-forward networks of",
      f"{c['intermediate_size']}, embeddings of {c['embedding_size']} with",
      "trigram input, NoNorm, ReLU,",
      f"{c['max_position_embeddings']} positions, {c['type_vocab_size']}",
      f"token types, a vocabulary of {c['vocab_size']}:",
      f"**{info['num_params']:,} parameters** (masked-LM and",
      "next-sentence heads included)."))
  out.append("## Data\n")
  out.append(para(
      f"The docstrings of {info['num_modules']} modules of the Python",
      f"{info['python']} standard library (`checkpoints/demo/corpus.py`;",
      "Python Software Foundation licence), split into sentences and code",
      "lines, whitespace-normalized and de-duplicated:",
      f"{info['num_lines']:,} lines, {info['num_words']:,} words,",
      f"{info['num_pieces']:,} word pieces.",
      "Lines whose CRC-32 is divisible by 20 are held out",
      f"({info['num_heldout_lines']:,} lines); the vocabulary",
      f"({c['vocab_size']:,} pieces, uncased, learned with",
      "`mobilebert_tf.vocab.learn_wordpiece_vocab`) and the training",
      f"examples come from the other {info['num_train_lines']:,}.",
      "Docstrings change between Python versions, so another version gives",
      "a slightly different corpus and model."))
  out.append("## Training\n")
  out.append(para(
      f"{info['steps']:,} steps of {info['batch_size']} examples of",
      f"{info['seq_length']} pieces ({info['epochs']} passes over the",
      "training lines): BERT's masked-LM (15% of the pieces, 80% `[MASK]`,",
      "10% random, 10% unchanged, redrawn every pass) plus next-sentence",
      "prediction (`[CLS] A [SEP] B [SEP]`, B the following lines or, half",
      "the time, lines from elsewhere; `training.pretraining_data`); AdamW",
      "from the project's one optimizer path",
      "(`mobilebert_tf.optimization.create_optimizer`) with learning rate",
      f"{info['learning_rate']}, {info['warmup_fraction']:.0%} linear",
      "warm-up then linear decay to 0, weight decay",
      f"{info['weight_decay']} (not on biases and norms), gradient clipping",
      "at norm 1.0, dropout",
      f"{c['hidden_dropout_prob']}; seed {info['seed']}.",
      f"Training took {info['train_seconds'] / 60:.1f} minutes on",
      f"{info['machine']}. Command (from the repository root):"))
  # The tests run every documented command; this one trains for minutes.
  out.append("<!-- doc-test: skip the full training run takes ~13 minutes "
             "(tests/test_demo_model.py runs the script for a few steps) -->\n"
             f"```sh\n{info['command']}\n```\n")
  out.append("## Held-out masked-LM accuracy\n")
  out.append(para(
      f"On the {info['num_heldout_lines']:,} held-out lines, each as",
      "`[CLS] line [SEP]` with 15% of its pieces (at least one) replaced by",
      f"`[MASK]` (seed {EVAL_SEED}; {final['heldout_count']:,} masked",
      "pieces):"))
  out.append("| metric | value |\n|---|---|")
  out.append(f"| top-1 accuracy | {final['heldout_top1']:.1%} |")
  out.append(f"| top-5 accuracy | {final['heldout_top5']:.1%} |")
  out.append(f"| cross-entropy per masked piece | "
             f"{final['heldout_loss']:.3f} nats |")
  out.append("")
  out.append("Progress:\n")
  out.append("| step | train MLM loss | train NSP loss | held-out MLM loss "
             "| top-1 | top-5 |\n|---|---|---|---|---|---|")
  for r in info["history"]:
    out.append(f"| {r['step']} | {r['train_mlm_loss']:.3f} | "
               f"{r['train_nsp_loss']:.3f} | {r['heldout_loss']:.3f} | "
               f"{r['heldout_top1']:.1%} | {r['heldout_top5']:.1%} |")
  out.append("")
  out.append("## Example predictions (top 5, best first)\n")
  for sentence, predictions in zip(EXAMPLE_SENTENCES, info["examples"]):
    shown = "; ".join(", ".join(_code(t) for t in p) for p in predictions)
    out.append(f"- {sentence} → {shown}")
  out.append("")
  out.append("## Reproducing\n")
  out.append(para(
      "Run the command above (add `--overwrite` to replace these files).",
      "Data, initialization and masking are seeded; on another machine or",
      "TensorFlow build the numbers can differ slightly, as float32",
      "reductions depend on the CPU and the thread count."))
  return "\n".join(out)
