"""`sanawm generate` writes a real mp4, its cameras and a plot; errors leave nothing behind."""

import json
import shutil

from sanawm.cli.main import main
from sanawm.data import video_info

from .test_world_model import _image


def test_generate_writes_video_cameras_and_plot(reference_pipeline_folder, tmp_path, capsys):
    image = tmp_path / "first.png"
    _image().save(image)
    out = tmp_path / "clips" / "walk.mp4"
    code = main(
        [
            "generate",
            "--model",
            str(reference_pipeline_folder),
            "--image",
            str(image),
            "--actions",
            "w-16,l-16",
            "--seconds",
            "2",
            "--height",
            "64",
            "--width",
            "64",
            "--steps",
            "2",
            "--guidance",
            "2",
            "--mode",
            "streaming",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--preview",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 33
    frames, fps, size = video_info(out)
    assert (frames, fps, size) == (33, 16.0, (64, 64))
    cams = json.loads((tmp_path / "clips" / "walk.cameras.json").read_text())
    assert len(cams["frames"]) == 33 and cams["image_size"] == [64, 64]
    assert (tmp_path / "clips" / "walk.trajectory.png").stat().st_size > 1000


def test_context_sigma_from_generation_json_and_the_flag(reference_pipeline_folder, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(reference_pipeline_folder, model)
    (model / "generation.json").write_text(json.dumps({"mode": "streaming", "context_sigma": 0.05}))
    image = tmp_path / "first.png"
    _image().save(image)
    base = ["generate", "--model", str(model), "--image", str(image), "--actions", "w-16", "--seconds", "1"]
    base += ["--height", "64", "--width", "64", "--steps", "1", "--out", str(tmp_path / "a.mp4")]
    base += ["--device", "cpu", "--dtype", "fp32"]
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["context_sigma"] == 0.05
    assert main(base + ["--context-sigma", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["context_sigma"] == 0.0
    assert main(base + ["--context-sigma", "1"]) == 2
    assert "--context-sigma 0.05" in capsys.readouterr().err


def test_generate_errors_name_the_fix(tmp_path, capsys):
    assert main(["generate", "--image", str(tmp_path / "x.png"), "--actions", "w-8", "--seconds", "0.5"]) == 2
    assert "x.png does not exist" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path / "x.gif")]) == 2
    assert "--out must end in .mp4" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path), "--actions", "w-8"]) == 2
    assert "pipeline folder" in capsys.readouterr().err
    assert main(["generate", "--cuda-graphs", "--device", "cpu", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "--cuda-graphs needs a CUDA device: pass --device cuda" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_generate_with_no_model_image_or_path_uses_the_shipped_ones(tmp_path, capsys):
    """The shipped default model, its example frame and key path (shortened here to 1 s, 1 step)."""
    out = tmp_path / "out.mp4"
    assert main(["generate", "--seconds", "1", "--steps", "1", "--out", str(out), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "using --actions" in captured.err
    summary = json.loads(captured.out)
    assert summary["mode"] == "streaming" and summary["size"] == [256, 256]
    assert video_info(out) == (17, 16.0, (256, 256))


def test_generate_compile_compiles_every_block_once(tmp_path, capsys, monkeypatch):
    """--compile hands the network's blocks to torch.compile (stubbed here: compiling on a CPU takes
    minutes; tests/gpu checks the compiled network streams like the eager one)."""
    from sanawm.model import SanaWMTransformer

    compiled = []

    def record(self, mode=None):
        compiled.append(mode)
        return self

    monkeypatch.setattr(SanaWMTransformer, "compile_blocks", record)
    out = tmp_path / "out.mp4"
    args = ["generate", "--seconds", "1", "--steps", "1", "--out", str(out), "--device", "cpu", "--compile"]
    assert main(args) == 0
    assert compiled == [None] and out.is_file()
