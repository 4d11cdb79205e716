"""Committed expected results (tests/expected/): any number that moves fails here until
the files are regenerated on purpose with ``python tests/expected_results.py``."""
import pandas as pd
import pytest

from expected_results import CASES, EXPECTED, as_stored, path_of


@pytest.mark.parametrize("case", list(CASES))
def test_numbers_match_the_committed_expected_results(case):
    tables = CASES[case]()
    stored = sorted(p.name for p in EXPECTED.glob(f"{case}__*.csv"))
    assert stored == sorted(path_of(case, t).name for t in tables), "tables added or removed: regenerate"
    for table, df in tables.items():
        want = pd.read_csv(path_of(case, table))
        got = as_stored(df)
        # Exact for counts and text; floats to 1e-9 relative.
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=0, obj=f"{case}/{table}")
