import pytest

from hwfit.core import Variant
from hwfit.core import HwfitError


def test_key_round_trips_and_knobs_are_sorted():
    variant = Variant("ort", "cpu", "int8-dynamic", 8, 2, (("per_channel", "false"), ("opt_level", "all")))
    assert variant.key == "ort/cpu/int8-dynamic/b8/t2/opt_level=all/per_channel=false"
    assert Variant.parse(variant.key) == variant
    assert hash(Variant.parse(variant.key)) == hash(variant)


def test_bad_precision_and_key_are_rejected_with_the_allowed_values():
    with pytest.raises(HwfitError, match="expected one of fp32"):
        Variant("ort", precision="int4")
    with pytest.raises(HwfitError, match="BACKEND/DEVICE/PRECISION/bN"):
        Variant.parse("ort/cpu")
