"""The outcomes report's builder against figures worked out by hand."""

from pathlib import Path

from tracker.protocol import load_protocol_file
from tracker.reports.outcomes import Total, summarise

MDD = load_protocol_file(
    Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "mdma-mdd-v1.toml"
)


def test_pooled_figures_per_timepoint_by_hand() -> None:
    # A: 34 -> 9 (response, remission); B: 40 -> 21 (neither); C: 30 -> 15 (a response of
    # exactly 50 %, no remission). D has an endpoint but no baseline.
    totals = [
        Total(1, "baseline", "madrs", 34),
        Total(2, "baseline", "madrs", 40),
        Total(3, "baseline", "madrs", 30),
        Total(1, "primary_endpoint", "madrs", 9),
        Total(2, "primary_endpoint", "madrs", 21),
        Total(3, "primary_endpoint", "madrs", 15),
        Total(4, "primary_endpoint", "madrs", 12),
        Total(1, "primary_endpoint", "phq9", 5),
    ]
    rows = {(r.instrument, r.timepoint): r for r in summarise(MDD, totals)}
    baseline = rows[("madrs", "baseline")]
    assert (baseline.n, baseline.mean_total, baseline.mean_change, baseline.response_rate) == (
        3,
        34.67,
        None,
        None,
    )
    endpoint = rows[("madrs", "primary_endpoint")]
    # Mean total (9+21+15+12)/4 = 14.25; change (-25-19-15)/3 = -19.67 over the 3 with a
    # baseline; 2 of 3 respond; remission needs no baseline: 9 and no others of 4 (12 > 10).
    assert (endpoint.n, endpoint.mean_total) == (4, 14.25)
    assert (endpoint.n_with_baseline, endpoint.mean_change) == (3, -19.67)
    assert (endpoint.responders, endpoint.response_rate) == (2, 0.667)
    assert (endpoint.remitters, endpoint.remission_rate) == (1, 0.25)
    phq9 = rows[("phq9", "primary_endpoint")]
    assert (phq9.n, phq9.mean_total, phq9.response_rate, phq9.remission_rate) == (
        1,
        5.0,
        None,
        None,
    )
    assert next(iter(rows)) == ("madrs", "baseline")  # the protocol order
