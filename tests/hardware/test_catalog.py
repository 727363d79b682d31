"""The spec catalog: complete, dense not sparse, names matched, malformed files named precisely."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from hwfit.hardware import CatalogError, cpu_peak_flops, discover_cpu, load_catalog, spec_for_gpu
from hwfit.hardware.catalog import DEFAULT_CATALOG_PATH, DTYPES

REQUIRED_KEYS = {
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "a100-sxm4-40gb",
    "a100-sxm4-80gb",
    "l4",
    "l40s",
    "t4",
    "a10g",
    "mi300x",
}


def test_catalog_has_the_required_devices_with_every_dtype_and_source():
    catalog = load_catalog()
    assert {spec.key for spec in catalog.gpus} >= REQUIRED_KEYS
    for spec in catalog.gpus:
        assert set(spec.peak_flops) == set(DTYPES), spec.key
        assert spec.peak_flops["fp32"] is not None, spec.key
        for dtype, figure in spec.peak_flops.items():
            if figure is None:
                continue
            assert figure.how in ("spec", "estimated"), (spec.key, dtype)
            assert figure.source and "dense" in figure.source, (spec.key, dtype)
            assert figure.unit == ("OP/s" if dtype == "int8" else "FLOP/s")
        for figure in (spec.memory_bytes, spec.memory_bandwidth_bytes_per_s, spec.tdp_w):
            assert figure.value > 0 and figure.source, spec.key
        assert spec.price is not None and "as of" in spec.price.source, spec.key


def test_dense_figures_are_half_the_sparse_ones():
    # The classic mistake is copying a datasheet's sparse (asterisked) figure as the peak.
    for spec in load_catalog().gpus:
        for dtype, sparse in spec.sparse_peak_flops.items():
            dense = spec.peak_flops[dtype]
            assert dense is not None, (spec.key, dtype)
            assert dense.value <= sparse.value
            assert dense.value == pytest.approx(sparse.value / 2, rel=0.02), (spec.key, dtype)


def test_tensor_core_ratios_hold_for_datacenter_parts():
    for spec in load_catalog().gpus:
        peaks = spec.peak_flops
        if peaks["bf16"] is not None:
            assert peaks["bf16"].value == peaks["fp16"].value, spec.key
        if peaks["tf32"] is not None:
            assert peaks["tf32"].value == pytest.approx(peaks["fp16"].value / 2, rel=0.02), spec.key
        if peaks["fp8"] is not None:
            assert peaks["fp8"].value == pytest.approx(2 * peaks["fp16"].value, rel=0.03), spec.key


def test_known_figures():
    h100 = load_catalog().spec("h100-sxm")
    assert h100.peak_flops["bf16"].value == pytest.approx(989.4e12)
    assert h100.peak_flops["fp8"].value == pytest.approx(1978.9e12)
    assert h100.memory_bandwidth_bytes_per_s.value == pytest.approx(3.35e12)
    assert h100.tdp_w.value == 700
    assert load_catalog().spec("a100-sxm4-40gb").peak_flops["fp8"] is None
    t4 = load_catalog().spec("t4")
    assert t4.peak_flops["bf16"] is None and t4.peak_flops["tf32"] is None


@pytest.mark.parametrize(
    ("nvml_name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200-sxm"),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("Tesla T4", "t4"),
        ("NVIDIA A10G", "a10g"),
        ("AMD Instinct MI300X", "mi300x"),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA GH200 480GB", None),
        ("NVIDIA A100-PCIE-40GB", None),
        ("NVIDIA L40", None),
        ("NVIDIA A10", None),
    ],
)
def test_nvml_names_match_exactly_one_entry(nvml_name, key):
    spec = spec_for_gpu(nvml_name)
    assert (spec.key if spec else None) == key
    matching = [entry.key for entry in load_catalog().gpus if entry.matches(nvml_name)]
    assert len(matching) <= 1, matching


def _write_modified_catalog(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
    edit(data)
    path = tmp_path / "specs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _gpu(data, key):
    return next(entry for entry in data["gpus"] if entry["key"] == key)


def test_catalog_loads_from_an_explicit_path(tmp_path):
    path = _write_modified_catalog(tmp_path, lambda data: None)
    assert {spec.key for spec in load_catalog(path).gpus} == {spec.key for spec in load_catalog().gpus}


def test_wrong_type_names_entry_and_field(tmp_path):
    path = _write_modified_catalog(
        tmp_path, lambda data: _gpu(data, "h100-sxm")["peak_tflops"]["dense"].update(bf16="fast")
    )
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    assert "gpus[h100-sxm].peak_tflops.dense.bf16" in str(error.value)
    assert "'fast'" in str(error.value)


def test_missing_dtype_names_entry_and_field(tmp_path):
    path = _write_modified_catalog(tmp_path, lambda data: _gpu(data, "t4")["peak_tflops"]["dense"].pop("fp8"))
    with pytest.raises(CatalogError, match=r"gpus\[t4\]\.peak_tflops\.dense\.fp8: Field required"):
        load_catalog(path)


def test_sparse_figure_in_dense_table_is_rejected(tmp_path):
    path = _write_modified_catalog(tmp_path, lambda data: _gpu(data, "l4")["peak_tflops"]["dense"].update(fp8=485))
    with pytest.raises(CatalogError, match=r"gpus\[l4\]\.peak_tflops.*dense\.fp8 = 485.0 is not about half"):
        load_catalog(path)


def test_unknown_source_key_is_rejected(tmp_path):
    path = _write_modified_catalog(
        tmp_path, lambda data: _gpu(data, "l40s")["tdp_w"].update(source="nvidia-l40s-datashet")
    )
    with pytest.raises(CatalogError, match=r"gpus\[l40s\]\.tdp_w\.source: unknown source key"):
        load_catalog(path)


def test_bad_regex_and_bad_yaml(tmp_path):
    path = _write_modified_catalog(tmp_path, lambda data: _gpu(data, "a10g").update(match=["A10G("]))
    with pytest.raises(CatalogError, match=r"gpus\[a10g\]\.match"):
        load_catalog(path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("gpus: [\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(broken)
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "absent.yaml")


# --- CPU peak ----------------------------------------------------------------------------------


def _cpu(**changes):
    base = discover_cpu()
    defaults = dict(
        physical_cores=4,
        logical_threads=8,
        usable_threads=8,
        cgroup_cpu_limit=None,
        base_clock_mhz=3000.0,
        max_clock_mhz=None,
        model=17,
    )
    return dataclasses.replace(base, **{**defaults, **changes})


def test_zen4_peak_uses_half_width_fma():
    cpu = _cpu(vendor="AMD", family=25, flags=("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"))
    peaks = cpu_peak_flops(cpu)
    assert peaks["fp32"].value == pytest.approx(4 * 3000e6 * 32)
    assert peaks["bf16"].value == pytest.approx(2 * peaks["fp32"].value)
    assert peaks["int8"].value == pytest.approx(4 * peaks["fp32"].value)
    assert peaks["fp32"].how == "computed"
    assert "4 cores" in peaks["fp32"].source and "3000 MHz" in peaks["fp32"].source and "Zen 4" in peaks["fp32"].source
    assert "fp16" not in peaks


def test_intel_amx_peak_and_max_clock():
    cpu = _cpu(
        vendor="Intel",
        family=6,
        max_clock_mhz=3800.0,
        flags=("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"),
    )
    peaks = cpu_peak_flops(cpu)
    assert peaks["fp32"].value == pytest.approx(4 * 3800e6 * 64)
    assert peaks["bf16"].value == pytest.approx(4 * 3800e6 * 1024)
    assert peaks["int8"].value == pytest.approx(4 * 3800e6 * 2048)


def test_avx2_cpu_has_no_bf16_peak_and_affinity_scales_cores():
    cpu = _cpu(vendor="Intel", family=6, flags=("avx", "avx2", "fma"), usable_threads=4)
    peaks = cpu_peak_flops(cpu)
    assert set(peaks) == {"fp32"}
    assert peaks["fp32"].value == pytest.approx(2 * 3000e6 * 32)  # 4 of 8 threads -> 2 of 4 cores


def test_unknown_clock_gives_no_peak():
    assert cpu_peak_flops(_cpu(vendor="AMD", family=25, base_clock_mhz=None, flags=("avx2", "fma"))) == {}


def test_this_machine_has_a_computed_fp32_peak():
    peaks = cpu_peak_flops(discover_cpu())
    if discover_cpu().base_clock_mhz is None and discover_cpu().max_clock_mhz is None:
        pytest.skip("no clock known on this machine")
    assert peaks["fp32"].value > 1e9
    assert "FLOP/cycle/core" in peaks["fp32"].source
