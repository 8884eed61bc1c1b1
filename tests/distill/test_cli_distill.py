"""`sanawm distill ode`, `dmd` and `export` end to end on a tiny teacher: the student loads, generates
with 4 steps and no guidance, `generate` takes it by default; runs resume exactly; errors name the fix."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sanawm.cli.main import main
from sanawm.distill.diagnostics import probe_summary
from sanawm.pipelines import WorldModelPipeline
from tests.training import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(teacher_pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    teacher = f"--teacher.path={teacher_pipeline}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (module fixtures run before the function-scoped one_thread)
    try:
        assert main(["distill", "ode", "distill-ode-smoke", teacher, f"--run.out_dir={root / 'ode'}"]) == 0
        assert (
            main(
                [
                    "distill",
                    "dmd",
                    "distill-dmd-smoke",
                    teacher,
                    f"--student.init_from={root / 'ode'}",
                    f"--run.out_dir={root / 'dmd'}",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    return root


def test_ode_then_dmd_then_export_gives_a_student_that_generates(runs, teacher_pipeline, tmp_path, capsys):
    ode, dmd = read_metrics(runs / "ode"), read_metrics(runs / "dmd")
    # step 0: the camera probe before training (the ODE student starts as the teacher: equal gaps)
    assert [r["step"] for r in ode] == [0, 1, 2] and all(np.isfinite(r["loss"]) for r in ode[1:])
    assert ode[0]["camera_gap_student"] == ode[0]["camera_gap_teacher"] > 0
    assert ode[0]["camera_swap_gap_student"] == ode[0]["camera_swap_gap_teacher"] > 0
    for rows in (ode, dmd):  # camera_gap.every = 1 in the smoke presets; the teacher's gap is computed once
        assert all(r["camera_gap_student"] > 0 and r["camera_swap_gap_student"] > 0 for r in rows)
        assert len({r["camera_gap_teacher"] for r in rows}) == 1
    assert json.loads((runs / "ode" / "trajectories" / "index.json").read_text())["samples"] == 4
    summary = probe_summary(runs / "ode" / "metrics.jsonl")  # what the recipes log
    assert summary.startswith("step 0: camera_gap_student") and "; step 2: " in summary
    dmd = dmd[1:]
    assert [r["latent_frames"] for r in dmd] == [3, 3, 5]  # the curriculum
    assert "dmd_loss" in dmd[0] and "dmd_loss" not in dmd[1] and "dmd_loss" in dmd[2]  # critic_steps = 2
    assert all(np.isfinite(r["critic_loss"]) for r in dmd)

    out = tmp_path / "model"
    capsys.readouterr()
    assert (
        main(["distill", "export", str(runs / "dmd"), f"--pipeline={teacher_pipeline}", f"--out={out}"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    student = WorldModelPipeline.from_pretrained(out)
    cfg = student.generation_config(seconds=2)
    assert student.is_student and cfg.timesteps == (1000.0, 960.0, 889.0, 727.0, 0.0)
    assert (cfg.guidance, cfg.mode, cfg.steps, cfg.first_chunk) == (1.0, "streaming", 4, 2)
    written = json.loads((out / "student" / "generation.json").read_text())
    assert written["context_sigma"] == cfg.context_sigma == 0.0  # clean context, as in its rollouts
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    result = student.generate(image, actions="w-40", config=cfg)
    assert result.frames.shape == (33, 64, 64, 3) and np.isfinite(result.latents.numpy()).all()

    teacher = WorldModelPipeline.from_pretrained(out, student=False)
    assert not teacher.is_student and teacher.generation_config().timesteps is None
    pairs = zip(
        teacher.transformer.state_dict().values(), student.transformer.state_dict().values(), strict=True
    )
    assert any(not torch.equal(a, b) for a, b in pairs)  # the student is its own network
    with pytest.raises(FileNotFoundError, match="distill"):
        WorldModelPipeline.from_pretrained(teacher_pipeline, student=True)

    video = tmp_path / "v.mp4"
    for flag, network in (([], "student"), (["--teacher"], "teacher")):
        args = ["generate", f"--model={out}", "--seconds=1", f"--out={video}", *flag]
        assert main(args) == 0
        assert json.loads(capsys.readouterr().out)["network"] == network


@pytest.mark.parametrize("stage", ["ode", "dmd"])
def test_runs_resume_exactly(runs, teacher_pipeline, tmp_path, stage):
    # with activation checkpointing, which must change nothing but memory
    base = [
        f"--teacher.path={teacher_pipeline}",
        f"--run.out_dir={tmp_path / 'r'}",
        "--run.activation_checkpointing=1",
    ]
    if stage == "ode":
        base.append(f"--ode.dataset={runs / 'ode' / 'trajectories'}")  # reused: same settings
    else:
        base.append(f"--student.init_from={runs / 'ode'}")
    steps = read_metrics(runs / stage)[-1]["step"]
    assert main(["distill", stage, f"distill-{stage}-smoke", *base, f"--run.steps={steps - 1}"]) == 0
    assert main(["distill", stage, f"distill-{stage}-smoke", *base, f"--run.steps={steps}", "--resume"]) == 0
    key = "loss" if stage == "ode" else "critic_loss"
    got, want = read_metrics(tmp_path / "r"), read_metrics(runs / stage)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    assert [r.get(key) for r in got[1:]] == pytest.approx([r.get(key) for r in want[1:]], rel=1e-6)
    probe = "camera_gap_student"
    assert [r[probe] for r in got] == pytest.approx([r[probe] for r in want], rel=1e-5)


def test_errors_name_the_fix(teacher_pipeline, tmp_path, capsys):
    assert main(["distill", "ode", "distill-ode-smoke", f"--run.out_dir={tmp_path / 'a'}"]) == 2
    assert "--teacher.path=" in capsys.readouterr().err
    args = [
        "distill",
        "dmd",
        "distill-dmd-smoke",
        f"--teacher.path={teacher_pipeline}",
        "--data.latent_frames=4",
        f"--run.out_dir={tmp_path / 'b'}",
    ]
    assert main(args) == 2
    assert "--data.latent_frames=5" in capsys.readouterr().err
    args = [
        "distill",
        "dmd",
        "distill-dmd-smoke",
        f"--teacher.path={teacher_pipeline}",
        "--dmd.curriculum=[[5, 3]]",
        f"--run.out_dir={tmp_path / 'c'}",
    ]
    assert main(args) == 2
    assert "start at step 0" in capsys.readouterr().err
    args = [
        "distill",
        "export",
        str(tmp_path / "nothing"),
        f"--pipeline={tmp_path}",
        f"--out={tmp_path / 'o'}",
    ]
    assert main(args) == 2
    assert "pipeline folder" in capsys.readouterr().err


def test_every_preset_loads_and_covers_its_curriculum():
    from sanawm.distill.config import list_distill_presets, load_distill_config

    names = list_distill_presets()
    assert {"distill-ode-default", "distill-dmd-default", "distill-ode-2.6b", "distill-dmd-2.6b"} <= set(
        names
    )
    for name in names:
        cfg = load_distill_config(name, ["--teacher.path=anywhere"])
        assert cfg.student.timesteps == (1000.0, 960.0, 889.0, 727.0, 0.0), name
        if name.startswith("distill-dmd"):
            assert cfg.data.latent_frames >= max(t for _, t in cfg.dmd.curriculum), name


def test_export_int8_stores_student_and_teacher_copy_in_int8(runs, teacher_pipeline, tmp_path, capsys):
    from sanawm.model.int8 import file_is_int8

    capsys.readouterr()
    out, base = tmp_path / "m", ["distill", "export", str(runs / "dmd"), f"--pipeline={teacher_pipeline}"]
    assert main([*base, f"--out={tmp_path / 'plain'}"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*base, f"--out={out}", "--int8"]) == 0
    report = json.loads(capsys.readouterr().out)
    files = (
        "transformer/diffusion_pytorch_model.safetensors",
        "student/transformer/diffusion_pytorch_model.safetensors",
    )
    assert all(report["weights"][f]["int8"] and file_is_int8(out / f) for f in files)
    assert (
        report["megabytes"] < plain["megabytes"] and report["student_megabytes"] < plain["student_megabytes"]
    )
    assert not file_is_int8(teacher_pipeline / files[0])  # the source folder is untouched
    vae_file = "vae/model.safetensors"  # the teacher's small VAE too, when it is not int8 yet
    assert file_is_int8(out / vae_file) and not file_is_int8(teacher_pipeline / vae_file)
    student = WorldModelPipeline.from_pretrained(out)
    teacher = WorldModelPipeline.from_pretrained(out, student=False)
    assert student.is_student and not teacher.is_student
    # a teacher folder that is int8 already is copied as it is
    assert main([*base[:3], f"--pipeline={out}", f"--out={tmp_path / 'again'}", "--int8"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["weights"][files[0]] == report["weights"][files[0]]


def test_trajectories_alone_then_students_of_other_rates_share_them(runs, teacher_pipeline, tmp_path, capsys):
    """`distill trajectories` builds the ODE stage's folder and trains nothing; an ODE run of another learning
    rate takes the folder as it is (the same trajectories as a run that built its own); other settings are
    refused with the fix named."""
    folder = tmp_path / "shared"
    base = ["distill-ode-smoke", f"--teacher.path={teacher_pipeline}", f"--ode.dataset={folder}"]
    capsys.readouterr()
    assert main(["distill", "trajectories", *base, f"--run.out_dir={tmp_path / 'a'}"]) == 0
    assert json.loads(capsys.readouterr().out) == {"trajectories": str(folder), "samples": 4}
    assert not (tmp_path / "a").exists()  # nothing trained, nothing written beside the trajectories
    own = runs / "ode" / "trajectories"
    for shard in sorted(own.glob("*.safetensors")):
        assert (folder / shard.name).read_bytes() == shard.read_bytes()
    built = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors")}
    assert main(["distill", "ode", *base, "--optim.lr=1e-3", f"--run.out_dir={tmp_path / 'b'}"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors")} == built  # read, not rebuilt
    assert read_metrics(tmp_path / "b")[-1]["step"] == 2
    capsys.readouterr()
    assert main(["distill", "trajectories", *base, "--run.seed=7", f"--run.out_dir={tmp_path / 'c'}"]) == 2
    assert "ode.dataset" in capsys.readouterr().err
