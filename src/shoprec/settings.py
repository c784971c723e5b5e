"""The one settings tree of a deployment: read once (a TOML file, then environment overrides), passed around
explicitly, never written back to the environment.

    settings = load_settings()                       # $SHOPREC_CONFIG or no file, then SHOPREC_* variables
    settings = load_settings("shoprec.toml", database_url="sqlite:///x.db")   # a file, then explicit overrides

The tree is frozen dataclasses: top-level keys (database, cache, artifact store, privacy) and one section per
role: [serving], [jobs], [limits], [retraining], [logging], [metrics]. Every key has one environment name:
SHOPREC_<KEY> at the top level, SHOPREC_<SECTION>_<KEY> in a section (serving keys also keep their older flat
names, e.g. SHOPREC_ADMIN_KEY). Values are validated and converted by pydantic (the fields' types); an unknown
key in the file is refused by name, as is a value of the wrong type. docs/configuration.md lists every setting
(tests check that the table and this tree agree).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shoprec.errors import ConfigError

log = logging.getLogger(__name__)
CONFIG_ENV = "SHOPREC_CONFIG"  # the TOML file read when no --config-file is given
SECRET_KEYS = frozenset({"secret_key", "admin_key", "token"})  # masked by `shoprec config show`
NOT_SETTINGS = ("SHOPREC_CONFIG", "SHOPREC_TEST_", "SHOPREC_WRK_", "SHOPREC_CHROM", "SHOPREC_GPU_", "SHOPREC_ARTIFACTS",
                "SHOPREC_BENCH_")  # variables of tests and benchmarks, not of the deployment

UnknownItems = Literal["create", "reject"]
SCAN_MODES = ("auto", "on", "off")  # ServingConfig.scan: timed at load, always (exactness allowing), never
SCAN_MIN_ITEMS = 4096  # smaller catalogs: the full float32 pass is cheap (ServingConfig.scan_min_items)
ATTRIBUTION_HISTORY = 20  # newest distinct history items a list's reasons may name
MAX_EVENT_BYTES = 2048  # JSON of the largest legal event: user, item and session ids at 256 characters, the
# longest type (32), a timestamp, a value and up to 1 KiB of context
MAX_BATCH_BYTES = 20 * 1024 * 1024  # >= 10,000 (max_events) x MAX_EVENT_BYTES: ServingConfig.max_body_bytes
MIN_ADMIN_KEY_LENGTH = 24
WEAK_ADMIN_KEYS = frozenset({"change-me", "changeme", "admin", "password", "secret", "test", "root", "default",
                             "letmein", "admin-key", "adminkey", "shoprec", "12345678", "123456"})
RATE_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
                "hour": 3600.0}


def parse_rate_limit(text: str | None) -> tuple[int, float] | None:
    """Parse a rate: "100/s" -> (100, 1.0), at most 100 requests per second per key, in bursts of up to 100.
    None, "", "0", "off" -> None (no limit). ConfigError for anything else."""
    if text is None or text.strip().lower() in ("", "0", "off", "none"):
        return None
    count, _, period = text.strip().lower().partition("/")
    seconds = RATE_PERIODS.get(period.strip() or "s")
    if not count.strip().isdigit() or seconds is None or int(count) < 1:
        raise ConfigError(f"rate limit must look like '100/s', '6000/min' or '0' (off), got {text!r}")
    return int(count), seconds


def _at_least(section: str, obj: object, names: tuple[str, ...], low: float) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not value >= low:
            raise ConfigError(f"setting {section}.{name} must be >= {low}, got {value}")


@dataclass(frozen=True)
class ServingConfig:
    """How the online path behaves ([serving]; environment SHOPREC_<KEY>, e.g. SHOPREC_ADMIN_KEY)."""

    admin_key: str | None = None  # a key that may act on every platform (X-Platform header) and create platforms
    unknown_items: UnknownItems = "create"  # events naming unknown items: create bare items, or reject the batch
    max_events: int = 10_000  # events per POST /v1/events (413 above)
    max_items: int = 10_000  # items per PUT /v1/items (413 above)
    # most recent events passed to the model as Query.history: at least the transformer's context (max_len
    # "auto" reads up to 200 events; a trained model's resolved max_len is in its meta)
    history_length: int = 200
    list_depth: int = 100  # most items one recommendation_id can page through (offset + k <= list_depth)
    page_depth: int = 50  # items ranked for a new list (more when offset + k asks for more)
    max_k: int = 100
    cache_ttl_s: float = 0.5  # in-process caches: how stale another worker's writes may be seen
    cache_size: int = 20_000  # entries of the in-process cache (user states, key lookups)
    list_cache_size: int = 10_000  # served lists kept in process for paging and feedback (older: database)
    model_poll_s: float = 1.0  # how often a worker checks which model is active
    repurchasable: tuple[str, ...] = ()  # category prefixes whose purchased items may be recommended again
    ann_threshold: int = 200_000  # catalogs larger than this take candidates from a faiss index (when installed)
    ann_candidates: int = 1000
    scan_min_items: int = SCAN_MIN_ITEMS  # from this many items an inner-product model's list reads int8 item
    # vectors to find its exact candidates (shoprec.service.scan)
    scan: str = "auto"  # "auto" (where it is faster on this CPU, timed when a model loads), "on", "off"
    redis_prefix: str = "shoprec:"  # keys of this deployment in Redis
    rate_limit: str | None = None  # per API key: "100/s", "6000/min", "50000/h"; None or "0" = off
    max_body_bytes: int = MAX_BATCH_BYTES  # request bodies over this are answered 413 (default: the largest
    # legal batch, 10,000 events of MAX_EVENT_BYTES, 20 MiB; only an authenticated request's body is read)
    attribution_window_s: float = 1800.0  # experiments: an event this soon after a shown list is credited to it
    threads: int = 1  # CPU threads per server worker for scoring (SHOPREC_SERVE_THREADS): workers and requests
    # are the parallelism, so more threads per worker only oversubscribe the cores
    explain_history: int = ATTRIBUTION_HISTORY  # newest distinct history items a list's reasons may name:
    # each one is a leave-one-out row the model encodes with the list
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this many seconds
    header_timeout_s: float = 10.0  # a connection that has not sent a request's complete headers this long
    # after it opened (or after the first byte of its next request) is closed: idle and half-open connections
    max_connections: int | None = None  # per server worker: a request on a connection beyond this many open
    # ones is answered 503 at once (None: no limit)
    auth_failures: int = 20  # failed authentications (a wrong X-API-Key on any route, a wrong dashboard login)
    # one client address may make within auth_failure_window_s; then every authentication it tries is answered
    # 429 with Retry-After for auth_block_s (shared by workers: Redis when configured, else the database)
    auth_failure_window_s: float = 60.0
    auth_block_s: float = 60.0
    allow_weak_admin_key: bool = False  # development only: let `shoprec serve` start with a short or well-known
    # admin_key (SHOPREC_ALLOW_WEAK_ADMIN_KEY=1); otherwise it refuses one under 24 characters or a known weak one
    idempotency_ttl_s: float = 86_400.0  # a write's answer is kept this long under its Idempotency-Key header
    # (a retry with the same key and body gets it again, the work is not redone; shoprec.service.idempotency)
    idempotency_wait_s: float = 10.0  # a retry that arrives while the first request with its key is still
    # working waits up to this long for that answer, then gets 409 conflict with Retry-After
    cors_origins: tuple[str, ...] = ()  # web origins (https://shop.example) whose pages may call the API from a
    # browser (the tracker); "*" allows any; empty: no CORS headers at all (docs/clients.md "CORS")

    def __post_init__(self) -> None:
        if self.unknown_items not in ("create", "reject"):
            raise ConfigError(f"unknown_items must be 'create' or 'reject', got {self.unknown_items!r}")
        for name in ("max_events", "max_items", "history_length", "list_depth", "page_depth", "max_k", "cache_size",
                     "list_cache_size", "ann_candidates", "threads", "explain_history", "scan_min_items"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serving setting {name} must be >= 1, got {getattr(self, name)}")
        if self.scan not in SCAN_MODES:
            raise ConfigError(f"serving setting scan (SHOPREC_SCAN) must be one of {', '.join(SCAN_MODES)}, "
                              f"got {self.scan!r}")
        if self.max_k > self.list_depth:
            raise ConfigError(f"max_k ({self.max_k}) must be <= list_depth ({self.list_depth})")
        if self.max_body_bytes < 1:
            raise ConfigError(f"serving setting max_body_bytes must be >= 1, got {self.max_body_bytes}")
        parse_rate_limit(self.rate_limit)  # a bad rate fails at startup, not on the first request
        _at_least("serving", self, ("keep_alive_s", "header_timeout_s"), 0.1)
        _at_least("serving", self, ("max_connections",), 1)
        _at_least("serving", self, ("auth_failures",), 1)
        _at_least("serving", self, ("auth_failure_window_s", "auth_block_s"), 0.1)
        _at_least("serving", self, ("idempotency_ttl_s",), 1.0)
        _at_least("serving", self, ("idempotency_wait_s",), 0.0)
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ConfigError(f"serving setting cors_origins: {origin!r} is not an origin (scheme://host[:port], "
                                  "no path, or *)")
        if not self.attribution_window_s >= 0:
            raise ConfigError(f"serving setting attribution_window_s must be >= 0, got {self.attribution_window_s}")

    @classmethod
    def from_env(cls, **overrides: Any) -> ServingConfig:
        """The [serving] section of load_settings() (file and environment), with `overrides` on top."""
        base = load_settings().serving
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def check_admin_key(config: ServingConfig) -> None:
    """ConfigError when [serving] admin_key is weak (under MIN_ADMIN_KEY_LENGTH characters or a well-known value)
    and allow_weak_admin_key is not set: `shoprec serve` refuses to start with it (the admin key acts on every
    platform, and the failed-authentication limit only slows guessing down)."""
    key = config.admin_key
    if not key or config.allow_weak_admin_key:
        return
    if len(key) < MIN_ADMIN_KEY_LENGTH or key.strip().lower() in WEAK_ADMIN_KEYS:
        raise ConfigError(f"serving.admin_key (SHOPREC_ADMIN_KEY) is too weak: use at least {MIN_ADMIN_KEY_LENGTH} "
                          "random characters, e.g. $(openssl rand -hex 24), or set SHOPREC_ALLOW_WEAK_ADMIN_KEY=1 "
                          "for development")


@dataclass(frozen=True)
class JobSettings:
    """Durable jobs ([jobs]): how workers claim, hold and retry them, and how many a platform may queue."""

    lease_s: float = 30.0  # a running job's worker renews its lease every lease_s / 3; a job whose lease ran
    # out (its worker died) is taken over by another worker
    max_attempts: int = 3  # a job taken over this many times is failed with the reason
    max_queued: int = 3  # jobs a platform may have queued or running; the next is answered 429
    poll_s: float = 1.0  # how often an idle worker looks for a job (and the retraining schedule is checked)
    embedded_worker: bool = True  # `shoprec serve` on SQLite starts one worker process beside the API
    nice: int = 10  # a job's process runs at this nice value (0-19): training on a machine that also serves
    # yields the CPU to the API processes

    def __post_init__(self) -> None:
        _at_least("jobs", self, ("lease_s", "poll_s"), 0.1)
        _at_least("jobs", self, ("max_attempts", "max_queued"), 1)
        if not 0 <= self.nice <= 19:
            raise ConfigError(f"setting jobs.nice must be in 0..19, got {self.nice}")


def _default_limits() -> dict[str, float]:
    return {"epochs": 500, "embedding_size": 1024, "max_len": 512, "n_blocks": 8, "n_heads": 16, "ffn_size": 4096,
            "ensemble": 8, "max_seconds": 6 * 3600.0}


@dataclass(frozen=True)
class RetrainSettings:
    """Continuous retraining ([retraining]): the deployment's default policy (platforms may set their own) and
    the promotion gate every new model passes. Off unless every_hours or after_events is set."""

    every_hours: float | None = None  # retrain a platform's active model this often
    after_events: int | None = None  # ... and/or after this many new events
    margin: float = 0.02  # promote a new model unless its holdout metric is more than this (relative) below the
    # active model's on the same holdout
    metric: str = "ndcg@10"  # the holdout metric the gate compares
    holdout_fraction: float = 0.1  # the newest events (by time) the gate evaluates both models on
    action: Literal["promote", "experiment"] = "promote"  # or start an A/B experiment between the two

    def __post_init__(self) -> None:
        _at_least("retraining", self, ("every_hours",), 0.001)
        _at_least("retraining", self, ("after_events",), 1)
        _at_least("retraining", self, ("margin",), 0.0)
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"setting retraining.holdout_fraction must be in (0, 1), got {self.holdout_fraction}")


@dataclass(frozen=True)
class LogSettings:
    """Logs ([logging]) on stderr: level, text or JSON lines, and an optional access log (one line a request)."""

    level: Literal["critical", "error", "warning", "info", "debug"] = "warning"
    format: Literal["text", "json"] = "text"
    access_log: bool = False


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus /metrics ([metrics])."""

    token: str | None = None  # when set, /metrics needs it (Authorization: Bearer) or the admin key
    multiprocess_dir: Path | None = None  # where the workers of one `serve` share their counters (default: a
    # fresh temporary directory per server)


@dataclass(frozen=True)
class Settings:
    """The deployment ([top level] and sections). Build it with load_settings(); `Settings()` is the default."""

    database_url: str = "sqlite:///shoprec.db"
    redis_url: str | None = None
    model_dir: Path = Path("models")  # where `directory` artifact stores write (made absolute when read)
    artifact_store: str | None = None  # where models are stored: a directory, "database" or an fsspec URL
    # (s3://...); default: model_dir on SQLite, the database on PostgreSQL / MySQL
    artifact_cache_dir: Path | None = None  # replicas' local copies of database / fsspec artifacts (default:
    # <cache_dir>/artifacts)
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "shoprec")  # text vectors, artifacts
    torch_threads: int = 0  # torch CPU threads for training and evaluation (0: torch's default)
    secret_key: str = "insecure-dev-secret"
    data_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parents[3] / "shared" / "data")
    # ../shared/data for benchmarks and real-data tests
    pseudonymize_users: bool = False  # user ids stored as keyed hashes
    retention_days: float | None = None  # events older than this are purged (hourly)
    serving: ServingConfig = field(default_factory=ServingConfig)
    jobs: JobSettings = field(default_factory=JobSettings)
    limits: dict[str, float] = field(default_factory=_default_limits)  # [limits] training parameter caps: a
    # job (or training request) with a parameter above its cap is refused by name
    retraining: RetrainSettings = field(default_factory=RetrainSettings)
    logging: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def __post_init__(self) -> None:
        if self.retention_days is not None and not (0 < self.retention_days < float("inf")):
            raise ConfigError(f"setting retention_days must be a positive number of days, got {self.retention_days}")
        _at_least("settings", self, ("torch_threads",), 0)
        for name, cap in self.limits.items():
            if not cap > 0:
                raise ConfigError(f"setting limits.{name} must be > 0, got {cap}")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """load_settings() with `overrides` (None values ignored): kept for callers of the older name."""
        return load_settings(**overrides)

    @property
    def embedded(self) -> bool:
        """The embedded default: SQLite (one machine), where `serve` may run a worker beside the API."""
        return self.database_url.startswith("sqlite")


SECTIONS: dict[str, type] = {"serving": ServingConfig, "jobs": JobSettings, "retraining": RetrainSettings,
                             "logging": LogSettings, "metrics": MetricsSettings}
FREE_SECTIONS = ("limits",)  # sections whose keys are free (parameter name -> number)
LEGACY_ENV = {"SHOPREC_SERVE_THREADS": ("serving", "threads"), "SHOPREC_TORCH_THREADS": ("torch_threads",)}


def env_names() -> dict[str, tuple[str, ...]]:
    """Every environment variable a setting is read from -> its path in the tree."""
    names: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(Settings):
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                names[f"SHOPREC_{f.name}_{sub.name}".upper()] = (f.name, sub.name)
                if f.name == "serving" and sub.name != "threads":  # the older flat names
                    names[f"SHOPREC_{sub.name}".upper()] = (f.name, sub.name)
        elif f.name not in FREE_SECTIONS:
            names[f"SHOPREC_{f.name}".upper()] = (f.name,)
    names.update(LEGACY_ENV)
    return names


def _field_type(path: tuple[str, ...]) -> Any:
    owner: type = Settings
    hints: dict[str, Any] = {}
    for part in path:
        hints = typing.get_type_hints(owner)
        owner = hints[part]
    return hints[path[-1]]


def _from_env_text(path: tuple[str, ...], text: str) -> Any:
    """An environment string as the value pydantic converts: lists split on commas, dicts as JSON, an empty
    string as None where None is allowed."""
    kind = float if path[0] == "limits" else _field_type(path)
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union) and type(None) in args and not text.strip():
        return None
    if origin in (tuple, list):
        return [part.strip() for part in text.split(",") if part.strip()]
    if origin is dict:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"setting {'.'.join(path)}: expected a JSON object, got {text!r} ({exc})") from None
    if origin is Literal or path[-1] in ("scan", "unknown_items"):  # choices: any case
        return text.strip().lower()
    return text.strip() if kind is not str or path[-1] in ("rate_limit",) else text


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def _check_keys(doc: Mapping[str, Any], where: str) -> None:
    """Refuse an unknown key or section by name, with the valid ones."""
    top = {f.name for f in dataclasses.fields(Settings)}
    for key, value in doc.items():
        if key not in top:
            raise ConfigError(f"{where}: unknown setting {key!r} (valid: {', '.join(sorted(top))})")
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: [{key}] must be a table of settings, got {value!r}")
            valid = {f.name for f in dataclasses.fields(SECTIONS[key])}
            for sub in value:
                if sub not in valid:
                    raise ConfigError(f"{where}: unknown setting '{key}.{sub}' "
                                      f"(valid in [{key}]: {', '.join(sorted(valid))})")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings a TOML file sets (keys checked, values not yet converted)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    _check_keys(doc, f"config file {path}")
    return doc


def _validate(tree: dict[str, Any], sources: dict[tuple[str, ...], str]) -> Settings:
    import pydantic

    adapter = pydantic.TypeAdapter(Settings)  # keys were checked by name (_check_keys, env_names)
    try:
        return adapter.validate_python(tree)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = tuple(str(p) for p in first["loc"])
        where = sources.get(path, "") or sources.get(path[:2], "")
        error = first.get("ctx", {}).get("error")
        if isinstance(error, ConfigError):  # a rule across fields (__post_init__): its message names them
            named = sorted({w for p, w in sources.items() if p[:len(path)] == path and p[-1] in str(error)})
            origin = f" (from {', '.join(named)})" if named else ""
            raise ConfigError(f"{error}{origin}") from None
        raise ConfigError(f"setting {'.'.join(path)}{f' ({where})' if where else ''}: {first['msg']}"
                          f" (got {first.get('input')!r})") from None


def load_settings(config_file: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                  **overrides: object) -> Settings:
    """The settings: defaults, then the TOML file (`config_file`, else $SHOPREC_CONFIG), then SHOPREC_*
    variables of `env` (default os.environ), then `overrides` (top-level keys; None values ignored).
    A ConfigError names the key and where it came from."""
    env = os.environ if env is None else env
    tree: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    path = config_file or env.get(CONFIG_ENV) or None
    if path:
        doc = read_config_file(path)
        for key, value in doc.items():
            if key in SECTIONS:
                for sub, v in value.items():
                    _put(tree, (key, sub), v)
                    sources[(key, sub)] = f"config file {path}"
            else:
                tree[key] = value
                sources[(key,)] = f"config file {path}"
    names = env_names()
    for name, text in env.items():
        if not name.startswith("SHOPREC_") or name.startswith(NOT_SETTINGS):
            continue
        target = names.get(name)
        if target is None and name.startswith("SHOPREC_LIMITS_"):  # [limits] keys are free
            target = ("limits", name.removeprefix("SHOPREC_LIMITS_").lower())
        if target is None:
            log.warning("environment variable %s is not a shoprec setting (ignored; see docs/configuration.md)",
                        name)
            continue
        _put(tree, target, _from_env_text(target, text))
        sources[target] = f"environment {name}"
    for key, value in overrides.items():
        if value is not None:
            tree[key] = value
            sources[(key,)] = "override"
    if isinstance(tree.get("limits"), Mapping):  # caps a file or variable sets, over the default caps
        tree["limits"] = {**_default_limits(), **tree["limits"]}
    return _validate(tree, sources)


def _masked(key: str, value: Any) -> Any:
    return "***" if key in SECRET_KEYS and value else value


def settings_to_dict(settings: Settings, *, mask: bool = True) -> dict[str, Any]:
    """The settings as plain data (paths as strings, tuples as lists), secrets masked unless mask=False."""

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: (_masked(f.name, plain(getattr(obj, f.name))) if mask else plain(getattr(obj, f.name)))
                    for f in dataclasses.fields(obj)}
        if isinstance(obj, Path):
            return str(obj)
        if isinstance(obj, tuple | list):
            return [plain(v) for v in obj]
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        return obj

    out: dict[str, Any] = plain(settings)
    return out


def settings_to_toml(settings: Settings, *, mask: bool = True) -> str:
    """The settings as a TOML document (what `shoprec config show` prints); unset values are comments."""
    data = settings_to_dict(settings, mask=mask)

    def line(key: str, value: Any) -> str:
        if value is None:
            return f"# {key} = (not set)"
        return f"{key} = {json.dumps(value)}"

    top = [line(k, v) for k, v in data.items() if not isinstance(v, dict)]
    blocks = ["\n".join(top)]
    for key, value in data.items():
        if isinstance(value, dict):
            blocks.append("\n".join([f"[{key}]", *(line(k, v) for k, v in value.items())]))
    return "\n\n".join(blocks) + "\n"


_PROCESS: list[Settings] = []  # the settings this process runs with (use_settings); [] = not chosen yet


def use_settings(settings: Settings) -> Settings:
    """Make `settings` this process's settings: what library code that has no settings passed to it (the torch
    thread default of training, the text-vector cache) reads through process_settings(). The CLI, the server
    and the worker call it once at startup."""
    _PROCESS[:] = [settings]
    return settings


def process_settings() -> Settings:
    """The settings given to use_settings(), else load_settings() once (file and environment)."""
    if not _PROCESS:
        _PROCESS.append(load_settings())
    return _PROCESS[0]
