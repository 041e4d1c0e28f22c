"""The two SQL dialects a check's frame is selected in: DuckDB (the store) and Spark SQL.

The frames and the compact selection (frames.py, compact.py) are written once; what differs
between the engines is only how a name or a string is quoted, the name of the string type
and how a whole value is matched against a regex.  Each dialect says that here, so a rule
added to the selection is added for both engines at once.
"""

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.sql import quote_ident, sql_literal


@dataclass(frozen=True)
class Dialect:
    """What the shared SQL of a check's frame needs to know about one engine."""

    name: str
    quote: Callable[[str], str]  # an identifier
    literal: Callable[[str], str]  # a string literal
    string_type: str  # CAST(... AS <string_type>)
    full_match: Callable[[str, str], str]  # (value SQL, regex) -> SQL: the whole value matches


def _spark_quote(name: str) -> str:
    """Spark SQL quotes identifiers with backticks (a double quote is a string there)."""
    return "`" + name.replace("`", "``") + "`"


def _spark_literal(text: str) -> str:
    """Spark SQL string literals treat a backslash as an escape (`'\\d'` would be `d`), so
    backslashes and quotes are escaped; DuckDB's literals have no escapes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _spark_full_match(value: str, regex: str) -> str:
    """RLIKE is a Java regex *search*; anchored with `^(?:...)\\z` it matches the whole value,
    as DuckDB's RE2 `regexp_full_match` does.  `\\z` rather than `$`: Java's `$` also matches
    before a final line break, RE2's (and `\\z`) only at the very end.  Where Java's syntax is
    stricter than RE2's (`.` also stops at `\\r`), more values count as mismatches: the
    selection stays a superset of the rows GX fails (the suites' one regex, `^[A-Z]{3}$`,
    means the same in both)."""
    anchored = "^(?:" + regex + r")\z"
    return f"({value} RLIKE {_spark_literal(anchored)})"


DUCKDB = Dialect(
    name="duckdb",
    quote=quote_ident,
    literal=sql_literal,
    string_type="VARCHAR",
    full_match=lambda value, regex: f"regexp_full_match({value}, {sql_literal(regex)})",
)
SPARK = Dialect(
    name="spark",
    quote=_spark_quote,
    literal=_spark_literal,
    string_type="STRING",
    full_match=_spark_full_match,
)
