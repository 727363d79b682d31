"""The catalog's `cpu_power` rules: which CPU gets which figures, and that every figure holds up."""

import dataclasses
import re

import pytest
import yaml

from hwfit.hardware import CatalogError, cpu_power_spec, discover_cpu, load_catalog
from hwfit.hardware.catalog import DEFAULT_CATALOG_PATH


def _cpu(**changes):
    return dataclasses.replace(discover_cpu(), **changes)


@pytest.mark.parametrize(
    ("vendor", "family", "model", "rule_start", "max_w"),
    [
        ("AMD", 25, 0x11, "AMD EPYC Zen 4 'Genoa'", 3.75),  # EPYC 9004 (this project's VMs)
        ("AMD", 25, 0x01, "AMD EPYC Zen 3 'Milan'", 4.375),
        ("AMD", 23, 0x31, "AMD EPYC Zen 2 'Rome'", 3.52),
        ("AMD", 26, 0x02, "AMD EPYC Zen 5 'Turin'", 3.91),
        ("Intel", 6, 143, "Intel Xeon 4th/5th Gen", 6.25),
        ("Intel", 6, 106, "Intel Xeon 3rd Gen 'Ice Lake-SP'", 6.75),
        ("AMD", 25, 0x61, "any other CPU", 5.0),  # Zen 4 desktop (Raphael) is not an EPYC
        ("ARM", None, None, "any other CPU", 5.0),
    ],
)
def test_each_cpu_gets_its_rule(vendor, family, model, rule_start, max_w):
    spec = cpu_power_spec(_cpu(vendor=vendor, family=family, model=model))
    assert spec.rule_name.startswith(rule_start)
    assert spec.max_w_per_core.value == pytest.approx(max_w)
    assert spec.max_w_per_core.unit == "W/core"
    assert spec.idle_w_per_core.value == pytest.approx(max_w * spec.idle_share)
    assert spec.idle_w_per_core.how == "estimated"  # idle is always a share we chose or derived


def test_every_rule_is_sane_and_sourced():
    rules = load_catalog().cpu_power_rules
    assert rules, "the shipped catalog has cpu_power rules"
    for rule in rules:
        assert 1.0 < rule.max_w_per_core.value < 20.0, rule.name  # W per core at TDP
        assert 0.05 < rule.idle_share < 0.6, rule.name
        assert rule.max_w_per_core.source and rule.idle_share_source, rule.name


def test_computed_figures_match_the_tdp_and_cores_in_their_source():
    # "computed" means TDP / cores of the SKU named in the source: check the division was done right.
    for rule in load_catalog().cpu_power_rules:
        figure = rule.max_w_per_core
        if figure.how != "computed":
            continue
        match = re.search(r"(\d+) W (?:default )?TDP / (\d+) cores", figure.source)
        assert match, f"{rule.name}: a computed figure must name 'N W TDP / M cores' in its source"
        watts, cores = (int(group) for group in match.groups())
        assert figure.value == pytest.approx(watts / cores, abs=0.01), rule.name


def _write_catalog(tmp_path, change):
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
    change(data)
    path = tmp_path / "specs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_catalog_without_fallback_rule_is_rejected(tmp_path):
    def drop_fallback(data):
        data["cpu_power"]["rules"].pop()

    with pytest.raises(CatalogError, match=r"cpu_power.*must have no conditions"):
        load_catalog(_write_catalog(tmp_path, drop_fallback))


def test_idle_share_out_of_range_names_the_rule(tmp_path):
    def bad_share(data):
        data["cpu_power"]["rules"][0]["idle_share"]["value"] = 1.5

    with pytest.raises(CatalogError, match=r"cpu_power\.rules\[.*Genoa.*\]\.idle_share\.value"):
        load_catalog(_write_catalog(tmp_path, bad_share))


def test_a_catalog_without_the_section_still_loads_and_gives_no_spec(tmp_path):
    catalog = load_catalog(_write_catalog(tmp_path, lambda data: data.pop("cpu_power")))
    assert catalog.cpu_power_rules == ()
    assert cpu_power_spec(discover_cpu(), catalog) is None
