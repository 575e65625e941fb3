"""A finding of a check: one problem (error) or doubt (warning), with the key it concerns and its fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One problem (error) or doubt (warning) about the values."""

    severity: str
    key: str
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.severity:<7} {self.key}: {self.message}; fix: {self.fix}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
