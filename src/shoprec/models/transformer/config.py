"""The transformer's saved configuration: what the network is and how it learns (run-time options such as
the device live in shoprec.models.training.TrainOptions and are never saved with the model)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from shoprec.errors import ConfigError
from shoprec.types import EventType

N_EVENT_TYPES = len(EventType) + 1  # code + 1; 0 = padding
N_GAP_BUCKETS = 32  # 0: unknown / no gap; b >= 1: gap in [2^(b-1), 2^b) seconds
POPULARITY_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8)
# text_affinity=None: the weights tried on the validation targets (the network's scores are logits of a few units)
TEXT_AFFINITY_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
# text_affinity="auto" on a model carried to a shop it never saw (zero-shot): at least this weight, whatever its
# source chose. The source's weight balances the text against a network trained on the source's own items; on a new
# shop's items the network is out of its domain and the sentence encoder's similarity is what carries over: calibrated
# on the new shop's validation targets (Beauty <-> Scientific, 22 samples of users), the network alone scored 1-33%
# of the best weight, and 64 came within 4% of the best in every sample (the best worst case of the grid)
CARRIED_TEXT_AFFINITY = 64.0
# transition_affinity=None: the weights tried (jointly with the text affinity's when both are null; P(i | h) <= 1)
TRANSITION_AFFINITY_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# "auto" affinities: the best pair is taken only when its validation gain over the grid's first pair (0, 0) is at
# least this many standard errors of the per-query difference (one-sided p < 0.023); else the first pair (null
# affinities take the best pair as it is: pre-training's, whose weight a carried model keeps, at least its floor)
AFFINITY_MIN_Z = 2.0
AUTO_EPOCHS_MIN, AUTO_EPOCHS_MAX = 20, 100  # the fewest and most epochs epochs="auto" gives
# max_len="auto": the AUTO_MAX_LEN_QUANTILE quantile of the training users' history lengths, rounded up to a
# multiple of AUTO_MAX_LEN_STEP, within [AUTO_MAX_LEN_MIN, AUTO_MAX_LEN_MAX] (auto_max_len)
AUTO_MAX_LEN_MIN, AUTO_MAX_LEN_MAX, AUTO_MAX_LEN_STEP, AUTO_MAX_LEN_QUANTILE = 50, 200, 50, 0.9
# parameters that fix the network's weights and their shapes: a fine-tuned model inherits them from its source
NETWORK_PARAMS = ("embedding_size", "n_blocks", "n_heads", "ffn_size", "max_len", "positions", "use_attributes",
                  "use_text", "text_encoder", "content_attention", "use_event_types", "use_time_gaps", "use_vectors")


@dataclass(frozen=True)
class TransformerConfig:
    # network
    embedding_size: int = 128  # 128 (and no seen mask in the loss): the better Beauty validation NDCG@10
    n_blocks: int = 2
    n_heads: int = 2
    ffn_size: int = 256
    # events of history read per query (the newest ones); "auto": auto_max_len of the training histories, i.e.
    # long enough to hold 90% of the users' whole histories (Beauty, Scientific: 50; Online Retail: 200, where a
    # longer context raised validation NDCG@10 and 50 beat 200 on the short-history shops)
    max_len: int | Literal["auto"] = "auto"
    positions: Literal["reverse", "rotary"] = "reverse"  # learned embedding of the distance to the newest
    # event, or rotary embeddings in attention (relative distances: each position sees itself as the newest)
    dropout: float = 0.5
    attention_dropout: float = 0.2
    stochastic_depth: float = 0.0  # probability of skipping a block's residual branch while training
    # item content
    use_attributes: bool = True  # attribute ids, brand and category tokens
    use_text: bool = True  # item text vectors (when the catalog has text)
    text_encoder: str = "auto"  # auto | minilm | hashing (shoprec.preprocess.text)
    use_vectors: bool = True  # the shop's own named item vectors (image, LLM...): each name projected into the item
    # a second text vector, of the item's name alone (title | brand | category), with its own projection, when the
    # catalog has descriptions: a sentence vector of a long description says little of the title it starts with
    title_view: bool = True
    text_whiten: bool = False  # ZCA-whiten the catalog's text vectors before the projection (content.whiten)
    id_dropout: float = 0.1  # drop item ids while training so content alone can represent an item
    item_ids: bool = True  # False: items are their content alone (pre-training across shops: ids are per shop)
    content_attention: bool = False  # attention scores also from the items' content alone (decoupled, DIF-SR)
    attribute_loss: float = 0.0  # weight of an auxiliary loss: predict the next item's attributes
    use_event_types: bool = True
    use_time_gaps: bool = True
    # objective
    loss: Literal["full", "sampled"] = "full"
    n_negatives: int = 1024  # log-uniform negatives per batch for loss="sampled"
    label_smoothing: float = 0.0
    future_targets: int = 1  # > 1: each position also learns the following items (full loss only) ...
    future_decay: float = 0.5  # ... the k-th next item weighted future_decay ** (k - 1)
    exclude_seen_in_loss: bool = False  # True: mask history items out of the softmax (as the strict protocol does)
    # scores -= popularity_correction * log(1 + training count of the item): the last items of a history
    # (validation / test targets) are rarer than training targets on average. None: chosen on the
    # validation targets among POPULARITY_GRID (0 without validation).
    popularity_correction: float | None = None
    # scores += text_affinity * (recency-weighted sum of the unit text vectors of the query's newest items) . (the
    # item's unit text vector): the raw sentence-encoder similarity to what the user just saw, which a shop the
    # model never saw shares with every shop. "auto" and None: chosen on the validation targets among
    # TEXT_AFFINITY_GRID after training (0 without validation), except that a carried (zero-shot) model takes its
    # start model's weight, at least CARRIED_TEXT_AFFINITY, with "auto" and calibrates it on the new shop's
    # validation targets with None
    text_affinity: float | Literal["auto"] | None = "auto"
    # > 0: the text affinity reads, for each of the query's newest items, its text_neighbours most similar items
    # only, as their similarity minus that of the last of them (a sparse term beside the network, like the
    # transitions: serving's inner-product view keeps the members' columns alone); 0: the similarity to every item
    # (dense: the view carries the 384 text columns). 200 was on par with the dense term on validation (Beauty,
    # Scientific) at 14% less serving CPU per list (docs/benchmarks.md, "What the text affinity costs in serving")
    text_neighbours: int = 200
    # scores += transition_affinity * sum_k 0.5 ** k P(item | the query's k-th newest item), P the share of the
    # training events following an event of that item that were of this one (a first-order Markov term beside
    # the network: shoprec.models.transformer.transitions). "auto" and None: chosen on the validation targets among
    # TRANSITION_AFFINITY_GRID, jointly with the text affinity when that is chosen too (0 without validation)
    transition_affinity: float | Literal["auto"] | None = "auto"
    # optimisation
    # the length of the cosine schedule in epochs; "auto": auto_epochs(schedule_steps, steps per epoch), i.e. the
    # schedule spans about schedule_steps optimizer steps whatever the data's size (Beauty: 176 steps an epoch ->
    # 20 epochs, where a 20-epoch schedule beat 30 and 60 on validation; Online Retail: 66 -> 54)
    epochs: int | Literal["auto"] = "auto"
    schedule_steps: int = 3500  # epochs="auto": optimizer steps the schedule spans (batches of batch_size)
    batch_size: int = 128  # sequences per batch on average (per process under torchrun); see length_batches
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    warmup_epochs: float = 1.0
    # fine-tuning (a start model: --init-from, transfer): the learning rate of the weights copied from it, as a share
    # of the schedule's (the fresh ones, e.g. the shop's item ids, get the whole); 0 freezes them
    copied_lr_ratio: float = 1.0
    min_lr_ratio: float = 0.1  # cosine decay ends at learning_rate * min_lr_ratio at `epochs`
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (e.g. 0.999)
    eval_every: int = 2  # epochs between validation runs
    patience: int = 2  # validation runs without improvement before stopping; with epochs="auto" it counts for a
    # 20-epoch schedule and grows with it (resolved_patience: Online Retail's 54 epochs -> 6)
    ensemble: int = 2  # members trained with seeds seed, seed + 1, ...; scores are their mean (2: +0.003 test
    # NDCG@10 on Beauty over one member, at twice the training and scoring cost; 1 for the fastest serving)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU; on a CPU with native
    # bf16 (AMX / AVX512-BF16) only the catalog-softmax products in bf16; fp32 otherwise

    def __post_init__(self) -> None:
        for name in ("epochs", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (value == "auto" or isinstance(value, int)):
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be a positive integer or "
                                  f"\"auto\", got {value!r}")
        positive = ("embedding_size", "n_blocks", "n_heads", "ffn_size", "batch_size", "schedule_steps",
                    "eval_every", "n_negatives", "future_targets", "ensemble",
                    *(name for name in ("epochs", "max_len") if getattr(self, name) != "auto"))
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be positive, "
                                  f"got {getattr(self, name)}")
        for name in ("dropout", "attention_dropout", "stochastic_depth", "id_dropout", "label_smoothing", "ema"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be in [0, 1), "
                                  f"got {getattr(self, name)}")
        head = self.embedding_size // self.n_heads
        if self.embedding_size % self.n_heads or (self.positions == "rotary" and head % 2):
            raise ConfigError(f"embedding_size {self.embedding_size} must be divisible by n_heads {self.n_heads}"
                              " (into an even head size for rotary positions)")
        if self.learning_rate <= 0:
            raise ConfigError(f"parameter 'learning_rate' of model 'transformer' must be > 0, got {self.learning_rate}")
        if not 0.0 < self.future_decay <= 1.0:
            raise ConfigError(f"parameter 'future_decay' of model 'transformer' must be in (0, 1], "
                              f"got {self.future_decay}")
        for name in ("text_affinity", "transition_affinity"):
            value = getattr(self, name)
            if not (value is None or value == "auto" or (isinstance(value, int | float) and not isinstance(value, bool)
                                                          and value >= 0)):
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be >= 0, \"auto\" or null, "
                                  f"got {value!r}")
        if self.popularity_correction is not None and self.popularity_correction < 0:
            raise ConfigError("parameter 'popularity_correction' of model 'transformer' must be >= 0 or null, "
                              f"got {self.popularity_correction}")
        for name in ("weight_decay", "warmup_epochs", "patience", "attribute_loss", "min_lr_ratio", "copied_lr_ratio",
                     "text_neighbours"):
            if getattr(self, name) < 0:
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be >= 0, got {getattr(self, name)}")

    def fixed_weight(self, name: str) -> float | None:
        """The weight `name` (text_affinity, transition_affinity) when it is a number, None when it is chosen
        ("auto" or null)."""
        value = getattr(self, name)
        return None if value is None or value == "auto" else float(value)

    def resolved_epochs(self, n_windows: int, cap: int = 0) -> int:
        """The schedule's length in epochs for `n_windows` training windows: `epochs` when it is a number, else
        auto_epochs over the steps of one process (so that torchrun trains as many epochs as one process), at
        most `cap` (> 0: the deployment's limit, TrainOptions.max_epochs)."""
        if self.epochs != "auto":
            return int(self.epochs)
        epochs = auto_epochs(self.schedule_steps, math.ceil(n_windows / self.batch_size))
        return min(epochs, cap) if cap > 0 else epochs

    def resolved_max_len(self, history_lengths: np.ndarray, cap: int = 0) -> int:
        """The events of history read per query: `max_len` when it is a number, else auto_max_len of the training
        users' history lengths, at most `cap` (> 0: the deployment's limit, TrainOptions.max_context)."""
        if self.max_len != "auto":
            return int(self.max_len)
        max_len = auto_max_len(history_lengths)
        return min(max_len, cap) if cap > 0 else max_len

    def inheriting(self, start: TransformerConfig) -> TransformerConfig:
        """This config under a start model whose network config is `start` (resolved): max_len "auto" becomes the
        start model's length (its position table is copied); a number stays, for check_network to compare."""
        return dataclasses.replace(self, max_len=start.max_len) if self.max_len == "auto" else self

    @property
    def context(self) -> int:
        """max_len as a number: the network's configs are resolved (Transformer._train); "auto" here is a bug."""
        if self.max_len == "auto":
            raise ValueError("max_len 'auto' must be resolved (resolved_max_len) before a network is built")
        return int(self.max_len)

    def resolved_patience(self, epochs: int) -> int:
        """Validation runs without improvement before stopping, for a schedule of `epochs` (resolved_epochs):
        `patience` when `epochs` is a number, else scaled from AUTO_EPOCHS_MIN epochs to `epochs`, so that a
        longer schedule, whose learning rate decays later, is not stopped on its early plateau."""
        if self.epochs != "auto":
            return self.patience
        return math.ceil(self.patience * epochs / AUTO_EPOCHS_MIN)


def auto_max_len(history_lengths: np.ndarray) -> int:
    """A context that holds the whole history of AUTO_MAX_LEN_QUANTILE of the users (`history_lengths`: events
    per training user), rounded up to a multiple of AUTO_MAX_LEN_STEP, within [AUTO_MAX_LEN_MIN,
    AUTO_MAX_LEN_MAX]: shops of short histories keep the 50 that Beauty and Scientific validate best with; a shop
    of long ones (Online Retail: 40% of the users above 50 events) reads up to 200 (attention's cost grows with
    the square of the length, hence the cap)."""
    lengths = np.asarray(history_lengths, dtype=np.int64)
    lengths = lengths[lengths > 0]
    if not len(lengths):
        return AUTO_MAX_LEN_MIN
    wanted = float(np.quantile(lengths, AUTO_MAX_LEN_QUANTILE))
    rounded = math.ceil(wanted / AUTO_MAX_LEN_STEP) * AUTO_MAX_LEN_STEP
    return int(min(max(rounded, AUTO_MAX_LEN_MIN), AUTO_MAX_LEN_MAX))


def auto_epochs(schedule_steps: int, steps_per_epoch: int) -> int:
    """Epochs whose optimizer steps cover `schedule_steps`, within [AUTO_EPOCHS_MIN, AUTO_EPOCHS_MAX]: a small
    shop trains more epochs of few steps (Online Retail: 66 steps an epoch -> 54 epochs), a large one no fewer
    than AUTO_EPOCHS_MIN (Beauty: 176 -> 20), a tiny one at most AUTO_EPOCHS_MAX (early stopping on the
    validation targets stops it earlier anyway)."""
    wanted = math.ceil(schedule_steps / max(steps_per_epoch, 1))
    return min(max(wanted, AUTO_EPOCHS_MIN), AUTO_EPOCHS_MAX)
