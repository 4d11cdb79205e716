"""Bad inputs and faults, answered in one line, with nothing lost (issue 13).

A corpus of hostile but realistic inputs, one or more per class (encodings, values the
schema would let through, the output side, messages). Each case runs the ``lab`` command
against a folder that holds a previous good output and asserts: the exit code, no
traceback, one line naming the file (or option), the field, the rule and the value, and
the sha256 of every file of the previous output unchanged. Property tests feed random
bytes and random YAML to the loaders; fault tests kill a run at each step of writing and
find the old or the new output whole under its name.
"""
from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import LabError
from common.files import atomic_dir, output_lock, read_yaml
from common.paths import ROOT
from lab.cli import main
from sim.scenario import Scenario, build_scenario, load_policies, load_scenario

PY = sys.executable
SMALL = "name: small\ncalendar:\n  horizon_days: 21\n  warmup_days: 7\narrivals:\n  leads_per_week: 120\n"


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (following the output's name)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A folder with a small scenario and a previous good output of it."""
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "small.yaml").write_text(SMALL)
    out = root / "out"
    assert main(["simulate", str(root / "small.yaml"), "-r", "1", "--no-tables", "--out", str(out)]) == 0
    return root, out, digest(out)


def lab(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def one_line(err: str) -> str:
    """The message: the last non-progress line of stderr, which must be the only error."""
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def expect(code, err, rc, *parts):
    assert code == rc, err
    line = one_line(err)
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"
    assert "np.int64" not in line and "np.float64" not in line
    return line


# ---- the corpus: (file name, content bytes, extra args, parts of the message) -------------
BAD_SCENARIOS = [
    # encodings and files
    ("junk.yaml", bytes(np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8)), [],
     ["junk.yaml", "binary data", "0x"]),
    ("nul.yaml", b"name: x\x00\x00\x01\x02team: 3\n", [], ["nul.yaml", "binary data"]),
    ("bad-utf16.yaml", b"\xff\xfen\x00a\x00\x00\xd8", [], ["bad-utf16.yaml", "UTF-16", "byte"]),
    ("syntax.yaml", b"team:\n  sdrs: [4\n", [], ["syntax.yaml", "line", "column", "not valid YAML"]),
    ("tab.yaml", b"team:\n\tsdrs: 4\n", [], ["tab.yaml", "line 2", "not valid YAML"]),
    ("tag.yaml", b"team:\n  sdrs: !!float abc\n", [], ["tag.yaml", "not valid YAML"]),
    ("pyobj.yaml", b"team: !!python/object/apply:os.system ['true']\n", [], ["pyobj.yaml", "not valid YAML"]),
    ("empty.yaml", b"", [], ["empty.yaml", "is empty", "name: baseline"]),
    ("comments.yaml", b"# nothing here\n\n", [], ["comments.yaml", "is empty"]),
    ("list.yaml", b"- a\n- b\n", [], ["list.yaml", "mapping of fields", "list"]),
    # values the schema let through
    ("dup.yaml", b"team:\n  sdrs: 4\nteam:\n  sdrs: 5\n", [], ["dup.yaml", "line 3", "'team'", "twice", "rule"]),
    ("dupdeep.yaml", b"team:\n  sdrs: 4\n  sdrs: 9\n", [], ["dupdeep.yaml", "line 3", "'sdrs'", "twice"]),
    ("inf.yaml", b"arrivals:\n  leads_per_week: .inf\n", [], ["inf.yaml", "arrivals.leads_per_week", "finite", "inf"]),
    ("nan.yaml", b"sla:\n  mql_minutes: .nan\n", [], ["nan.yaml", "sla.mql_minutes", "finite", "nan"]),
    ("ninf.yaml", b"scoring:\n  mql: -.inf\n", [], ["ninf.yaml", "scoring.mql", "finite", "-inf"]),
    ("date.yaml", b"calendar:\n  start_date: 2026-02-30\n", [], ["date.yaml", "calendar.start_date", "valid date", "2026-02-30"]),
    ("holiday.yaml", b"calendar:\n  holidays: [2026-13-01]\n", [], ["holiday.yaml", "calendar.holidays.0", "2026-13-01"]),
    ("huge.yaml", b"arrivals:\n  leads_per_week: 1e9\n", [],
     ["huge.yaml", "arrivals.leads_per_week", "memory", "available", "1e+09"]),
    ("big.yaml", b"arrivals:\n  leads_per_week: 1e7\n", [],
     ["big.yaml", "arrivals.leads_per_week", "GiB", "available", "1e+07"]),
    ("reentries.yaml", b"nurture:\n  max_reentries: 100000000\n", [],
     ["reentries.yaml", "nurture.max_reentries", "memory", "available", "100,000,000"]),
    ("huge-kept.yaml", b"arrivals:\n  leads_per_week: 1e9\n", None, ["huge-kept.yaml", "arrivals.leads_per_week", "1e+09"]),
    ("reps.yaml", b"replications: 1000000000000\n", None, ["reps.yaml", "replications", "memory", "available"]),
    ("negseed.yaml", b"seed: -1\n", [], ["negseed.yaml", "seed", "greater than or equal to 0", "-1"]),
    ("typo.yaml", b"team:\n  sdr: 4\n", [], ["typo.yaml", "team.sdr", "unknown field", "4"]),
    ("points.yaml", b"scoring:\n  points_table: nope/missing.yaml\n", [],
     ["points.yaml: scoring.points_table", "not found", "'nope/missing.yaml'"]),
    ("pointsdir.yaml", b"scoring:\n  points_table: data\n", [], ["pointsdir.yaml: scoring.points_table", "'data'"]),
]


@pytest.mark.parametrize("name,content,args,parts", BAD_SCENARIOS, ids=[c[0] for c in BAD_SCENARIOS])
def test_bad_scenario_file(good, capsys, name, content, args, parts):
    root, out, before = good
    path = root / name
    path.write_bytes(content)
    reps = ["-r", "1"] if args is not None else []  # None: the file's own replications
    code, err = lab(capsys, "simulate", path, *reps, "--no-tables", "--out", out, *(args or []))
    line = expect(code, err, 2, *parts)
    assert line.startswith(f"error: {path}") or line.startswith("error: --"), line
    assert digest(out) == before


BAD_OPTIONS = [
    (["--seed", "-3"], ["--seed", "non-negative", "-3"]),
    (["--seed", "x"], ["--seed", "integer", "'x'"]),
    (["-r", "x"], ["--replications", "integer", "'x'"]),
    (["-r", "0"], ["--replications", "at least 1", "0"]),
    (["--jobs", "0"], ["--jobs", "at least 1", "0"]),
    (["--set", "team.sdrs.extra=1"], ["--set team.sdrs.extra=1", "team.sdrs", "no field 'extra'"]),
    (["--set", "team.shifts.0.people=2"], ["--set team.shifts.0.people=2", "team.shifts", "'0'"]),
    (["--set", "team.size=3"], ["--set team.size=3", "team.size", "unknown field"]),
    (["--set", "team.sdrs=many"], ["--set team.sdrs=many", "team.sdrs", "valid integer", "'many'"]),
    (["--set", "sla.mql_minutes=.inf"], ["--set sla.mql_minutes=.inf", "sla.mql_minutes", "finite", "inf"]),
    (["--set", "arrivals.leads_per_week=1e12"], ["arrivals.leads_per_week", "memory", "1e+12"]),
    (["--set", "team.sdrs"], ["--set team.sdrs", "field.path=value"]),
    (["--set", "scoring.mql=0"], ["small.yaml: scoring", "hot >= mql >= nurture", "mql=0"]),
    (["--bogus", "1"], ["No such option", "--bogus"]),
]


@pytest.mark.parametrize("args,parts", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option(good, capsys, args, parts):
    root, out, before = good
    code, err = lab(capsys, "simulate", root / "small.yaml", "--no-tables", "--out", out, *args)
    expect(code, err, 2, *parts)
    assert digest(out) == before


def test_missing_and_folder_scenario(good, capsys):
    root, out, before = good
    code, err = lab(capsys, "simulate", root / "nope.yaml", "--out", out)
    expect(code, err, 2, "nope.yaml", "file not found")
    (root / "adir.yaml").mkdir(exist_ok=True)
    code, err = lab(capsys, "simulate", root / "adir.yaml", "--out", out)
    expect(code, err, 2, "adir.yaml", "is a folder")
    assert digest(out) == before


POLICIES = [
    ("p_empty.yaml", "", ["p_empty.yaml", "is empty"]),
    ("p_nobase.yaml", "base: missing.yaml\npolicies:\n  - name: a\n", ["p_nobase.yaml", "base", "'missing.yaml'"]),
    ("p_dup.yaml", "base: small.yaml\npolicies:\n  - name: a\npolicies: []\n", ["p_dup.yaml", "'policies'", "twice"]),
    ("p_inf.yaml", "base: small.yaml\npolicies:\n  - name: a\n    set: {sla.hot_minutes: .inf}\n",
     ["p_inf.yaml (policy 'a')", "sla.hot_minutes", "finite", "inf"]),
    ("p_deep.yaml", "base: small.yaml\npolicies:\n  - name: a\n    set: {team.sdrs.x: 1}\n",
     ["p_deep.yaml (policy 'a')", "team.sdrs", "no field 'x'"]),
    ("p_pts.yaml", "base: small.yaml\npolicies:\n  - name: a\n    set: {scoring.points_table: gone.csv}\n",
     ["p_pts.yaml (policy 'a'): scoring.points_table", "not found", "'gone.csv'"]),
]


@pytest.mark.parametrize("name,text,parts", POLICIES, ids=[p[0] for p in POLICIES])
def test_bad_policy_file(good, capsys, name, text, parts):
    root, out, before = good
    (root / name).write_text(text)
    code, err = lab(capsys, "sweep", root / name, "-r", "1", "--jobs", "1", "--out", out)
    expect(code, err, 2, *parts)
    assert digest(out) == before


# ---- encodings that are read, not refused ---------------------------------------------------
@pytest.mark.parametrize("encoding,bom", [
    ("latin-1", b""), ("cp1252", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""), ("utf-16-be", b""), ("utf-32-le", b"\xff\xfe\x00\x00"),
])
def test_encodings_are_read(tmp_path, encoding, bom):
    name = "Café Müller – Q4" if encoding == "cp1252" else "Café Müller"
    path = tmp_path / "s.yaml"
    path.write_bytes(bom + f"name: {name}\nteam:\n  sdrs: 4\n".encode(encoding))
    scn = load_scenario(path)
    assert (scn.name, scn.team.sdrs) == (name, 4)


def test_messages_show_plain_values():
    with pytest.raises(LabError) as err:
        build_scenario({"team": {"sdrs": np.int64(-2)}}, source="fitted.yaml")
    assert "got -2" in str(err.value) and "np." not in str(err.value)


# ---- notebooks -------------------------------------------------------------------------------
@pytest.mark.parametrize("params,parts", [
    (["-p", "replications", "-1"], ["replications", "at least 0", "'-1'"]),  # 0: the policy file's
    (["-p", "seed", "-1"], ["seed", "at least 0", "'-1'"]),
    (["-p", "n_jobs", "0"], ["n_jobs", "at least 1"]),
    (["-p", "horizon_days", "100000"], ["horizon_days", "at most 3660"]),
    (["-p", "replications", "many"], ["replications", "an integer", "'many'"]),
])
def test_notebook_parameters_out_of_range(tmp_path, capsys, params, parts):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "keep.html").write_text("good report")
    before = digest(reports)
    code, err = lab(capsys, "run", "03_sla_policies", "--out", reports, *params)
    expect(code, err, 2, "03_sla_policies.ipynb", *parts)
    assert digest(reports) == before


def test_notebook_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "reports"
    f.write_text("not a folder")
    code, err = lab(capsys, "run", "03_sla_policies", "--out", f)
    expect(code, err, 2, str(f), "is a file")
    assert f.read_text() == "not a folder"


# ---- the output side ---------------------------------------------------------------------------
def test_out_naming_a_file_is_refused_and_kept(good, capsys):
    root, _, _ = good
    f = root / "afile"
    f.write_text("precious")
    code, err = lab(capsys, "simulate", root / "small.yaml", "-r", "1", "--no-tables", "--out", f)
    expect(code, err, 2, str(f), "is a file", "rule")
    assert f.read_text() == "precious"
    assert not [p for p in root.iterdir() if p.name.startswith(".afile")]


def test_refit_out_naming_a_file_is_refused_before_the_fit(good, capsys, monkeypatch):
    """``lab refit --out FILE`` is refused before any work (the fit is never called)."""
    import calibration.refit

    root, _, _ = good
    f = root / "model_file"
    f.write_text("precious")
    monkeypatch.setattr(calibration.refit, "run_refit", lambda *a, **k: pytest.fail("the fit ran"))
    code, err = lab(capsys, "refit", root / "small.yaml", "--mapping", ROOT / "data" / "mappings" / "sim_leads.yaml",
                    "--out", f)
    expect(code, err, 2, str(f), "is a file", "rule")
    assert f.read_text() == "precious"


def test_unwritable_out_is_one_line(good, capsys):
    root, _, _ = good
    code, err = lab(capsys, "simulate", root / "small.yaml", "-r", "1", "--no-tables", "--out", "/proc/lab-out")
    expect(code, err, 2, "/proc/lab-out", "cannot write")


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_disk_errors_while_writing(good, capsys, monkeypatch, code_):
    root, out, before = good
    import sim.output as so

    real = so._write_table
    calls = []

    def fail_second(df, stem, meta):
        calls.append(stem)
        if len(calls) == 2:
            raise OSError(code_, os.strerror(code_), str(stem) + ".parquet")
        return real(df, stem, meta)

    monkeypatch.setattr(so, "_write_table", fail_second)
    code, err = lab(capsys, "simulate", root / "small.yaml", "-r", "1", "--no-tables", "--out", out)
    expect(code, err, 2, str(out), "cannot write", errno.errorcode[code_], "unchanged")
    assert digest(out) == before
    assert not [p for p in root.iterdir() if p.name.startswith(".out.")]


def test_failure_at_the_swap_keeps_the_old_output(good, capsys, monkeypatch):
    root, out, before = good
    import common.files as cf

    def refuse(a, b):
        raise OSError(errno.EIO, "Input/output error", str(b))

    monkeypatch.setattr(cf, "_exchange", refuse)
    code, err = lab(capsys, "simulate", root / "small.yaml", "-r", "1", "--no-tables", "--out", out)
    expect(code, err, 2, str(out), "EIO")
    assert digest(out) == before
    assert not [p for p in root.iterdir() if p.name.startswith(".out.")]


def test_interrupt_is_one_line_and_keeps_the_output(good, capsys, monkeypatch):
    root, out, before = good
    import sim.experiment as ex

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "_execute", interrupted)
    code, err = lab(capsys, "simulate", root / "small.yaml", "-r", "1", "--no-tables", "--out", out)
    expect(code, err, 130, "interrupted", "SIGINT")
    assert digest(out) == before


def test_sigterm_in_a_real_run(good):
    root, out, before = good
    proc = subprocess.Popen([str(Path(PY).with_name("lab")), "simulate", str(root / "small.yaml"), "-r", "400",
                             "--no-tables", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    line = one_line(err)
    assert "interrupted by SIGTERM" in line
    assert digest(out) == before
    assert not [p for p in root.iterdir() if p.name.startswith(".out.")]


def test_second_run_on_the_same_out_is_refused(good, capsys):
    root, out, before = good
    holder = subprocess.Popen([PY, "-c", textwrap.dedent(f"""
        import sys, time
        from common.files import output_lock
        with output_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = lab(capsys, "simulate", root / "small.yaml", "-r", "1", "--no-tables", "--out", out)
        expect(code, err, 2, str(out), "another run", f"process {holder.pid}", "one run per output")
    finally:
        holder.kill()
        holder.wait()
    assert digest(out) == before


def test_lock_is_reentrant_and_released(tmp_path):
    with output_lock(tmp_path / "o"):
        with output_lock(tmp_path / "o"):
            pass
        with atomic_dir(tmp_path / "o") as tmp:
            (tmp / "a").write_text("1")
    with output_lock(tmp_path / "o"):
        pass
    assert (tmp_path / "o" / "a").read_text() == "1"


def test_stale_parts_of_dead_runs_are_cleaned(tmp_path):
    out = tmp_path / "o"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("old")
    stale = tmp_path / ".o.0123456789ab.part"
    stale.mkdir()
    (stale / "half").write_text("x")
    legacy = tmp_path / ".o.old-12345"
    legacy.mkdir()
    other = tmp_path / ".o.b.0123456789ab.part"  # another output's work folder: not ours
    other.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o.b.0123456789ab.part", "o"]
    assert (out / "a").read_text() == "new"


# ---- fault tests: a run killed at each step of writing ------------------------------------------
KILL_SCRIPT = """
import os, signal, sys
import common.files as cf
out, step = sys.argv[1], sys.argv[2]
real = cf._exchange
def exchange(a, b):
    if step == "before-swap":
        os.kill(os.getpid(), signal.SIGKILL)
    done = real(a, b)
    if step == "after-swap":
        os.kill(os.getpid(), signal.SIGKILL)
    return done
cf._exchange = exchange
with cf.atomic_dir(out) as tmp:
    for i in range(20):
        (tmp / f"f{i}.txt").write_text(f"new {i}\\n" * 1000)
        if step == "during" and i == 10:
            os.kill(os.getpid(), signal.SIGKILL)
"""


def _whole(folder: Path) -> str:
    """'old' or 'new' when the folder holds one complete output, else fail."""
    texts = {p.name: p.read_text() for p in folder.iterdir()}
    assert sorted(texts) == sorted(f"f{i}.txt" for i in range(20)), sorted(texts)
    kind = texts["f0.txt"].split()[0]
    assert all(t == f"{kind} {n[1:-4]}\n" * 1000 for n, t in texts.items())
    return kind


@pytest.mark.parametrize("step,expected", [("before-swap", "old"), ("during", "old"), ("after-swap", "new")])
def test_sigkill_at_each_step_of_writing(tmp_path, step, expected):
    out = tmp_path / "o"
    with atomic_dir(out) as tmp:
        for i in range(20):
            (tmp / f"f{i}.txt").write_text(f"old {i}\n" * 1000)
    r = subprocess.run([PY, "-c", KILL_SCRIPT, str(out), step], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert _whole(out) == expected
    # the next run cleans what the killed one left, and writes whole
    with atomic_dir(out) as tmp:
        for i in range(20):
            (tmp / f"f{i}.txt").write_text(f"new {i}\n" * 1000)
    assert _whole(out) == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["o"]


@pytest.mark.parametrize("where", ["body", "swap"])
def test_exception_at_each_step_keeps_old(tmp_path, monkeypatch, where):
    import common.files as cf

    out = tmp_path / "o"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("old")
    if where == "swap":
        monkeypatch.setattr(cf, "_exchange", lambda a, b: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "a").write_text("new")
            if where == "body":
                raise KeyboardInterrupt
    assert (out / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["o"]


def test_refit_artifact_is_written_whole(tmp_path, monkeypatch):
    from calibration.artifact import write_artifact
    from sim.scoring import seed_table

    out = tmp_path / "model"
    write_artifact(out, seed_table(), {"name": "q1"}, {}, {})
    before = digest(out)

    def boom(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(type(seed_table()), "save", boom)
    with pytest.raises(LabError, match=r"model: cannot write the output: no space left on device \(ENOSPC\)"):
        write_artifact(out, seed_table(), {"name": "q2"}, {}, {})
    assert digest(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# ---- property tests: random bytes and random YAML to the loaders -------------------------------
PROP = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@PROP
@given(st.binary(max_size=400))
def test_random_bytes_to_read_yaml(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("rb") / "s.yaml"
    path.write_bytes(data)
    try:
        read_yaml(path)
    except LabError as exc:
        assert str(path) in str(exc)


@PROP
@given(st.binary(max_size=400))
def test_random_bytes_to_load_scenario(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("rs") / "s.yaml"
    path.write_bytes(data)
    try:
        assert isinstance(load_scenario(path), Scenario)
    except LabError as exc:
        assert str(exc).startswith(str(path))


_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                     st.dates().map(str), st.sampled_from(["2026-02-30", ".inf", "-.nan", "1e400", "~", "0x1F"]))
_docs = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
_FIELDS = ["name", "seed", "replications", "calendar.horizon_days", "calendar.warmup_days", "calendar.start_date",
           "calendar.timezone", "calendar.holidays", "arrivals.leads_per_week", "arrivals.profile",
           "arrivals.channels", "team.sdrs", "team.shifts", "team.max_attempts", "team.attempt_gaps_minutes",
           "team.handling_time", "team.handling_time.cv", "routing.policy", "sla.mql_minutes", "sla.clock",
           "scoring.points_table", "scoring.mql", "decay.contact", "decay.qualification.alpha",
           "conversion.win_prob", "conversion.contact_prob.hot", "nurture.max_reentries", "economics"]


@PROP
@given(st.dictionaries(st.sampled_from(_FIELDS), _docs, min_size=1, max_size=4))
def test_random_values_in_a_scenario(tmp_path_factory, fields):
    doc = {}
    for key, value in fields.items():
        node = doc
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = value
    path = tmp_path_factory.mktemp("rv") / "s.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        scn = load_scenario(path)
    except LabError as exc:
        assert str(exc).startswith(str(path)) and "np." not in str(exc)
        return
    assert isinstance(scn, Scenario)


@PROP
@given(st.lists(st.sampled_from(_FIELDS).flatmap(
    lambda k: st.tuples(st.just(k), st.sampled_from(["", ".x", ".0"]), _scalars.map(lambda v: yaml.safe_dump(v).strip()))),
    min_size=1, max_size=3))
def test_random_overrides(good, overrides):
    root, _, _ = good
    sets = [f"{k}{suffix}={v.splitlines()[0] if v else ''}" for k, suffix, v in overrides]
    try:
        assert isinstance(load_scenario(root / "small.yaml", sets), Scenario)
    except LabError as exc:
        assert str(exc).startswith(("--set ", str(root / "small.yaml"))), str(exc)


@PROP
@given(_docs)
def test_random_policy_files(tmp_path_factory, doc):
    folder = tmp_path_factory.mktemp("rp")
    (folder / "small.yaml").write_text(SMALL)
    if isinstance(doc, dict):
        doc.setdefault("base", "small.yaml")
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        _, scenarios = load_policies(path)
    except LabError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(s, Scenario) for s in scenarios.values())
