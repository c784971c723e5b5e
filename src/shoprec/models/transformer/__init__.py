"""Transformer sequence recommender (SASRec / HSTU family) that reads item content.

Read in this order: config.py (the saved parameters) -> content.py (item attributes and text) ->
network.py (the network and its loss, shapes in comments) -> data.py (training and query batches) ->
optim.py (AdamW, the learning-rate schedule, the checkpoint fingerprint) -> model.py (the Recommender:
fit through shoprec.models.training's one trainer, artifacts) -> serving.py (scoring an ensemble, validation
ranks). Run-time options (device, threads, checkpoints, time limit, progress, text cache) are
shoprec.models.training.TrainOptions, given in the same config dicts.

- Item representation (one table, used for input tokens AND output scores, i.e. tied):
      item(i) = id(i) * trained(i) * keep(i)  +  mean(attribute embeddings of i)  +  W_text @ text(i)
                [ + W_title @ name_text(i) ]  [ + W_n @ vector_n(i) for each of the shop's named vectors ]
  `trained(i)` is 0 for items never seen in training, so a cold item is scored through its content
  alone; `keep(i)` drops ids at random while training (`id_dropout`) so content learns to stand alone.
  Attributes are integer ids (ItemCatalog.attribute_ids, e.g. S3-Rec brand/category ids) plus brand and
  category-path tokens; text vectors come from shoprec.preprocess.text (MiniLM, cached per item): of the whole
  text (title | brand | category | description) and, when the catalog has descriptions, of the name alone
  (title | brand | category: `title_view`), as a long description drowns the title in one sentence vector.
- Input token = item * sqrt(d) + position (learned, counted from the newest event; or rotary) + event type
  + log2 time gap. Options: attention scores also from content alone (`content_attention`, DIF-SR style),
  an auxiliary next-item-attributes loss (`attribute_loss`).
- Pre-norm causal blocks with torch's scaled_dot_product_attention (flash kernels on GPU).
- Data-adaptive sizes: the context (`max_len` "auto": 90% of the users' whole histories, 50..200 events) and
  the schedule's length (`epochs` "auto": about `schedule_steps` optimizer steps, 20..100 epochs) are resolved
  from the training data at fit and saved with the model (its meta: `max_len`, `epochs`).
- Sequences are right-padded to the longest one in their batch, so causal attention never sees padding
  and needs no mask; the loss is computed on real positions only. Batches group similar lengths but
  hold about the same number of targets each (many short sequences or a few long ones): averaged per
  batch, every target then weighs the same, as with random batches (grouping a fixed number of
  sequences instead over-weights short histories and cost ~15% NDCG on Beauty).
- Loss: full softmax cross-entropy over the catalog (default; optionally with the items already in the
  history masked out, as the strict evaluation protocol excludes them, and the next few items as soft
  targets), or
  sampled softmax (in-batch + log-uniform negatives with logQ correction) for catalogs too big for it.
- AdamW, linear warm-up then cosine decay; early stopping on validation NDCG@10 (best weights kept);
  resumable checkpoints; `torchrun --nproc_per_node N` runs DistributedDataParallel (gloo / nccl).
- Fine-tuning transfer (`start_from(other model)`): the network starts from another platform's model
  (`transfer_weights`: everything but the item ids, which are per platform; item text is the shared space);
  the copied weights may learn at a share of the rate (`copied_lr_ratio`; 0 freezes them).
- Scores: the members' mean h @ item table, plus `text_affinity` times the raw text cosine of each candidate
  among the `text_neighbours` nearest texts of the query's newest items (decayed by recency; minus the last
  neighbour's cosine), plus `transition_affinity` times the share of the training events after the query's
  newest items that were of each candidate (a first-order Markov term), minus the popularity correction. Both
  extra terms are sparse (transitions.py; `history_scores`, the part beside the inner-product view). Both
  weights ("auto" by default) are chosen together on validation after training and kept only with a clear gain
  (AFFINITY_MIN_Z; null: the best as it is, pre-training's default); a model carried to a new shop takes its start
  model's text weight, at least CARRIED_TEXT_AFFINITY, and has no transitions.
"""

from __future__ import annotations

from shoprec.models.seq_ensemble import shared_prefixes
from shoprec.models.training import TrainOptions
from shoprec.models.transformer.config import (
    N_EVENT_TYPES,
    N_GAP_BUCKETS,
    NETWORK_PARAMS,
    POPULARITY_GRID,
    TransformerConfig,
)
from shoprec.models.transformer.content import ItemContent, build_content
from shoprec.models.transformer.data import (
    Sequences,
    build_sequences,
    gap_buckets,
    length_batches,
    make_batch,
    query_arrays,
    training_windows,
)
from shoprec.models.transformer.model import Transformer
from shoprec.models.transformer.network import Block, SeqNet, dropout, rotary_tables, transfer_weights
from shoprec.models.transformer.optim import cpu_has_bf16
from shoprec.models.transformer.serving import Ensemble, Member

__all__ = [
    "NETWORK_PARAMS",
    "N_EVENT_TYPES",
    "N_GAP_BUCKETS",
    "POPULARITY_GRID",
    "Block",
    "Ensemble",
    "ItemContent",
    "Member",
    "SeqNet",
    "Sequences",
    "TrainOptions",
    "Transformer",
    "TransformerConfig",
    "build_content",
    "build_sequences",
    "cpu_has_bf16",
    "dropout",
    "gap_buckets",
    "length_batches",
    "make_batch",
    "query_arrays",
    "rotary_tables",
    "shared_prefixes",
    "training_windows",
    "transfer_weights",
]
