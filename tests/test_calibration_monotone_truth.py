"""Ground truth with monotone weights (``calibration.synthetic.make_monotone_export``): the
recovered table is monotone in every count and ordinal criterion and keeps the order of
every pair of levels whose true points differ by 10 or more."""
import itertools

import numpy as np
import pandas as pd
import pytest

from calibration.model import LeadScoringModel
from calibration.points import points_table_from_model
from calibration.synthetic import MONOTONE_TRUTH, make_monotone_export, true_points

FEATURES = ["employee_count", "demo_requests", "pricing_page_visits", "content_downloads", "web_visits",
            "seniority", "industry_fit", "region_fit"]


@pytest.fixture(scope="module")
def recovered():
    df = make_monotone_export(60_000, seed=2)
    y = (df["outcome"] == "won").to_numpy().astype(int)
    model = LeadScoringModel(numeric=FEATURES[:5], categorical=FEATURES[5:]).fit(df[FEATURES], y)
    table, info = points_table_from_model(model)
    return table, info


def test_recovered_table_is_monotone(recovered):
    table, _ = recovered
    from sim.scoring import parse_range
    for crit in FEATURES[:5]:
        if crit not in table.criteria:
            continue
        rows = table.rows[table.rows.criterion == crit]
        rng = sorted((parse_range(v), p) for v, p in zip(rows["value"], rows["points"]) if parse_range(v))
        assert (np.diff([p for _, p in rng]) >= 0).all(), rows


def test_ordinal_categories_never_lose_points_along_their_order(recovered):
    """Seniority's points do not fall from individual to c_level (tied neighbours share
    one weight), and the refit is free to give steps where the data shows them."""
    from calibration.model import ORDINAL

    table, _ = recovered
    rows = table.rows[table.rows.criterion == "seniority"].set_index("value")["points"]
    pts = [rows[v] for v in ORDINAL["seniority"] if v in rows.index]
    assert len(pts) == 5
    assert (np.diff(pts) >= 0).all(), rows
    assert pts[-1] > pts[0]


def test_a_falling_ordinal_neighbour_pair_is_tied():
    """When the data make vp convert better than c_level, the two share one weight."""
    rng = np.random.default_rng(4)
    n = 40_000
    sen = rng.choice(["individual", "manager", "director", "vp", "c_level"], n)
    p = pd.Series(sen).map({"individual": 0.05, "manager": 0.08, "director": 0.12, "vp": 0.20,
                            "c_level": 0.17}).to_numpy()
    y = (rng.random(n) < p).astype(int)
    m = LeadScoringModel(numeric=[], categorical=["seniority"], Cs=(10.0,)).fit(pd.DataFrame({"seniority": sen}), y)
    lv = m.levels().set_index("value")["coef"]
    assert lv["vp"] == lv["c_level"]
    assert lv["individual"] < lv["manager"] < lv["director"] < lv["vp"]
    assert {"feature": "seniority", "tied": ["vp", "c_level"], "trend": "ascending"} in m.monotone_merges_


def test_order_of_levels_whose_true_points_differ_by_10_is_kept(recovered):
    table, info = recovered
    truth = true_points(info["factor"])  # the true weights on the table's own scale
    probe = MONOTONE_TRUTH["probes"]
    got = {}
    for crit, values in probe.items():
        frame = {c: [np.nan] * len(values) for c in FEATURES}
        frame[crit] = values
        import pandas as pd
        got.update({(crit, v): p for v, p in zip(values, table.points_matrix(pd.DataFrame(frame))[crit])})
    checked = 0
    for (a, pa), (b, pb) in itertools.permutations(truth.items(), 2):
        if pa - pb >= 10:
            checked += 1
            assert got[a] > got[b], (a, got[a], pa, b, got[b], pb)
    assert checked >= 5
