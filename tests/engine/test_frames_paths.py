"""The quick paths of the frame helpers give what the general ones give."""

import numpy as np
import pandas as pd
import pytest

from tagportal.engine import frames as fr


@pytest.mark.parametrize(
    "values",
    [
        ["一线", None, "二线", "一线", "", "三线"],
        [1.0, 2.0, None, 2.5, 1.0],
        [True, False, None, True],
        [3, 1, 2, 3],
    ],
)
def test_texts_of_a_categorical_equal_the_texts_of_its_values(values):
    plain = pd.Series(values, dtype=object, index=range(10, 10 + len(values)), name="city")
    categorical = plain.astype("category")
    expected = fr.texts(plain.infer_objects())
    got = fr.texts(categorical)
    assert got.dtype == expected.dtype
    assert got.index.equals(plain.index) and got.name == "city"
    assert got.isna().tolist() == expected.isna().tolist()
    assert got.fillna("<na>").tolist() == expected.fillna("<na>").tolist()


def test_population_is_the_sorted_union_whatever_the_order():
    rng = np.random.default_rng(3)
    sorted_ids = np.sort(rng.integers(0, 1000, 5000))
    shuffled = rng.permutation(rng.integers(500, 2000, 3000))
    profiles = np.array([7, 3, 3, 1999, 0])
    got = fr.default_population(profiles, sorted_ids, shuffled)
    expected = np.unique(np.concatenate([profiles, sorted_ids, shuffled]))
    assert got.name == "oneid"
    assert got.to_numpy().tolist() == expected.tolist()
    assert fr.default_population([]).tolist() == []
    assert fr.default_population([5]).tolist() == [5]
