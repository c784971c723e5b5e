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
    - events_read: event records among the rows (a row of some formats, e.g. an OTTO session, holds many)
    - stored: per platform, events inserted, and users / items stored: created (also those that events merely
      mention: bare rows) or rewritten from a record; `created` / `updated` split the users and items into new
      rows and existing rows rewritten
    """

    platform: str
    source: str | None = None
    format: str | None = None
    read: int = 0
    accepted: int = 0
    cleaning: CleaningReport = field(default_factory=CleaningReport)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)
    created: dict[str, dict[str, int]] = field(default_factory=dict)
    updated: dict[str, dict[str, int]] = field(default_factory=dict)
    events_read: int = 0
    seconds: float = 0.0

    # ------------------------------------------------------------------ updates
    def reject(self, rejected: Rejected) -> None:
        self.cleaning.reject(rejected)

    def note(self, text: str) -> None:
        self.cleaning.note(text)

    def add_stored(self, platform: str, kind: str, count: int, *, created: int | None = None,
                   updated: int = 0) -> None:
        """`count` rows of `kind` stored in `platform`; for users / items, `created` of them new (default: all)
        and `updated` existing rows rewritten."""
        per = self.stored.setdefault(platform, dict.fromkeys(STORED_KINDS, 0))
        per[kind] += count
        if kind != "events":
            self.created.setdefault(platform, {"items": 0, "users": 0})[kind] += count if created is None else created
            self.updated.setdefault(platform, {"items": 0, "users": 0})[kind] += updated

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

    def created_total(self, kind: str) -> int:
        return sum(per[kind] for per in self.created.values())

    def updated_total(self, kind: str) -> int:
        return sum(per[kind] for per in self.updated.values())

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
            "events_read": self.events_read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "examples": cleaning["examples"],
            "notes": cleaning["notes"],
            "stored": {k: self.stored_total(k) for k in STORED_KINDS},
            "created": {k: self.created_total(k) for k in ("items", "users")},
            "updated": {k: self.updated_total(k) for k in ("items", "users")},
            "platforms": {p: dict(v) for p, v in self.stored.items()},
            "seconds": round(self.seconds, 3),
        }

    def render(self) -> str:
        """A plain-text summary for people (stderr)."""
        rate = f" ({self.read / self.seconds:,.0f} rows/s)" if self.seconds > 0 else ""
        holding = f" holding {self.events_read:,} events" if self.events_read > self.read else ""
        lines = [
            f"import into platform {self.platform!r}" + (f" from {self.source}" if self.source else ""),
            f"  read {self.read:,} rows{holding} in {self.seconds:.1f} s{rate}: accepted {self.accepted:,} rows, "
            f"rejected {self.rejected_total:,}",
        ]
        for platform, per in self.stored.items():
            new = self.created.get(platform, {})
            upd = self.updated.get(platform, {})
            parts = [f"{per['events']:,} events"]
            for kind in ("users", "items"):
                part = f"{new.get(kind, per[kind]):,} new {kind}"
                if upd.get(kind):
                    part += f" (+{upd[kind]:,} updated)"
                parts.append(part)
            lines.append(f"  stored in {platform!r}: " + ", ".join(parts))
        if self.rejected or self.notes:
            lines.extend("  " + line for line in self.cleaning.render().splitlines())
        return "\n".join(lines)
