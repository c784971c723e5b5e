"""ImportReport: what an import read, stored and rejected (per reason, with the first examples), and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoprec.data.records import Rejected
from shoprec.preprocess.report import CleaningReport

STORED_KINDS = ("events", "items", "users")
DUPLICATE = "duplicate"


@dataclass
class ImportReport:
    """Counts of one `ingest` call. Invariant: read == accepted + sum(rejected.values()).

    - read: input rows (records that share a Source count once; a record without one counts alone)
    - accepted: rows whose records were all stored (or that only carried item/user data)
    - rejected: rows dropped per reason (from the readers, the cleaning rules, the pipeline's own
      checks, and `duplicate` for events already stored) with the first examples in `cleaning`
    - stored: per platform, events inserted and item/user records written (inserted or updated;
      users and items that events merely mention are created too, but not counted here)
    """

    platform: str
    source: str | None = None
    format: str | None = None
    read: int = 0
    accepted: int = 0
    cleaning: CleaningReport = field(default_factory=CleaningReport)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    # ------------------------------------------------------------------ updates
    def reject(self, rejected: Rejected) -> None:
        self.cleaning.reject(rejected)

    def note(self, text: str) -> None:
        self.cleaning.note(text)

    def add_stored(self, platform: str, kind: str, count: int) -> None:
        per = self.stored.setdefault(platform, dict.fromkeys(STORED_KINDS, 0))
        per[kind] += count

    # ------------------------------------------------------------------ views
    @property
    def rejected(self) -> dict[str, int]:
        return self.cleaning.counts()

    @property
    def rejected_total(self) -> int:
        return self.cleaning.total

    @property
    def notes(self) -> list[str]:
        return list(self.cleaning.notes)

    @property
    def platforms(self) -> list[str]:
        return list(self.stored)

    def stored_total(self, kind: str) -> int:
        return sum(per[kind] for per in self.stored.values())

    @property
    def ok(self) -> bool:
        """False when nothing could be imported: no row read, or no row valid (rows already stored,
        i.e. rejected as `duplicate`, count as valid: importing a file twice is not a failure)."""
        if self.accepted > 0 or any(self.stored_total(k) for k in STORED_KINDS):
            return True
        return self.rejected.get(DUPLICATE, 0) > 0

    def to_dict(self) -> dict[str, Any]:
        cleaning = self.cleaning.to_dict()
        return {
            "platform": self.platform,
            "source": self.source,
            "format": self.format,
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "examples": cleaning["examples"],
            "notes": cleaning["notes"],
            "stored": {k: self.stored_total(k) for k in STORED_KINDS},
            "platforms": {p: dict(v) for p, v in self.stored.items()},
            "seconds": round(self.seconds, 3),
        }

    def render(self) -> str:
        """A plain-text summary for people (stderr)."""
        rate = f" ({self.read / self.seconds:,.0f} rows/s)" if self.seconds > 0 else ""
        lines = [
            f"import into platform {self.platform!r}" + (f" from {self.source}" if self.source else ""),
            f"  read {self.read:,} rows in {self.seconds:.1f} s{rate}: accepted {self.accepted:,}, "
            f"rejected {self.rejected_total:,}",
        ]
        for platform, per in self.stored.items():
            lines.append(f"  stored in {platform!r}: " + ", ".join(f"{per[k]:,} {k}" for k in STORED_KINDS))
        if self.rejected or self.notes:
            lines.extend("  " + line for line in self.cleaning.render().splitlines())
        return "\n".join(lines)
