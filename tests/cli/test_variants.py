import json

from typer.testing import CliRunner


def test_variants_json_lists_every_variant_with_a_status():
    from hwfit.cli import app

    result = CliRunner().invoke(
        app, ["variants", "cnn", "--backend", "ort", "--batch", "4", "--seconds", "0.3", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["schema"] == "hwfit.variants/1"
    statuses = {r["variant"]["key"]: r["status"] for r in report["results"]}
    assert statuses["ort/cpu/fp32/b4"] == "ok"
    assert statuses["ort/cpu/fp16/b4"] == "unavailable"
    assert report["cost"]["flops_per_sample"] > 0


def test_variants_table_and_bad_model_error():
    from hwfit.cli import app

    runner = CliRunner()
    table = runner.invoke(app, ["variants", "cnn", "-b", "ort", "-p", "fp32,fp16", "--batch", "2", "--seconds", "0.2"])
    assert table.exit_code == 0, table.output
    assert "ort/cpu/fp32/b2" in table.output and "Cannot run here" in table.output
    bad = runner.invoke(app, ["variants", "missing.onnx"])
    assert bad.exit_code != 0
