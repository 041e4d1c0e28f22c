"""The source layer: vendor exports (Shopify, line-item retail files, ...) mapped onto the
export contract before the usual checks.

Each system is one folder under `systems/` (or under a folder given to `load_registry`):
a declarative `system.yaml` (its file layouts: header spellings, required columns, types
and formats, skip rules, value maps; and which contract tables it fills) plus, where a
reshape is needed, SQL files.  `detect` recognises each vendor file of an export by its
header row, `load` maps the files onto contract tables, `identity` makes one customer of
one person across systems.  docs/sources.md describes the format and every system.
"""

# pipelines.ingest imports this package's modules: load it first, so that whichever of
# the two is imported first, each module finds the other's names defined.
import pipelines.ingest  # noqa: F401, I001

from pipelines.sources.detect import VendorFile, detect
from pipelines.sources.identity import DEFAULT_EMAIL_SALT, MERGE_RULES
from pipelines.sources.load import SourceBatch, SystemCounts
from pipelines.sources.registry import SYSTEMS_DIR, Registry, load_registry
from pipelines.sources.spec import Layout, SourceSpecError, System, normalise_header

__all__ = [
    "DEFAULT_EMAIL_SALT",
    "MERGE_RULES",
    "SYSTEMS_DIR",
    "Layout",
    "Registry",
    "SourceBatch",
    "SourceSpecError",
    "System",
    "SystemCounts",
    "VendorFile",
    "detect",
    "load_registry",
    "normalise_header",
]
