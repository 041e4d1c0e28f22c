"""The known systems: every folder under `systems/` plus any folders given, and matching a
file's header row against all their layouts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipelines.sources.spec import SYSTEM_FILE, Layout, SourceSpecError, System, load_system

SYSTEMS_DIR = Path(__file__).resolve().parent / "systems"


@dataclass(frozen=True)
class Registry:
    systems: dict[str, System]

    @property
    def layouts(self) -> list[Layout]:
        return [
            layout
            for name in sorted(self.systems)
            for layout in self.systems[name].layouts.values()
        ]

    def layout(self, key: str) -> Layout | None:
        system, _, name = key.partition("/")
        found = self.systems.get(system)
        return None if found is None else found.layouts.get(name)

    def matches(self, headers: list[str]) -> list[Layout]:
        """The layouts the header fits best: every required column present, then the most
        of the layout's columns present, then the most required columns (several: a tie)."""
        fitting = [
            (len(lay.column_for(headers)), sum(c.required for c in lay.columns), lay)
            for lay in self.layouts
            if not lay.missing(headers)
        ]
        if not fitting:
            return []
        best = max((present, required) for present, required, _ in fitting)
        return [lay for present, required, lay in fitting if (present, required) == best]

    def closest(self, headers: list[str]) -> tuple[Layout, list[str]] | None:
        """The layout the header comes nearest to (largest share of its required columns
        present, then most columns present) and the headers it lacks."""
        scored = []
        for lay in self.layouts:
            required = [c for c in lay.columns if c.required]
            missing = lay.missing(headers)
            share = (len(required) - len(missing)) / len(required)
            scored.append((-share, -len(lay.column_for(headers)), lay.key, lay, missing))
        if not scored:
            return None
        best = min(scored, key=lambda s: s[:3])
        return best[3], best[4]


def _system_folders(root: Path) -> list[Path]:
    """A system folder itself, or a folder of system folders."""
    if (root / SYSTEM_FILE).is_file():
        return [root]
    if not root.is_dir():
        raise SourceSpecError(f"source systems folder {root} does not exist")
    return sorted(p for p in root.iterdir() if (p / SYSTEM_FILE).is_file())


@lru_cache(maxsize=8)
def _load(roots: tuple[Path, ...]) -> Registry:
    systems: dict[str, System] = {}
    for root in roots:
        for folder in _system_folders(root):
            system = load_system(folder)
            if system.name in systems:
                raise SourceSpecError(
                    f"source system {system.name!r} defined twice: "
                    f"{systems[system.name].path} and {folder}"
                )
            systems[system.name] = system
    return Registry(systems)


def load_registry(extra_dirs: Iterable[Path | str] = ()) -> Registry:
    """The package's systems plus those under `extra_dirs` (each a system folder or a
    folder of them): adding a system is adding a folder, nothing else."""
    roots = (SYSTEMS_DIR, *(Path(d).resolve() for d in extra_dirs))
    return _load(roots)
