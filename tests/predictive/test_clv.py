"""BG/NBD, Gamma-Gamma and CLV (tagportal.predictive.clv) and the fit_clv command."""

from __future__ import annotations

import datetime as dt
import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagportal.predictive import clv
from tagportal.profiles import cdnow

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "fixtures" / "cdnow" / "CDNOW_sample.txt"  # the shared sample, copied into the repo
# CI puts shared/ next to the clone (../shared); CDNOW_DIR points elsewhere (another checkout).
SHARED = Path(os.environ.get("CDNOW_DIR") or Path(__file__).parents[3] / "shared" / "datasets" / "cdnow")
MASTER = SHARED / "CDNOW_master.txt"
CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"


def sig3(value: float) -> str:
    return f"{value:.3g}"


def transactions(path: Path) -> pd.DataFrame:
    lines = cdnow.read(path)
    time = pd.to_datetime(lines["date"], format="%Y%m%d")
    return pd.DataFrame({"oneid": lines["customer_id"], "time": time, "amount": lines["amount"]})


@cache
def sample_summary(calibration_end: str = CALIBRATION_END) -> pd.DataFrame:
    return clv.summary_from_orders(transactions(SAMPLE), calibration_end, HOLDOUT_END)


@cache
def sample_models() -> tuple[clv.BGNBD, clv.GammaGamma]:
    s = sample_summary()
    return clv.fit_bgnbd(s["frequency"], s["recency"], s["T"]), clv.fit_gamma_gamma(
        s["frequency"], s["monetary_value"]
    )


def columns(s: pd.DataFrame):
    return s["frequency"].to_numpy(), s["recency"].to_numpy(), s["T"].to_numpy()


def numeric_gradient(f, params, step=1e-6) -> np.ndarray:
    """Central differences in the log-parameters, turned back into d/dθ."""
    params = np.asarray(params, dtype="float64")
    out = np.empty_like(params)
    for i in range(len(params)):
        up, down = np.log(params), np.log(params)
        up[i] += step
        down[i] -= step
        out[i] = (f(np.exp(up)) - f(np.exp(down))) / (2 * step) / params[i]
    return out


def standard_errors(gradient, params, step=1e-5) -> np.ndarray:
    """Standard errors from the Hessian of the log-likelihood (differences of the gradient)."""
    params = np.asarray(params, dtype="float64")
    k = len(params)
    hessian = np.empty((k, k))
    for i in range(k):
        up, down = params.copy(), params.copy()
        h = step * params[i]
        up[i] += h
        down[i] -= h
        hessian[:, i] = (gradient(up) - gradient(down)) / (2 * h)
    hessian = (hessian + hessian.T) / 2
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


# --- the summary ------------------------------------------------------------------------------


def test_summary_counts_days_in_beijing_time_and_leaves_out_the_first_purchase():
    utc = dt.UTC
    orders = pd.DataFrame(
        {
            "oneid": [1, 1, 1, 1, 1, 2, 3, 3],
            "time": [
                dt.datetime(2024, 1, 1, 2, tzinfo=utc),  # 10:00 Beijing, 1 Jan: the first purchase
                dt.datetime(2024, 1, 7, 15, tzinfo=utc),  # 23:00 Beijing, 7 Jan
                dt.datetime(2024, 1, 7, 16, 30, tzinfo=utc),  # 00:30 Beijing, 8 Jan: another day
                dt.datetime(2024, 1, 8, 3, tzinfo=utc),  # 11:00 Beijing, 8 Jan: the same day as before
                dt.datetime(2024, 2, 1, 3, tzinfo=utc),  # in the holdout
                dt.datetime(2024, 1, 15, 3, tzinfo=utc),  # one purchase only
                dt.datetime(2024, 1, 29, 17, tzinfo=utc),  # 30 Jan in Beijing: after the calibration end
                dt.datetime(2024, 2, 2, 3, tzinfo=utc),
            ],
            "amount": [100.0, 10.0, 20.0, 30.0, 5.0, 7.0, 1.0, 1.0],
        }
    )
    s = clv.summary_from_orders(orders, dt.date(2024, 1, 29), "2024-02-29")
    assert list(s.index) == [1, 2]  # customer 3 started after the calibration end
    one, two = s.loc[1], s.loc[2]
    assert one["frequency"] == 2  # 7 Jan and 8 Jan (two purchases that day count once)
    assert one["recency"] == pytest.approx(7 / 7)
    assert one["T"] == pytest.approx(28 / 7)
    assert one["monetary_value"] == pytest.approx((10 + 50) / 2)  # the first purchase left out
    assert one["holdout_frequency"] == 1
    assert (two["frequency"], two["recency"], two["monetary_value"]) == (0, 0, 0)
    assert two["T"] == pytest.approx(14 / 7)
    assert "holdout_frequency" not in clv.summary_from_orders(orders, "2024-01-29").columns


def test_summary_of_times_in_utc_equals_the_summary_of_dates():
    lines = cdnow.read(SAMPLE)
    utc = cdnow.to_orders(lines).rename(columns={"crm_member_id": "oneid"})
    assert str(utc["time"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(
        clv.summary_from_orders(utc, CALIBRATION_END, HOLDOUT_END), sample_summary(), check_exact=False
    )


def test_summary_rejects_a_holdout_before_the_calibration_end():
    with pytest.raises(clv.ClvError):
        clv.summary_from_orders(transactions(SAMPLE), CALIBRATION_END, "1997-09-30")


# --- the published estimates ------------------------------------------------------------------


def test_cdnow_sample_reproduces_the_published_estimates():
    s = sample_summary()
    assert len(s) == 2357 and int((s["frequency"] > 0).sum()) == 946
    bgnbd, gamma_gamma = sample_models()
    # Fader, Hardie & Lee (2005), table 1.
    assert [sig3(v) for v in bgnbd.params] == ["0.243", "4.41", "0.793", "2.43"]
    assert round(bgnbd.log_likelihood, 1) == -9582.4
    # Fader & Hardie (2013), on the 946 repeat buyers.
    assert gamma_gamma.customers == 946
    assert [sig3(v) for v in (gamma_gamma.p, gamma_gamma.q, gamma_gamma.v)] == ["6.25", "3.74", "15.4"]


def test_the_gradient_is_zero_at_the_optimum_and_matches_differences():
    x, t_x, T = columns(sample_summary())
    bgnbd, gamma_gamma = sample_models()

    def ll(p):
        return clv.bgnbd_log_likelihood(p, x, t_x, T)

    numeric = numeric_gradient(ll, bgnbd.params)
    scale = np.abs(bgnbd.log_likelihood)
    assert np.all(np.abs(numeric * np.array(bgnbd.params)) / scale < 1e-7)
    elsewhere = (0.5, 3.0, 1.2, 4.0)
    np.testing.assert_allclose(
        clv.bgnbd_gradient(elsewhere, x, t_x, T), numeric_gradient(ll, elsewhere), rtol=1e-5
    )

    m = sample_summary()["monetary_value"].to_numpy()
    keep = x > 0

    def gg(p):
        return clv.gamma_gamma_log_likelihood(p, x[keep], m[keep])

    params = (gamma_gamma.p, gamma_gamma.q, gamma_gamma.v)
    assert np.all(
        np.abs(numeric_gradient(gg, params) * np.array(params)) / abs(gamma_gamma.log_likelihood) < 1e-7
    )
    elsewhere = (2.0, 5.0, 10.0)
    np.testing.assert_allclose(
        clv.gamma_gamma_gradient(elsewhere, x[keep], m[keep]), numeric_gradient(gg, elsewhere), rtol=1e-5
    )


def test_the_command_prints_exactly_one_json_object(capsys):
    call_command("fit_clv", str(SAMPLE), "--format", "cdnow", "--calibration-end", CALIBRATION_END)
    out = capsys.readouterr().out
    result = json.loads(out)  # the whole of stdout, nothing before or after
    assert out.strip().count("\n") == 0
    assert set(result) == {"customers", "repeat_buyers", "bgnbd", "gamma_gamma", "holdout"}
    assert (result["customers"], result["repeat_buyers"]) == (2357, 946)
    assert set(result["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert sig3(result["bgnbd"]["r"]) == "0.243" and sig3(result["gamma_gamma"]["p"]) == "6.25"
    assert result["holdout"]["weeks"] == 39  # to the file's last date, 1998-06-30
    assert result["holdout"]["actual_repeat"] == 1882


def test_the_csv_format_gives_the_same_fit(tmp_path, capsys):
    lines = cdnow.read(SAMPLE)
    path = tmp_path / "orders.csv"
    pd.DataFrame(
        {
            "customer_id": lines["customer_id"],
            "date": pd.to_datetime(lines["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
            "amount": lines["amount"],
        }
    ).to_csv(path, index=False)
    args = ["--calibration-end", CALIBRATION_END, "--holdout-end", HOLDOUT_END]
    call_command("fit_clv", str(path), "--format", "csv", *args)
    from_csv = json.loads(capsys.readouterr().out)
    call_command("fit_clv", str(SAMPLE), "--format", "cdnow", *args)
    from_cdnow = json.loads(capsys.readouterr().out)
    assert from_csv["customers"] == from_cdnow["customers"] == 2357
    assert from_csv["holdout"] == pytest.approx(from_cdnow["holdout"])
    for model in ("bgnbd", "gamma_gamma"):
        assert from_csv[model] == pytest.approx(from_cdnow[model], rel=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt", "--calibration-end", CALIBRATION_END], "No such file"),
        ([str(SAMPLE), "--calibration-end", "1997-13-01"], "Not a date"),
        ([str(SAMPLE), "--calibration-end", "30/09/1997"], "Not a date"),
        ([str(SAMPLE), "--calibration-end", CALIBRATION_END, "--holdout-end", "1997-06-30"], "holdout end"),
        ([str(SAMPLE), "--calibration-end", "1996-12-31"], "No customer"),
        ([str(SAMPLE), "--format", "csv", "--calibration-end", CALIBRATION_END], "lacks the columns"),
    ],
)
def test_bad_input_is_a_clear_command_error(args, message, capsys):
    with pytest.raises(CommandError, match=message):
        call_command("fit_clv", *args)
    assert capsys.readouterr().out == ""


def test_an_empty_or_garbled_file_is_a_command_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(CommandError, match="empty"):
        call_command("fit_clv", str(empty), "--calibration-end", CALIBRATION_END)
    garbled = tmp_path / "garbled.csv"
    garbled.write_text("customer_id,date,amount\n1,yesterday,3\n")
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("fit_clv", str(garbled), "--format", "csv", "--calibration-end", CALIBRATION_END)


# --- predictions ------------------------------------------------------------------------------


def test_the_holdout_is_tracked_in_aggregate():
    """The paper's aggregate fit: cumulative repeat transactions over the 78 weeks within 5%;
    the holdout's conditional expectations are a little low, as known for CDNOW (the model
    underpredicts the heaviest buyers)."""
    s = sample_summary()
    x, t_x, T = columns(s)
    bgnbd, _ = sample_models()
    actual_holdout = s["holdout_frequency"].sum()
    predicted_holdout = bgnbd.expected_purchases(39, x, t_x, T).sum()
    assert actual_holdout == 1882
    assert 0.85 < predicted_holdout / actual_holdout < 1.0
    cumulative = bgnbd.expected_purchases_new(T + 39).sum()
    assert cumulative / (x.sum() + actual_holdout) == pytest.approx(1, abs=0.05)


def test_predictions_match_customers_simulated_from_the_model():
    bgnbd, _ = sample_models()
    rng = np.random.default_rng(7)
    sim = clv.simulate_bgnbd(100_000, *bgnbd.params, T=rng.uniform(26, 39, 100_000), holdout=13, seed=7)
    x, t_x, T = columns(sim)
    later = sim["holdout_frequency"].to_numpy()
    assert bgnbd.expected_purchases(13, x, t_x, T).mean() == pytest.approx(later.mean(), rel=0.03)
    p_any = bgnbd.p_any_purchase(13, x, t_x, T)
    assert p_any.mean() == pytest.approx((later > 0).mean(), rel=0.02)
    # By group: the one-time buyers and the frequent buyers.
    for group in (x == 0, x >= 3):
        assert p_any[group].mean() == pytest.approx((later[group] > 0).mean(), rel=0.05)


def test_prediction_properties():
    bgnbd, gamma_gamma = sample_models()
    x, t_x, T = columns(sample_summary())
    alive = bgnbd.p_alive(x, t_x, T)
    assert np.all(alive[x == 0] == 1) and np.all((alive > 0) & (alive <= 1))
    assert np.allclose(bgnbd.expected_purchases(0, x, t_x, T), 0)
    e30, e90 = bgnbd.expected_purchases(30 / 7, x, t_x, T), bgnbd.expected_purchases(90 / 7, x, t_x, T)
    assert np.all(e90 >= e30) and np.all(e30 >= 0)
    p30 = bgnbd.p_any_purchase(30 / 7, x, t_x, T)
    assert np.all((p30 >= 0) & (p30 <= alive + 1e-12)) and np.all(p30 <= e30 + 1e-12)
    # A recent frequent buyer is likelier to buy than one who has gone quiet.
    recent, quiet = bgnbd.p_any_purchase(30 / 7, [5, 5], [38, 10], [39, 39])
    assert recent > quiet
    # Gamma-Gamma: the expected order value lies between the customer's mean and the population's.
    m = sample_summary()["monetary_value"].to_numpy()
    value = gamma_gamma.expected_value(x, m)
    assert np.allclose(value[x == 0], gamma_gamma.mean_value)
    between = (value - m) * (value - gamma_gamma.mean_value)
    assert np.all(between[x > 0] <= 1e-9)


def test_clv_is_the_discounted_sum_of_monthly_purchases():
    bgnbd, gamma_gamma = sample_models()
    s = sample_summary()
    x, t_x, T = columns(s)
    m = s["monetary_value"].to_numpy()
    value = gamma_gamma.expected_value(x, m)
    undiscounted = clv.customer_lifetime_value(
        bgnbd, gamma_gamma, x, t_x, T, m, months=12, monthly_discount=0
    )
    twelve = bgnbd.expected_purchases(12 * clv.WEEKS_PER_MONTH, x, t_x, T)
    np.testing.assert_allclose(undiscounted, twelve * value, rtol=1e-9)
    discounted = clv.customer_lifetime_value(
        bgnbd, gamma_gamma, x, t_x, T, m, months=12, monthly_discount=0.01
    )
    longer = clv.customer_lifetime_value(bgnbd, gamma_gamma, x, t_x, T, m, months=24, monthly_discount=0.01)
    assert np.all(discounted < undiscounted) and np.all(longer > discounted)
    # One month by hand.
    first = bgnbd.expected_purchases(clv.WEEKS_PER_MONTH, x[:3], t_x[:3], T[:3]) * value[:3] / 1.01
    np.testing.assert_allclose(
        clv.customer_lifetime_value(bgnbd, gamma_gamma, x[:3], t_x[:3], T[:3], m[:3], months=1), first
    )
    with pytest.raises(clv.ClvError):
        clv.customer_lifetime_value(bgnbd, gamma_gamma, x, t_x, T, m, months=0)


def test_score_and_buckets():
    bgnbd, gamma_gamma = sample_models()
    scores = clv.score(sample_summary(), bgnbd, gamma_gamma, high=0.3, low=0.1)
    assert list(scores.columns) == [
        "p_alive",
        "expected_purchases_30d",
        "expected_purchases_90d",
        "purchase_intent",
        "purchase_intent_level",
        "expected_order_value",
        "clv",
    ]
    level, p = scores["purchase_intent_level"], scores["purchase_intent"]
    assert set(level) == {"高", "中", "低"}
    assert (p[level == "高"] >= 0.3).all() and (p[level == "低"] < 0.1).all()
    assert ((p[level == "中"] >= 0.1) & (p[level == "中"] < 0.3)).all()
    assert list(clv.bucket([0.5, 0.49, 0.2, 0.19])) == ["高", "中", "中", "低"]
    with pytest.raises(clv.ClvError):
        clv.bucket([0.5], high=0.1, low=0.2)


# --- parameter recovery and data the model has never seen --------------------------------------


def test_bgnbd_parameters_are_recovered_from_simulated_customers():
    true = (0.5, 4.0, 0.8, 2.5)
    rng = np.random.default_rng(11)
    T = np.round(rng.uniform(78, 104, 50_000) * 7) / 7  # whole days
    sim = clv.simulate_bgnbd(50_000, *true, T=T, seed=11)
    x, t_x, T = columns(sim)
    fit = clv.fit_bgnbd(x, t_x, T)
    se = standard_errors(lambda p: clv.bgnbd_gradient(p, x, t_x, T), fit.params)
    error = np.array(fit.params) - np.array(true)
    assert np.all(np.abs(error) < 3.5 * se)
    assert np.all(np.abs(error) / np.array(true) < 0.05)


def test_gamma_gamma_parameters_are_recovered_from_simulated_customers():
    true = (6.25, 3.75, 15.4)
    rng = np.random.default_rng(12)
    x = 1 + rng.poisson(0.5, 50_000)
    m = clv.simulate_gamma_gamma(x, *true, seed=12)
    fit = clv.fit_gamma_gamma(x, m)
    params = (fit.p, fit.q, fit.v)
    se = standard_errors(lambda p: clv.gamma_gamma_gradient(p, x, m), params)
    error = np.array(params) - np.array(true)
    assert np.all(np.abs(error) < 3.5 * se)
    assert np.all(np.abs(error) / np.array(true) < 0.08)


@pytest.mark.parametrize("calibration_end", ["1997-06-30", "1997-12-31"])
def test_other_calibration_dates_fit_faithfully(calibration_end):
    s = clv.summary_from_orders(transactions(SAMPLE), calibration_end, HOLDOUT_END)
    x, t_x, T = columns(s)
    fit = clv.fit_bgnbd(x, t_x, T)
    numeric = numeric_gradient(lambda p: clv.bgnbd_log_likelihood(p, x, t_x, T), fit.params)
    assert np.all(np.abs(numeric * np.array(fit.params)) / abs(fit.log_likelihood) < 1e-7)
    weeks = clv.weeks_between(calibration_end, HOLDOUT_END)
    predicted = fit.expected_purchases(weeks, x, t_x, T).sum()
    assert predicted / s["holdout_frequency"].sum() == pytest.approx(1, abs=0.2)
    assert 0.1 < fit.r < 1 and 0.3 < fit.a < 2 and fit.b > 1


def test_the_master_file_gets_sane_parameters():
    s = clv.summary_from_orders(transactions(MASTER), CALIBRATION_END, HOLDOUT_END)
    assert len(s) == 23_570
    x, t_x, T = columns(s)
    bgnbd = clv.fit_bgnbd(x, t_x, T)
    gamma_gamma = clv.fit_gamma_gamma(x, s["monetary_value"])
    sample, sample_gg = sample_models()
    # The sample is a tenth of the master file: the estimates agree to within sampling error.
    np.testing.assert_allclose(bgnbd.params, sample.params, rtol=0.15)
    np.testing.assert_allclose(
        (gamma_gamma.p, gamma_gamma.q, gamma_gamma.v), (sample_gg.p, sample_gg.q, sample_gg.v), rtol=0.1
    )
    predicted = bgnbd.expected_purchases(39, x, t_x, T).sum()
    assert 0.8 < predicted / s["holdout_frequency"].sum() < 1.0  # low, as on the sample
