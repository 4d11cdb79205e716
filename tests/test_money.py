"""Money reads the same everywhere (common.money): sign before the dollar sign, k and M."""
import math

import pytest

from common.money import axis_money, fmt_money


@pytest.mark.parametrize("value, kw, text", [
    (1_234_567, {}, "$1.23M"), (285_400, {}, "$285k"), (950, {}, "$950"),
    (-40_000, {}, "-$40k"), (40_000, {"signed": True}, "+$40k"), (-0.4, {"signed": True}, "$0"),
    (-49_229.3, {"exact": True}, "-$49,229"), (8_057, {"exact": True}, "$8,057"),
    (math.nan, {}, "n/a"),
])
def test_money_text(value, kw, text):
    assert fmt_money(value, **kw) == text


def test_axis_labels_keep_one_decimal_of_millions():
    assert [axis_money(x) for x in (1_250_000, -350_000, 900)] == ["$1.2M", "-$350k", "$900"]
