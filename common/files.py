"""Files every part of the lab writes and reads: atomic writes (a failed run never leaves
a half-written file or folder in place of a good one), YAML reading with the line and
column of a syntax error, and provenance (code version, time stamp) for every output.

Writing an output folder (``atomic_dir``): the run holds a lock on the output name for
its whole length (``output_lock``; a second run on the same name is refused), builds
the folder beside it as ``.<name>.<token>.part`` and swaps it in with one atomic
exchange rename (Linux ``renameat2(RENAME_EXCHANGE)``), so the name always holds either
the whole previous output or the whole new one, even if the process is killed at any
instant. Work folders of killed runs are removed by the next run on that name.

Reading YAML (``read_yaml``): UTF-8 (with or without BOM), UTF-16/32 with a BOM or
without one, else Windows-1252 / Latin-1; binary data is refused; a key given twice in
one mapping is an error (YAML would let the last one win silently); an impossible date
such as 2026-02-30 stays text, so the schema names the field that holds it.
"""
from __future__ import annotations

import codecs
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml

from common import __version__
from common.errors import LabError
from common.paths import ROOT


def code_version() -> str:
    """Package version plus git commit (and '+dirty' when the tree has changes)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    return f"{__version__}+{sha}{'.dirty' if dirty else ''}" if sha else __version__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def os_problem(exc: OSError) -> str:
    """``[Errno 28] No space left on device`` -> ``no space left on device (ENOSPC)``."""
    name = errno.errorcode.get(exc.errno or 0, "")
    what = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    what = what[:1].lower() + what[1:]
    return f"{what} ({name})" if name else what


def _write_error(path: Path, exc: OSError, previous: str = "") -> LabError:
    where = f" at {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
    return LabError(f"{path}: cannot write the output: {os_problem(exc)}{where}{previous}")


def check_output_file(path: str | Path) -> Path:
    """Refuse an output file name that is a folder (before a long run, not after)."""
    path = Path(path)
    if path.is_dir():
        raise LabError(f"{path}: is a folder, not a file (rule: this output is one file; "
                       f"choose a file name or remove the folder)")
    return path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; move it into place only on success.

    Errors of the disk (full, read-only, no permission) become one ``LabError`` naming
    the file; the previous file stays as it was."""
    path = check_output_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for sharing
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc, "; the previous file (if any) is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


# ---- output folders: lock, build aside, exchange ---------------------------------------
try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

_HELD: dict[str, int] = {}  # lock files this process holds -> their descriptors
_TOKEN = r"[0-9a-f]{12}"


def _lock_file(path: Path) -> Path:
    """Where the lock of output ``path`` lives: in the temporary folder, named by a hash
    of the absolute path, so that nothing is added beside the output."""
    key = hashlib.sha256(str(path.parent.resolve() / path.name).encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / "smarketing-lab-locks"
    folder.mkdir(exist_ok=True)
    try:
        os.chmod(folder, 0o1777)  # shared by every user, like /tmp
    except OSError:
        pass
    return folder / f"{key}.lock"


def check_output_dir(path: str | Path) -> Path:
    """The folder an output is written to; refuses a name that holds a file."""
    path = Path(path)
    if path.is_symlink() and path.exists():
        path = path.resolve()  # a link the user made: write where it points
    if path.exists() and not path.is_dir():
        raise LabError(f"{path}: exists and is a file, not an output folder (rule: --out names a folder "
                       f"the lab writes; choose another name or remove the file)")
    return path


@contextmanager
def output_lock(path: str | Path):
    """Hold the lock of output ``path`` (re-entrant within a process). A second run on
    the same output, in any process, is refused with the first one's process id."""
    path = check_output_dir(path)
    if fcntl is None:  # pragma: no cover
        yield path
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock_file(path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    key = str(lock)
    if key in _HELD:
        yield path
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise LabError(f"{path}: another run (process {holder}) is writing this output now (rule: one run "
                       f"per output at a time); wait for it to finish or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass
    probe = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:  # can the output be written at all? Say so now, not after a long run
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        os.close(fd)
        raise _write_error(path, exc) from None
    _HELD[key] = fd
    try:
        yield path
    finally:
        del _HELD[key]
        os.close(fd)  # releases the lock


def _clean_stale(path: Path) -> list[Path]:
    """Remove work folders of earlier runs on ``path`` that were killed (the caller holds
    the lock, so no live run owns them)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:{_TOKEN}\.part|old-\d+)$")
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        if pattern.match(p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


_RENAME_EXCHANGE = 2
_renameat2 = []


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False
    where the system or file system cannot."""
    if not _renameat2:
        fn = None
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        except (OSError, AttributeError):
            fn = None
        _renameat2.append(fn)
    fn = _renameat2[0]
    if fn is None:
        return False
    import ctypes

    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, path: Path) -> Path | None:
    """Put the complete folder ``tmp`` at ``path``; returns where the previous output
    went (to delete), if there was one. The name is never left empty where the system
    can exchange names; elsewhere it is empty between two renames."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return None
    if _exchange(tmp, path):
        return tmp  # tmp now holds the previous output
    aside = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, aside)
    os.replace(tmp, path)
    return aside


@contextmanager
def atomic_dir(path: str | Path):
    """Build a directory under a temporary name; swap it in only when complete.

    The previous directory (if any) stays in place until the new one is whole, and the
    swap is one exchange of names. The output is locked for the duration (see
    ``output_lock``); a disk error becomes one ``LabError``."""
    with output_lock(path) as path:
        _clean_stale(path)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        try:
            tmp.mkdir(mode=0o777)
            os.chmod(tmp, 0o777 & ~_umask())
        except OSError as exc:
            raise _write_error(path, exc) from None
        try:
            yield tmp
            old = _swap_in(tmp, path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _write_error(path, exc, "; the previous output (if any) is unchanged") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---- reading YAML ----------------------------------------------------------------------
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = set(range(0, 9)) | {11, 12} | set(range(14, 32)) | {127}


def decode_text(data: bytes, source: str | Path) -> tuple[str, str]:
    """Text of a file and the encoding it was read in: a BOM says which (UTF-8, UTF-16,
    UTF-32); else UTF-16 without BOM when every other byte is zero; else UTF-8; else
    Windows-1252 (Excel's "CSV" on Windows), else Latin-1. Binary data is refused."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as exc:
                raise LabError(f"{source}: starts with a {enc.upper()} byte-order mark but is not valid "
                               f"{enc.upper()} at byte {exc.start} (rule: a text file in one encoding)") from None
    if b"\x00" in data and len(data) >= 2:
        even, odd = data[0::2], data[1::2]
        for enc, zeros in (("utf-16-le", odd), ("utf-16-be", even)):
            if zeros.count(0) >= 0.9 * len(zeros) and len(data) % 2 == 0:
                try:
                    return data.decode(enc), enc
                except UnicodeDecodeError:
                    break
    controls = [i for i, b in enumerate(data) if b in _CONTROL]
    if controls and (b"\x00" in data or len(controls) > 0.02 * len(data)):
        i = controls[0]
        raise LabError(f"{source}: binary data, not a text file (found {len(controls)} control bytes in "
                       f"{len(data)}, the first 0x{data[i]:02x} at byte {i}; rule: a text file in UTF-8, "
                       f"UTF-16 or Latin-1/Windows-1252)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


class _Duplicate(Exception):
    def __init__(self, key, mark, first):
        super().__init__(key)
        self.key, self.mark, self.first = key, mark, first


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping and keeps an
    impossible date (2026-02-30) as text for the schema to refuse by field."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # unhashable: the constructor says so below
                    continue
                if first is not key_node.start_mark:
                    raise _Duplicate(key, key_node.start_mark, first)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def read_yaml(path: str | Path, allow_empty: bool = True, what: str = "file"):
    """A YAML file's content (a dict for a mapping; ``{}`` when empty); a missing file,
    a folder, binary data, a syntax error or a repeated key is a ``LabError`` naming the
    file, line and column.

    Parameters
    ----------
    allow_empty : an empty file (or only comments) is an error when False.
    what : what the file is, for messages ("scenario file", "mapping file").
    """
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path}: file not found")
    if path.is_dir():
        raise LabError(f"{path}: is a folder, not a YAML {what} (rule: give the path of a .yaml file)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabError(f"{path}: cannot read the {what}: {os_problem(exc)}") from None
    text, _ = decode_text(data, path)
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except _Duplicate as dup:
        raise LabError(f"{path}: line {dup.mark.line + 1}, column {dup.mark.column + 1}: key {dup.key!r} "
                       f"given twice in one mapping (rule: each key once; the first is at line "
                       f"{dup.first.line + 1}); got {dup.key!r} again") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LabError(f"{path}:{where} not valid YAML ({problem})") from None
    except RecursionError:
        raise LabError(f"{path}: not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. !!float "abc", !!int "x"
        raise LabError(f"{path}: not valid YAML ({type(exc).__name__}: {str(exc)[:120]})") from None
    if doc is None or doc == {}:
        if not allow_empty:
            raise LabError(f"{path}: the {what} is empty (rule: it sets at least one field; write "
                           f"'name: baseline' to run the defaults on purpose)")
        return {}
    return doc or {}
