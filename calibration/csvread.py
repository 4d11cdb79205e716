"""Reading a CSV as CRMs and spreadsheets write it: any common encoding and dialect.

Accepted (detected from the bytes, no setting needed):

- encodings: UTF-8 (with or without a byte-order mark), UTF-16 LE/BE (with a BOM, as
  Excel's "Unicode text" writes, or without one when every other byte is NUL), and
  Windows-1252 / Latin-1 when the bytes are not valid UTF-8 (European Excel exports);
- dialects: comma, semicolon, tab or pipe delimiter; double-quoted fields; with a
  semicolon delimiter, decimal commas (``1.234,56`` or ``12,5``) are read as numbers.

Anything else (an Excel workbook saved as ``.csv``, a file whose rows do not split into
the header's columns) is refused in one line naming what was found. A plain UTF-8,
comma-separated file takes the fast multi-threaded path (pyarrow), unchanged.
"""
from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.errors import LabError

SNIFF_BYTES = 1 << 16
DELIMITERS = ",;\t|"
_DECIMAL_COMMA = re.compile(r"^-?\d{1,3}(?:\.\d{3})*,\d+$|^-?\d+,\d+$")


@dataclass(frozen=True)
class Dialect:
    """What the reader found: encoding, delimiter and decimal mark."""

    encoding: str
    delimiter: str
    decimal: str

    def describe(self) -> str:
        name = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(self.delimiter, repr(self.delimiter))
        return f"{self.encoding}, {name}-separated, decimal {self.decimal!r}"


def detect_encoding(head: bytes) -> str:
    """The encoding of a file from its first bytes (see the module docstring)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniffing window
            return "utf-8"
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def sniff(path: str | Path) -> tuple[Dialect, str]:
    """The dialect of a CSV file and its first decoded text (for messages)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(b"PK\x03\x04"):
        raise LabError(f"{path}: cannot read as CSV: found a zip archive (an Excel .xlsx workbook?); "
                       "save it as CSV (UTF-8) and try again")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise LabError(f"{path}: cannot read as CSV: found an old Excel .xls workbook; save it as CSV (UTF-8)")
    enc = detect_encoding(head)
    if enc == "utf-8":
        try:  # the whole file must be UTF-8, not only its head
            with open(path, encoding="utf-8") as fh:
                for _ in fh:
                    pass
        except UnicodeDecodeError:
            enc = "cp1252"
            try:
                path.read_bytes().decode("cp1252")
            except UnicodeDecodeError:
                enc = "latin-1"
    text = head.decode(enc if enc != "utf-16" else "utf-16", errors="ignore")
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    sample = "\n".join(lines[:50])
    first = lines[0] if lines else ""
    counts = {d: first.count(d) for d in DELIMITERS}
    try:
        delim = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
        if counts.get(delim, 0) == 0:
            raise csv.Error
    except csv.Error:
        delim = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    decimal = "."
    if delim == ";":
        fields = [f.strip().strip('"') for ln in lines[1:50] for f in ln.split(";")]
        if any(_DECIMAL_COMMA.match(f) for f in fields):
            decimal = ","
    return Dialect(enc, delim, decimal), sample


def read_csv_any(path: str | Path, na_values=None) -> tuple[pd.DataFrame, Dialect]:
    """Read a CSV in any accepted encoding and dialect; refuse anything else in one line."""
    path = Path(path)
    if path.suffix.lower() == ".gz":
        return pd.read_csv(path, low_memory=False, na_values=na_values), Dialect("utf-8", ",", ".")
    dialect, sample = sniff(path)
    if dialect.encoding == "utf-8" and dialect.delimiter == "," and dialect.decimal == ".":
        # The pyarrow parser is multi-threaded and reads ISO timestamps natively.
        try:
            return pd.read_csv(path, engine="pyarrow", na_values=na_values), dialect
        except pd.errors.EmptyDataError:
            raise
        except Exception:  # anything pyarrow cannot read, the C parser may
            pass
    kw = dict(sep=dialect.delimiter, encoding=dialect.encoding, decimal=dialect.decimal, low_memory=False,
              na_values=na_values)
    if dialect.decimal == ",":
        kw["thousands"] = "."
    try:
        df = pd.read_csv(path, **kw)
    except pd.errors.ParserError as exc:
        raise LabError(f"{path}: cannot read as CSV ({dialect.describe()}): {str(exc).strip()}; "
                       "check the delimiter and quoting") from None
    if df.shape[1] == 1 and any(d in str(df.columns[0]) for d in DELIMITERS if d != dialect.delimiter):
        raise LabError(f"{path}: cannot read as CSV: found one column {str(df.columns[0])[:60]!r} "
                       f"({dialect.describe()}); the delimiter is not one of comma, semicolon, tab or pipe")
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    return df, dialect


def read_text_sample(path: str | Path, n: int = 5) -> str:
    """The first ``n`` lines as decoded text (for messages and tests)."""
    _, sample = sniff(path)
    return "\n".join(sample.splitlines()[:n])


__all__ = ["Dialect", "detect_encoding", "read_csv_any", "sniff", "read_text_sample"]
