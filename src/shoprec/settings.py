"""Deployment settings, read from the environment once and passed around explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shoprec.errors import ConfigError


def _default_data_dir() -> Path:
    """Where ../shared/data lives for benchmarks and real-data tests (SHOPREC_DATA_DIR overrides)."""
    env = os.environ.get("SHOPREC_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _retention_days(raw: str | None) -> float | None:
    """SHOPREC_RETENTION_DAYS as a positive number of days (None when unset or empty)."""
    if raw is None or not raw.strip():
        return None
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not days > 0 or days == float("inf"):
        raise ConfigError(f"SHOPREC_RETENTION_DAYS must be a positive number of days, got {raw!r}")
    return days


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///shoprec.db"
    redis_url: str | None = None
    model_dir: Path = Path("models")
    secret_key: str = "insecure-dev-secret"
    data_dir: Path = field(default_factory=_default_data_dir)
    pseudonymize_users: bool = False  # SHOPREC_PSEUDONYMIZE_USERS=1: user ids stored as keyed hashes
    retention_days: float | None = None  # SHOPREC_RETENTION_DAYS: events older than this are purged

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": os.environ.get("SHOPREC_DATABASE_URL", cls.database_url),
            "redis_url": os.environ.get("SHOPREC_REDIS_URL") or None,
            "model_dir": Path(os.environ.get("SHOPREC_MODEL_DIR", str(cls.model_dir))),
            "secret_key": os.environ.get("SHOPREC_SECRET_KEY", cls.secret_key),
            "data_dir": _default_data_dir(),
            "pseudonymize_users": os.environ.get("SHOPREC_PSEUDONYMIZE_USERS", "").strip().lower()
            in ("1", "true", "yes", "on"),
            "retention_days": _retention_days(os.environ.get("SHOPREC_RETENTION_DAYS")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
