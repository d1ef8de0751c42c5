from __future__ import annotations

import pytest

from analytics.pricing import PricingError, load_pricing


def test_example_pricing_file() -> None:
    p = load_pricing()
    assert p.version and p.pue >= 1.0
    h100 = p.price_for("NVIDIA H100 80GB HBM3")
    assert h100.basis == "owned" and h100.usd_per_hour == pytest.approx(30000 / (4 * 8760))
    assert p.price_for("NVIDIA A100-SXM4-80GB").usd_per_hour == 1.29
    assert p.price_for("Some Other GPU") is None


def test_longest_match_wins(tmp_path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('version = "v1"\n[[gpu]]\nmatch = "H100"\nusd_per_hour = 2\n'
                 '[[gpu]]\nmatch = "H100 PCIe"\nusd_per_hour = 1\n')
    p = load_pricing(f)
    assert p.price_for("NVIDIA H100 PCIe").usd_per_hour == 1
    assert p.price_for("NVIDIA H100 80GB HBM3").usd_per_hour == 2


@pytest.mark.parametrize(("text", "message"), [
    ("[[gpu]]\nmatch='x'\nusd_per_hour=1\n", "version"),
    ("version='v'\n[[gpu]]\nusd_per_hour=1\n", "match"),
    ("version='v'\n[[gpu]]\nmatch='x'\n", "usd_per_hour"),
    ("version='v'\n[energy]\npue=0.5\n", "pue"),
    ("version='v'\n[idle]\npolicy='whatever'\n", r"\[idle\] policy = 'whatever'"),
    ("version='v'\n[[gpu]]\nmatch='x'\nusd_per_hour='cheap'\n",
     r"p.toml \[\[gpu\]\] 'x' usd_per_hour = 'cheap' is not allowed: expected a number ≥ 0"),
    ("version = [", "TOML"),
])
def test_bad_pricing_files_are_explained(tmp_path, text, message) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(PricingError, match=message):
        load_pricing(f)
