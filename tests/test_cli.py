import json

import pytest
import torch

from sanawm.cli.main import main


def test_model_info_reports_release_parameter_count(capsys):
    assert main(["model-info", "sana-wm-2.6b"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 2_661_800_448
    assert sum(info["parameters_by_part"].values()) == info["parameters"]
    assert info["block_layout"] == "GGGS" * 5
    assert info["softmax_blocks"] == [3, 7, 11, 15, 19]


def test_model_info_matches_diffusers_default():
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        ref = diffusers.SanaWMTransformer3DModel()
    from sanawm.cli.model_info import summarize

    assert summarize("sana-wm-2.6b")["parameters"] == sum(p.numel() for p in ref.parameters())


def test_unknown_preset_is_a_clear_error(capsys):
    assert main(["model-info", "sana-wm-9b"]) == 2
    err = capsys.readouterr().err
    assert "sana-wm-9b" in err and "sana-wm-2.6b" in err


@pytest.mark.parametrize("preset", ["sana-wm-tiny", "sana-wm-micro"])
def test_test_presets_are_tiny(preset, capsys):
    main(["model-info", preset])
    assert json.loads(capsys.readouterr().out)["parameters"] <= 5_000_000
