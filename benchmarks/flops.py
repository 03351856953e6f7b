"""The FLOP count of one MobileBERT encoder pass, from its config.

Multiply-adds count 2; elementwise ops, softmax, normalization and lookups
are not counted. For T = batch * seq tokens, hidden H, block width W
(`true_hidden_size`: the bottleneck width), FFN width I, F stacked FFNs,
L blocks and embedding input width E' (3 * embedding_size with the trigram
input):

  embedding projection  2 T E' H
  per block             2 T (H W [input bottleneck] + H W [key/query
                        bottleneck] + 2 W W [query, key] + H W [value]
                        + 2 seq W [scores, context] + W W [attention output]
                        + 2 F W I [FFNs] + W H [output bottleneck])
  pooler                2 batch H H (with `classifier_activation`)

The per-block line is the English OPT layout (key/query-shared bottleneck);
`encoder_flops` follows the config's other layouts (bottleneck attention, no
bottleneck). The English OPT model does 5.39 GFLOP per 128-token sequence.
`tests/test_benchmark.py` checks the count against the matmuls of a traced
graph.
"""

def encoder_flops(config, batch: int, seq: int) -> int:
  """Matmul FLOPs of one encoder forward pass.

  Args:
    config: a `MobileBertConfig` (only its fields are read).
    batch: int. Sequences per call.
    seq: int. Tokens per sequence.

  Returns:
    int. 2 x the multiply-adds of every matmul: dense layers, attention
    scores and context.
  """
  c = config
  tokens = batch * seq
  hidden, width = c.hidden_size, c.true_hidden_size
  embed = c.embedding_size * (3 if c.trigram_input else 1)
  total = 0
  if embed != hidden or c.trigram_input:
    total += 2 * tokens * embed * hidden  # embedding projection
  block = 0
  query_width = value_width = hidden  # what q, k and v read
  if c.use_bottleneck:
    block += 2 * tokens * hidden * width * 2  # input + output bottlenecks
    if c.use_bottleneck_attention:
      query_width = value_width = width
    elif c.key_query_shared_bottleneck:
      block += 2 * tokens * hidden * width  # key/query-shared bottleneck
      query_width = width
  block += 2 * tokens * width * (2 * query_width + value_width)  # q, k, v
  block += 2 * 2 * batch * seq * seq * width  # scores, context
  block += 2 * tokens * width * width  # attention output
  block += c.num_feedforward_networks * 2 * 2 * tokens * width * (
      c.intermediate_size)
  total += c.num_hidden_layers * block
  if c.classifier_activation:
    total += 2 * batch * hidden * hidden  # tanh pooler
  return total
