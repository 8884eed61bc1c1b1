"""`sanawm trajectory`: from-actions, preset and plot write files; mistakes exit 2 with a helpful message."""

import json

import numpy as np

from sanawm.cameras.actions import actions_to_c2w
from sanawm.cameras.formats import load_trajectory
from sanawm.cli.main import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["trajectory", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_from_actions_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "traj.json"
    code, stdout, _ = run(capsys, "from-actions", "w-100,dw-60", "--fps", 16, "-o", out)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["frames"] == 161 and summary["duration_s"] == 10.0 and summary["output"] == str(out)
    assert summary["path_length"] == round(100 * 0.05 + 60 * 0.05 * np.sqrt(2), 6)
    traj = load_trajectory(out)
    assert len(traj) == 161 and traj.fps == 16
    np.testing.assert_array_equal(traj.c2w, actions_to_c2w("w-100,dw-60"))


def test_from_actions_speeds(tmp_path, capsys):
    out = tmp_path / "traj.npz"
    code, stdout, _ = run(capsys, "from-actions", "w-10", "--speed", "streaming", "--rotation", 2, "-o", out)
    assert code == 0
    speeds = json.loads(stdout)["speeds"]
    assert (
        speeds["translation"] == 0.025
        and speeds["rotation_deg"] == 2.0
        and speeds["translation_per_s"] == 0.4
    )
    np.testing.assert_allclose(load_trajectory(out).positions[-1], [0.0, 0.0, 0.25])


def test_preset_and_plot(tmp_path, capsys):
    a, b, png = tmp_path / "orbit.json", tmp_path / "rand.npz", tmp_path / "plot.png"
    code, stdout, _ = run(
        capsys,
        "preset",
        "orbit",
        "--frames",
        49,
        "--fps",
        8,
        "--param",
        "radius=3",
        "--param",
        "target=0,0,3",
        "-o",
        a,
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["frames"] == 49 and summary["duration_s"] == 6.0
    assert summary["params"]["radius"] == 3 and summary["params"]["height"] == 0.0
    assert summary["path_length"] == np.round(summary["path_length"], 6) > 18.0  # ≈ 2π·3
    assert run(capsys, "preset", "random_smooth", "--frames", 30, "--param", "seed=4", "-o", b)[0] == 0
    code, stdout, _ = run(capsys, "plot", a, b, "-o", png, "--every", 8)
    assert code == 0 and json.loads(stdout)["output"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_bad_key_exits_2_with_the_allowed_keys(tmp_path, capsys):
    code, _, err = run(capsys, "from-actions", "w-10,x-5", "-o", tmp_path / "t.json")
    assert code == 2
    assert "unknown key 'x'" in err and "allowed keys: w (forward)" in err
    assert not (tmp_path / "t.json").exists()


def test_other_mistakes_exit_2(tmp_path, capsys):
    out = tmp_path / "t.json"
    code, _, err = run(capsys, "preset", "circle", "-o", out)
    assert code == 2 and "choose one of orbit" in err
    code, _, err = run(capsys, "preset", "orbit", "--param", "radius", "-o", out)
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = run(capsys, "preset", "orbit", "--param", "radus=2", "-o", out)
    assert code == 2 and "its parameters are" in err
    code, _, err = run(capsys, "from-actions", "w-0", "-o", out)
    assert code == 2 and "positive whole number" in err
    code, _, err = run(capsys, "from-actions", "w-3", "-o", tmp_path / "t.txt")
    assert code == 2 and "format" in err
    code, _, err = run(capsys, "plot", tmp_path / "missing.json", "-o", tmp_path / "p.png")
    assert code == 2 and "does not exist" in err
