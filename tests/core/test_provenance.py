import pytest

from hwfit.core import ENERGY_PROVENANCE, FIGURE_PROVENANCE, PROVENANCE, Figure, format_si, short_provenance


def test_every_label_a_figure_or_energy_reading_may_carry_has_a_meaning():
    assert set(FIGURE_PROVENANCE) | set(ENERGY_PROVENANCE) <= set(PROVENANCE)
    assert {"planned", "emulated", "spec"} <= set(PROVENANCE)


def test_figure_refuses_an_unknown_provenance_and_round_trips():
    figure = Figure(2.07e11, "FLOP/s", "measured", "numpy matmul n=2048")
    assert figure.to_dict() == {"value": 2.07e11, "unit": "FLOP/s", "how": "measured", "source": "numpy matmul n=2048"}
    with pytest.raises(ValueError, match="Figure.how must be one of"):
        Figure(1.0, "W", "guessed", "")


def test_short_forms_and_si_prefixes():
    assert short_provenance("integrated") == "integr." and short_provenance("planned") == "planned"
    assert short_provenance(None) == "?"
    assert format_si(2.07e11, "FLOP/s") == "207.0 GFLOP/s" and format_si(None, "W") == "—"
    assert format_si(3.2e9, "bytes/s") == "3.2 GB/s"
