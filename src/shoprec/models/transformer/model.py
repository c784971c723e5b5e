"""The `Transformer` recommender: fit (each ensemble member trained by shoprec.models.training.train with the
EMA / checkpoint / time-limit hooks, DDP under torchrun), score (serving.Ensemble) and artifacts."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import CannotScoreError, ConfigError, DataError
from shoprec.models.base import Query, RankingValidation, Recommender, register
from shoprec.models.softmax import release_buffers
from shoprec.models.training import (
    EMA,
    Checkpoints,
    Dist,
    TimeLimit,
    TrainHook,
    TrainOptions,
    TrainState,
    forked_rng,
    pick_device,
    setup_distributed,
    torch_threads,
    train,
)
from shoprec.models.transformer.carry import carried_text_affinity, fine_tuning_start, keep_the_better, start_context
from shoprec.models.transformer.config import (
    AFFINITY_MIN_Z,
    POPULARITY_GRID,
    TEXT_AFFINITY_GRID,
    TRANSITION_AFFINITY_GRID,
    TransformerConfig,
)
from shoprec.models.transformer.content import ItemContent, build_content, named_from_state
from shoprec.models.transformer.data import (
    NegativeSampler,
    Sequences,
    build_sequences,
    length_batches,
    make_batch,
    negative_sampler,
    sample_negatives,
    training_windows,
)
from shoprec.models.transformer.network import SeqNet
from shoprec.models.transformer.optim import checkpoint_fingerprint, compute_dtype, learning_rate, make_optimizer
from shoprec.models.transformer.serving import Ensemble, Member, autocast
from shoprec.models.transformer.transitions import catalog_neighbours, transition_matrix
from shoprec.types import EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Run:
    """What every epoch of one member's training needs."""

    cfg: TransformerConfig  # the member's config (its seed)
    model: nn.Module  # the network, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    seqs: Sequences
    windows: np.ndarray  # (n, 2) [start, stop) training windows
    steps_per_epoch: int
    dist: Dist
    sampler: NegativeSampler | None  # negative_sampler(...) for loss="sampled"
    id_drop: float
    ema: EMA | None


@register
class Transformer(Recommender):
    """Causal self-attention over a user's recent events, items represented by id + content."""

    name = "transformer"
    Config = TransformerConfig
    Options = TrainOptions
    uses_history = True
    uses_user = False

    def __init__(self, config: TransformerConfig | None = None, options: TrainOptions | None = None) -> None:
        super().__init__(config, options)
        self.options.check(self.name)
        self.fitted: Ensemble | None = None  # the trained members as a scorer (after fit or load)
        self.best_epoch = 0
        self.best_epochs: list[int] = []
        self.epochs = 0  # the schedule's length in epochs of the last fit (config epochs, "auto" resolved)
        self.max_len = 0  # events of history read per query (config max_len, "auto" resolved; saved with the model)
        self.default_event = EventType.PURCHASE.code + 1
        self.log_counts = np.zeros(0, dtype=np.float32)  # log(1 + training count) per item
        self.popularity_correction = 0.0  # the correction in use (config value or chosen on validation)
        self.popularity_search: dict[str, float] = {}  # validation NDCG per candidate correction
        self.text_affinity = 0.0  # the text affinity in use (config value, chosen on validation, or a carried model's)
        self.text_affinity_search: dict[str, float] = {}  # validation NDCG per candidate weight
        self.transition_affinity = 0.0  # the transition affinity in use (config value or chosen on validation)
        self.transition_affinity_search: dict[str, float] = {}  # validation NDCG per candidate weight
        self.transitions: sp.csr_matrix | None = None  # P (n_items, n_items), with a transition affinity
        self.text_neighbours: sp.csr_matrix | None = None  # N (n_items, n_items), the sparse text affinity's
        self.affinity_z: float | None = None  # the searched pair's gain over (0, 0) in standard errors (serving.py)
        self._device = torch.device("cpu")
        self._source: tuple[Transformer, str] | None = None  # start_from's model and label
        self._zero_shot = False  # start_from(..., zero_shot=True): fit carries the source over, no training
        self.initialised_from: dict[str, Any] = {}  # where fit started from, and what it copied

    @property
    def network_config(self) -> TransformerConfig:
        """The config with what the network was built with resolved (max_len "auto" -> the fit's number): what a
        model carried over or fine-tuned from this one inherits (NETWORK_PARAMS)."""
        return dataclasses.replace(self.config, max_len=self.max_len) if self.max_len else self.config

    @property
    def net(self) -> SeqNet | None:
        """The first member's network (None before fit)."""
        return self.fitted.members[0].net if self.fitted is not None else None

    def start_from(self, source: Transformer, label: str = "", zero_shot: bool = False) -> Self:
        """Fit from `source`'s weights (a fitted transformer, e.g. another platform's; its first member when
        it is an ensemble; `label` names it in the model meta) instead of random ones, then train as usual:
        see `carry.fine_tuning_start`. `zero_shot`: fit trains nothing; the model is `source` carried over to the
        training data's items, scored through their content (see `carry_over`)."""
        if not isinstance(source, Transformer) or source.net is None:
            raise ConfigError("model 'transformer' can start only from a fitted transformer model")
        self._source, self._zero_shot = (source, label), zero_shot
        return self

    def carry_over(self, items: IdMap, catalog: ItemCatalog | None) -> Self:
        """Zero-shot: the `start_from` model's networks (every member) for `items`, each item represented by
        its content alone (text, and the attribute tokens the source knows), without training: a shop with a
        catalog and no events gets a model (shoprec.models.transformer.carry). Its text affinity is the
        source's, at least CARRIED_TEXT_AFFINITY (in fit, a positive text_affinity replaces it, and null with
        validation targets chooses it on them)."""
        from shoprec.models.transformer.carry import carry_members

        if self._source is None:
            raise ConfigError("model 'transformer': zero-shot needs a model to start from (start_from)")
        source, label = self._source
        if self.users is None:
            self.users = IdMap()
        self.items = items.copy()
        members, self.initialised_from = carry_members(source, label, self.config, items, catalog, self.options)
        self.max_len = members[0].net.cfg.context
        self._device = torch.device("cpu")
        self.best_epoch, self.best_epochs = 0, [0] * len(members)
        self.default_event = source.default_event
        self.log_counts = np.zeros(len(items), dtype=np.float32)
        self.popularity_correction, self.popularity_search = 0.0, {}
        self.text_affinity, self.text_affinity_search = carried_text_affinity(source.text_affinity), {}
        given = self.config.fixed_weight("text_affinity")  # built where a text weight can be used (fit may calibrate)
        used = given is None or given > 0
        self.text_neighbours = catalog_neighbours(members[0].net.text_vectors, self.config.text_neighbours * bool(used))
        self.transition_affinity, self.transition_affinity_search, self.transitions = 0.0, {}, None  # no events
        self._publish(members)
        return self

    def weigh_carried(self, validation: RankingValidation | None) -> None:
        """The text weight of a carried model (after carry_over): "auto" keeps carry_over's; a number given is used
        (0 too); null is calibrated on `validation` (one weight, nothing of the network trained; every process
        searches alone, on the CPU the model lives on; a carried model has no transitions)."""
        given = self.config.fixed_weight("text_affinity")
        if self.fitted is not None and (given is not None or (self.config.text_affinity is None and validation)):
            carried = list(self.fitted.members)
            if given is not None:
                self.text_affinity = given
            else:
                assert validation is not None
                self._choose_affinities(carried, validation, Dist())
            self._publish(carried)

    # ---------------------------------------------------------------- fit
    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg, opts = self.config, self.options
        if validation is not None and not isinstance(validation, RankingValidation):
            raise ConfigError("model 'transformer' validates with a RankingValidation (next-item targets)")
        self._device = pick_device(self.name, opts.device)
        dist_ = setup_distributed(self._device)
        self.text_affinity, self.text_affinity_search = cfg.fixed_weight("text_affinity") or 0.0, {}  # (training)
        self.transitions = self.text_neighbours = None  # (built by finish: training validates with the dense text)
        self.fitted, self.initialised_from = None, {}
        if self._zero_shot:
            self.carry_over(train.items, catalog).weigh_carried(validation)
            return
        members: list[Member] = []
        self.best_epochs = []
        started = time.perf_counter()
        with torch_threads(opts.num_threads):
            try:
                for k in range(cfg.ensemble):  # members with seeds seed, seed + 1, ...
                    left = opts.max_seconds - (time.perf_counter() - started) if opts.max_seconds else 0.0
                    member_opts = dataclasses.replace(
                        opts, max_seconds=max(left, 1e-3) if left else 0.0,
                        checkpoint_dir=(str(Path(opts.checkpoint_dir) / f"member-{k}")
                                        if opts.checkpoint_dir and cfg.ensemble > 1 else opts.checkpoint_dir))
                    member_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
                    with forked_rng(member_cfg.seed, self._device):
                        member, state = self._train(member_cfg, member_opts, train, catalog, validation, dist_)
                    self.training_log += [{**e, "member": k} if cfg.ensemble > 1 else e for e in state.log]
                    self.best_epochs.append(state.best_epoch)
                    members.append(member)
                self.best_epoch = self.best_epochs[0]
                self.finish(members, train, validation, dist_)
                if self._source is not None and validation is not None:
                    keep_the_better(self, train, catalog, validation)  # the start where it validates better
            finally:
                release_buffers()

    def finish(self, members: list[Member], train: Interactions, validation: RankingValidation | None,
               dist_: Dist | None = None) -> None:
        """What fit does with its trained `members` (on `train`): the weights of the parts beside the network,
        given or chosen on `validation` (the affinities, then the popularity correction), and the ensemble it
        serves. benchmarks/affinity_choices.py calls it again on a fitted model's members with other parameters
        (the same networks, choices made as fit makes them)."""
        cfg, dist_ = self.config, dist_ or Dist()
        step, text = cfg.fixed_weight("transition_affinity"), cfg.fixed_weight("text_affinity")  # None: chosen
        self.text_affinity, self.text_affinity_search = text or 0.0, {}
        self.transition_affinity, self.transition_affinity_search, self.affinity_z = step or 0.0, {}, None
        usable = [bool(w) or (w is None and validation is not None) for w in (step, text)]  # (built only then)
        if self.transitions is None and usable[0]:
            self.transitions = transition_matrix(build_sequences(train), train.n_items)
        self.text_neighbours = catalog_neighbours(members[0].net.text_vectors, cfg.text_neighbours * usable[1])
        self.log_counts = np.log1p(np.bincount(train.item, minlength=train.n_items)).astype(np.float32)
        if validation is not None and None in map(cfg.fixed_weight, ("text_affinity", "transition_affinity")):
            self._choose_affinities(members, validation, dist_)
        self.popularity_correction, self.popularity_search = cfg.popularity_correction or 0.0, {}
        if cfg.popularity_correction is None and validation is not None:  # the grid's best (the smallest of equals)
            self.popularity_search = self._ensemble(members, 0.0).popularity_search(validation, dist_, self.log_counts)
            self.popularity_correction = float(POPULARITY_GRID[int(np.argmax(list(self.popularity_search.values())))])
            log.info("transformer: popularity correction %s (validation NDCG: %s)", self.popularity_correction,
                     self.popularity_search)
        self._publish(members)

    def _train(self, cfg: TransformerConfig, opts: TrainOptions, train_data: Interactions,
               catalog: ItemCatalog | None, validation: RankingValidation | None,
               dist_: Dist) -> tuple[Member, TrainState]:
        """Train one network (one ensemble member) with config `cfg`; returns it and its training state."""
        device = self._device
        seqs = build_sequences(train_data)
        self.max_len = self._resolve_max_len(cfg, np.diff(seqs.offsets), opts.max_context)
        windows = training_windows(seqs, self.max_len)
        if not len(windows):
            raise DataError("model 'transformer': no user has two or more training events")
        self.epochs = cfg.resolved_epochs(len(windows), opts.max_epochs)
        patience = cfg.resolved_patience(self.epochs)
        log.info("transformer: %d epochs, patience %d, max_len %d (config epochs %r, max_len %r; %d windows)",
                 self.epochs, patience, self.max_len, cfg.epochs, cfg.max_len, len(windows))
        # "auto" resolved for the network and the loop
        cfg = dataclasses.replace(cfg, epochs=self.epochs, patience=patience, max_len=self.max_len)
        counts = np.bincount(seqs.items, minlength=train_data.n_items + 1)
        self.default_event = int(np.bincount(seqs.events).argmax())
        content = build_content(catalog, train_data.items, cfg, opts)
        net = SeqNet(cfg, train_data.n_items, content, trained=(counts > 0) & cfg.item_ids)
        if self._source is not None:
            self.initialised_from = fine_tuning_start(*self._source, net)
        net = net.to(device)
        net.loss_dtype = compute_dtype(device, cfg.precision)
        net.sparse_ids = cfg.loss == "sampled" and dist_.world == 1  # (DDP all-reduces dense gradients)
        model: nn.Module = net
        if dist_.world > 1:
            model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
        optimizer = make_optimizer(net, cfg, self.initialised_from.get("copied", ()))
        hooks: list[TrainHook] = []
        state = TrainState()
        if opts.checkpoint_dir:
            start = f"start:{self._source[1]}" if self._source is not None else ""  # never resume another start
            fingerprint = checkpoint_fingerprint(cfg, opts, train_data, dist_.world) + start
            checkpoints = Checkpoints(opts.checkpoint_dir, fingerprint, net, optimizer, main=dist_.main)
            state = checkpoints.resume() if checkpoints.exists() else state
            hooks.append(checkpoints)
        ema = EMA(net, cfg.ema) if cfg.ema else None
        if ema is not None:
            ema.begin(state)
            hooks.insert(0, ema)
        if opts.max_seconds > 0:
            hooks.insert(0, TimeLimit(opts.max_seconds, dist_, device))
        run = _Run(cfg, model, optimizer, seqs, windows, math.ceil(len(windows) / cfg.batch_size / dist_.world),
                   dist_, negative_sampler(counts, device) if cfg.loss == "sampled" else None,
                   cfg.id_dropout if content.has_content.any() else 0.0, ema)

        def train_epoch(epoch: int) -> dict[str, Any]:
            t0, c0 = time.perf_counter(), time.process_time()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + dist_.rank)
            loss = self._epoch(run, epoch, state)
            return {"loss": loss, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                    "learning_rate": optimizer.param_groups[0]["lr"], "epochs": cfg.epochs,
                    "patience": cfg.patience, "max_len": cfg.max_len}

        def validate(_: int) -> tuple[float, dict[str, Any]]:
            assert validation is not None
            t1, c1 = time.perf_counter(), time.process_time()
            current = self._ensemble([Member.of(net)], correction=0.0, stacked=False)  # the member in training
            ndcg, hr = current.validation_metrics(validation, dist_)
            net.train()
            return ndcg, {f"val_NDCG@{validation.k}": ndcg, f"val_HR@{validation.k}": hr,
                          "eval_seconds": time.perf_counter() - t1, "eval_cpu_seconds": time.process_time() - c1}

        train(self.name, state, epochs=self.epochs, train_epoch=train_epoch,
              validate=validate if validation is not None else None,
              evaluate_at=lambda epoch: epoch % cfg.eval_every == 0, stop_after=cfg.patience + 1,
              snapshot=lambda: {k: v.detach().clone() for k, v in net.state_dict().items()},
              restore=net.load_state_dict, hooks=hooks, progress=opts.progress and dist_.main)
        return Member.of(net), state

    def chosen_params(self) -> dict[str, Any]:
        """The context "auto" resolved to and the weights searched on validation (where the config left them null):
        a refit without validation targets would resolve the context on other data and fall back to 0 for them."""
        cfg = self.config
        chosen: dict[str, Any] = {"max_len": self.max_len} if cfg.max_len == "auto" and self.max_len else {}
        if cfg.popularity_correction is None and self.popularity_search:
            chosen["popularity_correction"] = self.popularity_correction
        for name in ("text_affinity", "transition_affinity"):
            if cfg.fixed_weight(name) is None and getattr(self, f"{name}_search"):
                chosen[name] = getattr(self, name)
        return chosen

    def _resolve_max_len(self, cfg: TransformerConfig, history_lengths: np.ndarray, cap: int = 0) -> int:
        """The context length of this fit: with "auto", the start model's when there is one (its position table
        is copied; another number is refused, and so is a start model over `cap`), else cfg.resolved_max_len of
        the training histories, at most `cap` (> 0: the deployment's limit)."""
        if self._source is not None:
            cfg = start_context(*self._source, cfg, cap)
        return cfg.resolved_max_len(history_lengths, cap)

    def _epoch(self, run: _Run, epoch: int, state: TrainState) -> float:
        """One pass over the training windows in length-grouped batches; the mean batch loss."""
        cfg, device, dist_ = run.cfg, self._device, run.dist
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = length_batches(run.windows, cfg.batch_size, rng)
        batches = batches[dist_.rank::dist_.world][:len(batches) // dist_.world]  # equal count on every rank
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch + 7 * dist_.rank)
        run.model.train()
        total = 0.0
        for idx in batches:
            for group in run.optimizer.param_groups:  # (a group without lr_scale counts as 1)
                group["lr"] = learning_rate(cfg, state.step, run.steps_per_epoch) * group.get("lr_scale", 1.0)
            arrays = make_batch(run.seqs, run.windows[idx], cfg.exclude_seen_in_loss, cfg.future_targets)
            batch = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in arrays.items()}  # (B, L) ...
            if run.sampler is None:  # full softmax: ids dropped over the whole table
                n_rows = self.n_items + 1
                keep = ((torch.rand(n_rows, 1, generator=gen, device=device) >= run.id_drop).float() if run.id_drop
                        else None)
                with autocast(device, cfg.precision):
                    loss = run.model(batch, keep)
            else:  # sampled: negatives, log Q and id dropout for the rows the step uses only
                negatives, log_q = sample_negatives(run.sampler, cfg.n_negatives, int((batch["targets"] > 0).sum()),
                                                    gen)
                with autocast(device, cfg.precision):
                    loss = run.model(batch, None, negatives, log_q, id_drop=run.id_drop, generator=gen)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            if run.ema is not None:
                run.ema.update(state, run.model)
            state.step += 1
            total += float(loss.detach())
        return total / max(len(batches), 1)

    def _choose_affinities(self, members: list[Member], validation: RankingValidation, dist_: Dist) -> None:
        """The affinities the config leaves "auto" or null, chosen together on validation (Ensemble.choose_affinities):
        the best pair; with "auto" only with a clear gain over (0, 0) (AFFINITY_MIN_Z), with null the best as it is.
        Where "auto" keeps (0, 0), a model fine-tuned from a start takes the start's carried text weight instead."""
        cfg, fixed = self.config, self.config.fixed_weight
        probe = self._ensemble(members, correction=0.0, affinity=1.0, transition=1.0)
        texts = TEXT_AFFINITY_GRID if fixed("text_affinity") is None else (self.text_affinity,)
        steps = TRANSITION_AFFINITY_GRID if fixed("transition_affinity") is None else (self.transition_affinity,)
        min_z = AFFINITY_MIN_Z if "auto" in (cfg.text_affinity, cfg.transition_affinity) else 0.0
        fallback = (carried_text_affinity(self._source[0].text_affinity)  # fine-tuned: its start's, not none
                    if self._source is not None and cfg.text_affinity == "auto" else None)
        (self.text_affinity, self.transition_affinity, self.text_affinity_search, self.transition_affinity_search,
         self.affinity_z) = probe.choose_affinities(validation, dist_, texts, steps, min_z,
                                                  fallback_text=fallback)
        log.info("transformer: text affinity %s, transition affinity %s (best pair's z %s; validation NDCG: %s; %s)",
                 self.text_affinity, self.transition_affinity, self.affinity_z, self.text_affinity_search,
                 self.transition_affinity_search)

    def _ensemble(self, members: list[Member], correction: float, stacked: bool = True,
                  affinity: float | None = None, transition: float | None = None) -> Ensemble:
        return Ensemble(members, device=self._device, precision=self.config.precision, max_len=self.max_len,
                        default_event=self.default_event, log_counts=self.log_counts, popularity_correction=correction,
                        stacked=stacked, text_affinity=self.text_affinity if affinity is None else affinity,
                        transitions=self.transitions, text_neighbours=self.text_neighbours,
                        transition_affinity=self.transition_affinity if transition is None else transition)

    def _publish(self, members: list[Member]) -> None:
        self.fitted = self._ensemble(members, self.popularity_correction)
        self.text_affinity = self.fitted.affinity  # 0 where the items have no text: the weight in use
        self.transition_affinity = self.fitted.transition_affinity  # 0 without transitions
        if not self.transition_affinity:
            self.transitions = None  # not kept (nor saved) unused

    # ------------------------------------------------------------------ scoring
    def can_score(self, query: Query) -> bool:
        """A query is scored from its history: it needs at least one item the model knows."""
        hist = np.asarray(query.history)
        return bool(((hist >= 0) & (hist < self.n_items)).any())

    def _scorer(self) -> Ensemble:
        if self.fitted is None:
            raise CannotScoreError("model 'transformer' is not fitted")
        return self.fitted

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        return self._scorer().score(queries)

    @property
    def item_factors(self) -> np.ndarray:
        """(n_items, D) item vectors with scores == user_vectors(queries) @ item_factors.T (see Ensemble)."""
        return self._scorer().item_factors

    def user_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        return self._scorer().user_vectors(queries)

    def history_scores(self, queries: Sequence[Query], columns: np.ndarray | None = None) -> sp.csr_matrix | None:
        """The sparse part of the scores beside the inner products (the sparse terms; None without), at `columns`."""
        return self._scorer().history_scores(queries, columns)

    # ---------------------------------------------------------------- artifacts
    def _state(self) -> dict[str, np.ndarray]:
        """Member 0's tensors under their own names, member k's under "member{k}." + name."""
        arrays: dict[str, np.ndarray] = {"log_counts": self.log_counts}
        for label, matrix in (("transitions", self.transitions),
                              ("text_neighbours", self.text_neighbours if self.text_affinity else None)):
            if matrix is not None:
                arrays.update({f"{label}.{name}": getattr(matrix, name) for name in ("indptr", "indices", "data")})
        for k, m in enumerate(self._scorer().members):
            prefix = f"member{k}." if k else ""
            arrays.update({prefix + name: v.detach().cpu().float().numpy() if v.is_floating_point()
                           else v.detach().cpu().numpy() for name, v in m.net.state_dict().items()})
        return arrays

    def _meta(self) -> dict[str, Any]:
        fitted = self._scorer()
        net = fitted.members[0].net
        return {"n_attributes": (net.attributes.weight.shape[0] - 1) if net.attributes is not None else 0,
                "best_epoch": self.best_epoch, "best_epochs": self.best_epochs, "epochs": self.epochs,
                "max_len": self.max_len,
                "default_event": self.default_event,
                "n_members": len(fitted.members), "attribute_vocabulary": list(net.attribute_vocabulary),
                "popularity_correction": self.popularity_correction, "popularity_search": self.popularity_search,
                "text_affinity": self.text_affinity, "text_affinity_search": self.text_affinity_search,
                "transition_affinity": self.transition_affinity,
                "transition_affinity_search": self.transition_affinity_search, "affinity_z": self.affinity_z,
                "vector_spaces": {n: int(t.shape[1]) for n, t in named_from_state(dict(net.named_buffers())).items()},
                **({"initialised_from": self.initialised_from} if self.initialised_from else {})}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._device = torch.device("cpu")
        self.log_counts = np.asarray(arrays.get("log_counts", np.zeros(self.n_items)), dtype=np.float32)
        self.popularity_correction = float(meta.get("popularity_correction", 0.0))
        self.popularity_search = dict(meta.get("popularity_search", {}))
        self.text_affinity = float(meta.get("text_affinity", 0.0))  # (models saved before it: none)
        self.text_affinity_search = dict(meta.get("text_affinity_search", {}))
        self.transition_affinity, self.affinity_z = float(meta.get("transition_affinity", 0.0)), meta.get("affinity_z")
        self.transition_affinity_search = dict(meta.get("transition_affinity_search", {}))
        self.transitions, self.text_neighbours = (  # (models saved before the text neighbours: the dense text term)
            sp.csr_matrix((arrays[f"{label}.data"], arrays[f"{label}.indices"], arrays[f"{label}.indptr"]),
                          shape=(self.n_items, self.n_items)) if f"{label}.indptr" in arrays else None
            for label in ("transitions", "text_neighbours"))
        self.best_epoch = int(meta.get("best_epoch", 0))
        self.best_epochs = list(meta.get("best_epochs", [self.best_epoch]))
        self.epochs = int(meta.get("epochs", 0))
        # models saved before max_len "auto" have the number in their config
        saved = meta.get("max_len") or self.config.max_len
        if saved == "auto":
            raise DataError("model 'transformer': its meta.json lacks the resolved max_len of its config's \"auto\"")
        self.max_len = int(saved)
        network_cfg = dataclasses.replace(self.config, max_len=self.max_len)
        self.default_event = int(meta.get("default_event", self.default_event))
        self.initialised_from = dict(meta.get("initialised_from", {}))
        vocabulary = tuple(meta.get("attribute_vocabulary", ()))
        members = []
        for k in range(int(meta.get("n_members", 1))):
            prefix = f"member{k}." if k else ""
            mine = {name[len(prefix):]: v for name, v in arrays.items()
                    if name.startswith(prefix) and (k or not name.startswith(("member", "transitions.", "text_neigh")))
                    and name != "log_counts"}
            content = ItemContent(attr_flat=mine["attr_flat"], attr_offsets=mine["attr_offsets"],
                                  n_attributes=int(meta["n_attributes"]), text=mine["text_vectors"],
                                  title=mine.get("title_vectors", np.zeros((0, 0), dtype=np.float32)),
                                  vocabulary=vocabulary, named=named_from_state(mine))
            net = SeqNet(network_cfg, self.n_items, content, trained=mine["trained_mask"][:, 0] > 0)
            net.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in mine.items()})
            members.append(Member.of(net))
        self._publish(members)
