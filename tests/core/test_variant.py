import pytest

from hwfit.core import Config, Family, HwfitError, Layout, Variant, curve_key_of


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


def test_from_dict_reads_the_stored_form_and_recomputes_the_key():
    stored = {
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "batch_size": 8,
        "threads": 2,
        "knobs": {"replicas": "2", "opt_level": "all"},
        "key": "stale/key",
    }
    variant = Variant.from_dict(stored)
    assert variant.key == "ort/cpu/fp32/b8/t2/opt_level=all/replicas=2"
    assert Variant.from_dict(variant.to_dict()) == variant
    with pytest.raises(HwfitError, match="lacks batch_size"):
        Variant.from_dict({"backend": "ort", "device": "cpu", "precision": "fp32"})


def test_family_layout_and_configuration_split_a_variant_and_rebuild_it():
    variant = Variant("ort", "cpu", "int8-dynamic", 16, 1, (("replicas", "2"), ("per_channel", "false")))
    assert variant.family == Family("ort", "cpu", "int8-dynamic", (("per_channel", "false"),))
    assert variant.layout == Layout(replicas=2, threads=1)
    assert variant.config == Config(variant.family, variant.layout)
    assert variant.config.variant(16) == variant  # a configuration at the variant's batch is the variant
    assert variant.config.label == "ort/cpu/int8-dynamic/per_channel=false 2xt1"
    assert variant.without_replicas().key == "ort/cpu/int8-dynamic/b16/t1/per_channel=false"
    assert Config(variant.family, Layout(1, 1)).variant(4).knob("replicas") is None  # one replica: no knob


def test_curve_key_drops_only_the_batch_size():
    variant = Variant("ort", "cpu", "fp32", 8, 2, (("b8x", "1"),))  # a knob that looks like a batch part
    assert variant.curve_key == "ort/cpu/fp32/t2/b8x=1"
    assert variant.with_batch(32).curve_key == variant.curve_key
    assert curve_key_of(variant.key) == variant.curve_key
    assert curve_key_of("not a key") == "not a key"
