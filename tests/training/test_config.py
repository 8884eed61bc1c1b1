"""The config system: YAML presets with `base:`, typed command-line overrides, clear errors."""

import pytest

from sanawm.training.config import (
    TrainConfig,
    config_to_dict,
    dump_config,
    list_presets,
    load_config,
)

STAGES = ("stage1-gdn", "stage2-softmax", "stage3-minute-camera", "stage4-finetune")


def test_tiny_smoke_preset_loads_typed():
    cfg = load_config("tiny-smoke")
    assert isinstance(cfg, TrainConfig)
    assert cfg.model.preset == "sana-wm-tiny" and cfg.data.source == "synthetic"
    assert cfg.data.size == (128, 128) and isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1e-3
    assert cfg.flow.chunks(cfg.data.latent_frames) == (4, 3)
    assert cfg.run.precision == "fp32"


def test_every_stage_has_a_preset_per_model_size():
    presets = set(list_presets())
    assert "tiny-smoke" in presets
    for stage in STAGES:
        assert {stage, f"small-{stage}"} <= presets
        assert load_config(stage).model.preset == "sana-wm-2.6b"
        assert load_config(f"small-{stage}").model.preset == "sana-wm-small"


def test_stage_presets_follow_spec_6():
    s1, s2, s3, s4 = (load_config(s) for s in STAGES)
    assert s1.model_config().block_kinds == ("gdn",) * 20  # stage 1: GDN everywhere
    assert s2.model_config().block_kinds == ("gdn", "gdn", "gdn", "softmax") * 5
    assert (s1.run.steps, s2.run.steps, s3.run.steps, s4.run.steps) == (30_000, 30_000, 31_000, 10_000)
    assert s1.data.latent_frames == s2.data.latent_frames == 11  # 5 s
    assert s3.data.latent_frames == s4.data.latent_frames == 121  # 60 s
    assert not s1.data.camera and not s2.data.camera and s3.data.camera and s4.data.camera
    assert s3.data.batch_size == 32 and s3.optim.lr == 1e-5
    assert s3.run.context_parallel == s4.run.context_parallel == 2  # minute-long clips over rank pairs
    for s in (s1, s2, s3, s4):
        assert s.optim.grad_clip == 0.5 and s.run.precision == "bf16"
        assert s.flow.timesteps.shift == 10.0 and s.flow.timesteps.clean_first_prob == 0.9
        assert s.flow.timesteps.pattern_weights == (0.1, 0.4, 0.4, 0.1, 0.0)
    assert s2.model.init_from == "runs/stage1-gdn" and s4.model.init_from == "runs/stage3-minute-camera"


def test_overrides_are_typed_from_the_annotations():
    cfg = load_config(
        "tiny-smoke",
        [
            "--optim.lr=1e-5",
            "--run.steps=100",
            "--data.size=64,96",
            "--optim.betas=[0.9, 0.95]",
            "--optim.ema_decay=null",
            "--run.activation_checkpointing=true",
            "--flow.timesteps.p_anchor=0.5",
            "--flow.kv_window=2",
            "--model.overrides.num_layers=2",
        ],
    )
    assert cfg.optim.lr == 1e-5 and cfg.run.steps == 100 and cfg.data.size == (64, 96)
    assert cfg.optim.betas == (0.9, 0.95) and cfg.optim.ema_decay is None
    assert cfg.run.activation_checkpointing is True and cfg.flow.timesteps.p_anchor == 0.5
    assert cfg.flow.kv_window == 2
    assert cfg.model.overrides == {"num_layers": 2} and cfg.model_config().num_layers == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("--optim.lrr=1e-5", r"unknown config key optim\.lrr; did you mean optim\.lr\?"),
        ("--optimizer.lr=1", r"unknown config key optimizer; did you mean optim\?"),
        (
            "--model.overrides.num_layer=2",
            r"model\.overrides\.num_layer; did you mean model\.overrides\.num_layers",
        ),
        ("--run.steps=abc", r"run\.steps must be an integer, got 'abc'"),
        ("--run.steps=1.5", r"run\.steps must be an integer"),
        ("--optim.lr=fast", r"optim\.lr must be a number, got 'fast'"),
        ("--run.precision=fp16", r"run\.precision must be one of \['fp32', 'bf16'\]"),
        ("--run.progress=maybe", r"run\.progress must be true or false"),
        ("--data.size=64", r"data\.size must have 2 items"),
        ("--data.size=100,100", r"multiples of 32"),
        ("--optim.lr.x=1", r"--optim\.lr is a value, not a section"),
        ("optim.lr=1", r"must look like --section\.key=value"),
        ("--model.preset=sana-wm-9b", r"unknown model\.preset 'sana-wm-9b'"),
    ],
)
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny-smoke", [override])


def test_yaml_file_with_base_and_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tiny-smoke\noptim:\n  lr: 3.0e-4\nrun:\n  steps: 7\n")
    cfg = load_config(path)
    assert cfg.optim.lr == 3e-4 and cfg.run.steps == 7 and cfg.model.preset == "sana-wm-tiny"
    assert cfg.optim.ema_decay == 0.99  # from the base
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_config(cfg))
    assert load_config(dumped) == cfg
    assert config_to_dict(load_config(config_to_dict(cfg))) == config_to_dict(cfg)


def test_missing_config_names_the_presets():
    with pytest.raises(ValueError, match="tiny-smoke"):
        load_config("no-such-preset")
    with pytest.raises(FileNotFoundError):
        load_config("missing.yaml")
