"""`evaluate_worlds` end to end on the tiny pipeline, its metric helpers, and `sanawm eval worlds`."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from sanawm.cli.main import main
from sanawm.eval.worlds import (
    METHODS,
    MethodResult,
    Paired,
    SceneResult,
    Scores,
    WorldsReport,
    compare_reports,
    evaluate_worlds,
    horizon_frames,
    revisit_pairs,
    score_method,
)
from sanawm.pipelines import GenerationConfig, WorldModelPipeline

BASELINES = set(METHODS) - {"refined"}  # "refined" only with a refiner


def test_cli_refuses_a_missing_model_folder(capsys, tmp_path):
    argv = ["eval", "worlds", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.json")]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err


def test_horizon_frames_leave_out_the_given_frame():
    np.testing.assert_array_equal(horizon_frames(17, 16.0, 1.0), np.arange(1, 17))
    np.testing.assert_array_equal(horizon_frames(161, 16.0, 5.0), np.arange(1, 81))


def test_revisit_pairs_need_equal_poses():
    c2w = np.tile(np.eye(4), (5, 1, 1))
    c2w[:, 0, 3] = [0.0, 1.0, 2.0, 1.0, 0.0]
    assert revisit_pairs(c2w) == [(0, 4), (1, 3)]
    c2w[3, 0, 3] = 1.5
    assert revisit_pairs(c2w) == [(0, 4)]


def test_score_method_windows_and_revisit():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (17, 16, 16, 3), dtype=np.uint8)
    frames = truth.copy()
    frames[8:] = 0
    r = score_method(frames, truth, 16.0, (0.25, 1.0, 5.0), [(0, 16), (1, 15)])
    assert set(r.horizons) == {0.25, 1.0}  # 5 s is past the 1 s clip
    assert r.horizons[0.25].psnr == math.inf and r.horizons[0.25].count == 4
    assert r.horizons[1.0].count == 16 and math.isfinite(r.horizons[1.0].psnr)
    assert r.psnr[0] == math.inf and r.revisit.count == 2


def test_drift_is_early_minus_late_psnr():
    truth = np.zeros((21, 12, 12, 3), dtype=np.uint8)  # 20 s at 1 fps
    frames = truth.copy()
    frames[1:11] = 1  # first 10 s: MSE 1 -> 48.13 dB
    frames[11:] = 10  # t >= 10 s (frames 10..20): MSE (1 + 10 * 100) / 11
    r = score_method(frames, truth, 1.0, (), [])
    late = 10 * math.log10(255.0**2 / ((1 + 10 * 100) / 11))
    assert r.drift == pytest.approx(10 * math.log10(255.0**2) - late)
    assert score_method(frames[:20], truth[:20], 1.0, (), []).drift is None  # 19 s: no drift


def _method(psnr_1s, drift):
    """A method's result with only a 1 s score and a drift (curves empty)."""
    return MethodResult(np.zeros(3), np.zeros(3), {1.0: Scores(psnr_1s, 0.5, 16)}, None, drift)


def test_paired_table_gives_per_scene_differences_and_wins():
    scenes = [  # refined − model at 1 s: +1, +3, −1, and a scene where the model is exact (left out)
        SceneResult(
            s, "room", "walk", 0, 17, 0, {"model": _method(m, dm), "refined": _method(r, dr)}, None, {}
        )
        for s, (m, r, dm, dr) in enumerate(
            [(20, 21, 2, 1), (20, 23, 2, 3), (20, 19, 2, 0.5), (math.inf, 30, 1, 1)]
        )
    ]
    table = WorldsReport({}, scenes).paired_table()
    assert list(table) == ["refined − model"]  # no baselines in this report
    at_1s, drift = table["refined − model"]["1 s"], table["refined − model"]["drift"]
    assert (at_1s.mean, at_1s.median, at_1s.wins, at_1s.n) == (1.0, 1.0, 2, 3)
    assert at_1s.se == pytest.approx(np.std([1, 3, -1], ddof=1) / math.sqrt(3))
    assert (drift.mean, drift.wins, drift.n) == (0.375, 2, 4)  # less drift is better: 1, −1, 1.5, 0
    printed = WorldsReport({}, scenes).to_markdown()
    assert "| refined − model | +1.00 ± 1.15, median +1.00, 2/3 |" in printed
    assert Paired.of([math.inf]) is None and math.isnan(Paired.of([0.5]).se)


def _report(values: dict[str, list[tuple[float, float]]], seeds=(7, 8, 9), frames=17) -> WorldsReport:
    """A report of `seeds` whose method m scores values[m][i] = (PSNR at 1 s, drift) on scene i."""

    scenes = [
        SceneResult(
            seed, "room", "walk", 1, frames, 0, {m: _method(*v[i]) for m, v in values.items()}, None, {}
        )
        for i, seed in enumerate(seeds)
    ]
    return WorldsReport({"seconds": 1.0}, scenes)


def test_compare_pairs_two_reports_scene_by_scene(tmp_path, capsys):
    """`eval compare`: A − B per scene seed for the methods both have (not repeat_first), or the pairs
    asked for; only shared scenes count; mismatched scenes, missing methods and bad flags are refused."""
    rep = [(30.0, 0.0)] * 3
    a = _report(
        {"model": [(20, 2), (21, 2), (22, 2)], "refined": [(21, 1), (21, 3), (25, 1)], "repeat_first": rep}
    )
    b = _report(  # another order, and a scene (6) that A lacks
        {
            "model": [(20, 2), (21, 2), (22, 2), (0, 0)],
            "refined": [(20, 2), (22, 2), (23, 2), (0, 0)],
            "repeat_first": rep + [(30.0, 0.0)],
        },
        seeds=(9, 8, 7, 6),
    )
    table = compare_reports(a, b)
    assert list(table) == ["A:model − B:model", "A:refined − B:refined"]
    # by seed: A's refined on 7, 8, 9 is 21, 21, 25; B's is 23, 22, 20 -> −2, −1, +5
    got = table["A:refined − B:refined"]["1 s"]
    assert (got.mean, got.median, got.wins, got.n) == (pytest.approx(2 / 3), -1.0, 1, 3)
    assert table["A:refined − B:refined"]["drift"].mean == pytest.approx(1 / 3)  # B − A: 1, −1, 1
    cross = compare_reports(a, b, [("refined", "model")])["A:refined − B:model"][
        "1 s"
    ]  # B's model 22, 21, 20
    assert (cross.mean, cross.wins) == (pytest.approx((-1 + 0 + 5) / 3), 1)
    with pytest.raises(ValueError, match="no method 'no_camera'"):
        compare_reports(a, b, [("no_camera", "model")])
    with pytest.raises(ValueError, match="share no scene"):
        compare_reports(a, _report({"model": [(1, 1)]}, seeds=(99,)))
    other_size = _report({"model": [(1, 1)] * 3})
    other_size.settings["size"] = [128, 128]
    with pytest.raises(ValueError, match="different size"):
        compare_reports(WorldsReport({**a.settings, "size": [256, 256]}, a.scenes), other_size)
    with pytest.raises(ValueError, match="scene 7 differs"):
        compare_reports(a, _report({"model": [(1, 1)] * 3}, frames=33))
    # the CLI, on saved reports (compact ones too: no per-frame curves)
    a.save(tmp_path / "a.json")
    compact = b.to_json()
    for sc in compact["scenes"]:
        for m in sc["methods"].values():
            del m["psnr_per_frame"], m["ssim_per_frame"]
    (tmp_path / "b.json").write_text(json.dumps(compact))
    args = ["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert main([*args, "--method", "refined", "--out", str(tmp_path / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "3 scenes in common" in out and "| A:refined − B:refined | +0.67 ± 2.19, median -1.00, 1/3 |" in out
    )
    assert (
        json.loads((tmp_path / "cmp.json").read_text())["paired"]["A:refined − B:refined"]["1 s"]["wins"] == 1
    )
    assert main([*args, "--method", "refined:"]) == 2
    assert "write M or M:N" in capsys.readouterr().err
    assert main([*args, "--method", "nope"]) == 2
    assert "no method 'nope'" in capsys.readouterr().err
    assert main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "missing.json")]) == 2
    assert "no such report" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    pytest.importorskip("diffusers")
    from tests.pipelines.conftest import build_reference_pipeline

    folder = tmp_path_factory.mktemp("eval_pipeline")
    build_reference_pipeline().save_pretrained(folder)
    return folder, WorldModelPipeline.from_pretrained(folder)


def test_dropping_the_camera_changes_only_the_camera_inputs(pipe):
    """`pipe.sample_latents(drop_camera=True)` (the no-camera baseline) shares the model's noise, text and
    sampler: same shape, different latents; the default keeps the camera."""
    _, p = pipe
    from PIL import Image

    from sanawm.world import build_scene, path_for, render_trajectory

    scene = build_scene(1_000_000)
    traj = path_for(scene, 1, "walk", 1.0, 16, size=64)
    image = Image.fromarray(render_trajectory(scene, traj)[0][0])
    for mode in ("streaming", "bidirectional"):
        cfg = GenerationConfig(seconds=1.0, height=64, width=64, mode=mode, steps=2, guidance=2.0, seed=3)
        path = p.camera_path(cfg, traj, None, None, (64, 64))
        pixels, path = p.prepare_image(image, path, cfg)
        want = p.sample_latents(pixels, path, "a room", cfg)
        again = p.sample_latents(pixels, path, "a room", cfg, drop_camera=False)
        torch.testing.assert_close(again, want, rtol=0, atol=0)
        dropped = p.sample_latents(pixels, path, "a room", cfg, drop_camera=True)
        assert dropped.shape == want.shape and not torch.equal(dropped, want)


def test_evaluate_worlds_end_to_end(pipe):
    _, p = pipe
    seeds = [1_000_000, 1_000_001]
    report = evaluate_worlds(
        p, seeds, seconds=1.0, size=64, kinds=("walk", "revisit"), steps=2, guidance=2.0, mode="streaming"
    )
    assert isinstance(report, WorldsReport)
    assert [s.scene_seed for s in report.scenes] == seeds
    assert [s.path_kind for s in report.scenes] == ["walk", "revisit"]
    for scene in report.scenes:
        assert scene.frames == 17
        assert set(scene.methods) == BASELINES
        for result in scene.methods.values():
            assert result.psnr.shape == result.ssim.shape == (17,)
            assert set(result.horizons) == {1.0}  # 5 s and longer are past the clip
            assert result.horizons[1.0].count == 16
        repeat = scene.methods["repeat_first"]
        assert repeat.psnr[0] == math.inf and repeat.ssim[0] == pytest.approx(1.0)
        assert scene.methods["model"].psnr[0] > 0 and math.isfinite(scene.methods["model"].psnr[1])
    walk, revisit = report.scenes
    assert walk.revisit_pairs == 0 and walk.methods["model"].revisit is None
    assert revisit.revisit_pairs == 8
    assert revisit.ground_truth_revisit.psnr == math.inf  # exact renders: the ceiling
    assert revisit.methods["model"].revisit.count == 8
    assert math.isfinite(revisit.methods["no_camera"].revisit.psnr)
    # the camera matters to the network: with and without it the videos differ
    assert not np.array_equal(walk.methods["model"].psnr, walk.methods["no_camera"].psnr)

    table = report.horizon_table()
    assert set(table) == BASELINES and set(table["model"]) == {1.0}
    assert set(report.revisit_table()) == {*BASELINES, "ground_truth"}
    md = report.to_markdown()
    assert "| model |" in md and "| no_camera |" in md and "| repeat_first |" in md and "1 s" in md
    assert "Revisit consistency" in md
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["settings"]["scene_seeds"] == seeds
    assert data["scenes"][0]["methods"]["repeat_first"]["psnr_per_frame"][0] is None  # +inf -> null
    assert data["revisit"]["ground_truth"]["ssim"] == pytest.approx(1.0)


def test_cli_writes_json_and_prints_table(pipe, tmp_path, capsys):
    folder, _ = pipe
    out = tmp_path / "report.json"
    argv = ["eval", "worlds", "--model", str(folder), "--scenes", "1", "--seconds", "1", "--size", "64"]
    argv += ["--steps", "1", "--guidance", "1", "--kinds", "revisit", "--out", str(out)]
    argv += ["--sheets", str(tmp_path / "sheets"), "--plot", str(tmp_path / "psnr.png")]
    argv += ["--context-sigma", "0.05"]
    assert main(argv) == 0
    sheet = Image.open(tmp_path / "sheets" / "scene_1000000.png")
    assert sheet.height > 3 * 64 and sheet.width > 8 * 64  # 3 rows (truth, model, no camera) x 8 times
    assert Image.open(tmp_path / "psnr.png").width > 0
    printed = capsys.readouterr().out
    assert "| model |" in printed and "Revisit consistency" in printed
    data = json.loads(out.read_text())
    assert data["settings"]["scene_seeds"] == [1_000_000]
    assert data["settings"]["context_sigma"] == 0.05
    # per-frame curves one line each, to 1e-4 dB (a 20-scene report stays a few hundred kB)
    curve = data["scenes"][0]["methods"]["model"]["psnr_per_frame"]
    assert len(curve) == 17 and f'"psnr_per_frame": {json.dumps(curve)}' in out.read_text()
    assert all(v is None or v == round(v, 4) for v in curve)
    assert data["scenes"][0]["path_kind"] == "revisit"


def test_cli_rejects_unknown_kind(pipe, tmp_path, capsys):
    folder, _ = pipe
    argv = [
        "eval",
        "worlds",
        "--model",
        str(folder),
        "--kinds",
        "walk,jump",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert main(argv) == 2
    assert "choose from" in capsys.readouterr().err
    argv[5] = "walk"
    assert main([*argv, "--context-sigma", "1"]) == 2
    assert "context_sigma must be in [0, 1)" in capsys.readouterr().err


def test_evaluation_samples_as_generate_does(pipe):
    """Settings left out come from the model's generation.json (shift, steps, guidance, context_sigma),
    as in `sanawm generate`; explicit steps replace a student's few-step list."""
    _, p = pipe
    saved = dict(p.generation_defaults)
    try:
        p.generation_defaults.update(
            shift=3.0, steps=2, guidance=1.0, timesteps=[1000, 500, 0], context_sigma=0.05
        )
        report = evaluate_worlds(p, [1_000_000], seconds=0.5, size=64, kinds=("walk",))
        s = report.to_json()["settings"]
        assert (s["shift"], s["guidance"], s["timesteps"], s["steps"]) == (3.0, 1.0, [1000, 500, 0], None)
        assert s["context_sigma"] == 0.05
        kw = dict(seconds=0.5, size=64, kinds=("walk",), steps=1, context_sigma=0.0)
        s = evaluate_worlds(p, [1_000_000], **kw).to_json()["settings"]
        assert (s["steps"], s["timesteps"], s["shift"], s["context_sigma"]) == (1, None, 3.0, 0.0)
    finally:
        p.generation_defaults.clear()
        p.generation_defaults.update(saved)


def test_cli_refine_adds_paired_refined_method_and_drift(pipe, tmp_path, capsys):
    import shutil

    from sanawm.model.diffusers_compat import save_diffusers

    folder, p = pipe
    with_refiner = tmp_path / "pipeline"
    shutil.copytree(folder, with_refiner)
    save_diffusers(p.transformer, with_refiner / "refiner" / "transformer")  # a refiner = stage-1 weights
    (with_refiner / "refiner" / "refiner.json").write_text(json.dumps({"block_size": 3, "kv_window": 2}))
    out = tmp_path / "report.json"
    argv = ["eval", "worlds", "--model", str(with_refiner), "--scenes", "1", "--seconds", "1", "--fps", "16"]
    argv += ["--size", "64", "--steps", "1", "--guidance", "1", "--kinds", "walk", "--out", str(out)]
    assert main([*argv, "--refine"]) == 0
    printed = capsys.readouterr().out
    assert "| refined |" in printed
    data = json.loads(out.read_text())
    methods = data["scenes"][0]["methods"]
    assert set(methods) == set(METHODS) and data["settings"]["refiner"] == "SmallRefiner"
    assert methods["refined"]["psnr_per_frame"][1:] != methods["model"]["psnr_per_frame"][1:]
    assert main([*argv, "--out", str(tmp_path / "plain.json")]) == 0  # stage 1 alone: the same "model"
    capsys.readouterr()
    plain = json.loads((tmp_path / "plain.json").read_text())["scenes"][0]["methods"]
    assert plain["model"]["psnr_per_frame"] == methods["model"]["psnr_per_frame"]
    assert methods["model"]["drift"] is None and data["drift"] == {}  # a 1 s clip has no drift
    assert main([*argv[:3], str(folder), *argv[4:], "--refine"]) == 2
    assert "has no refiner/" in capsys.readouterr().err


def test_no_ablation_skips_the_camera_removed_baseline(pipe, tmp_path):
    _, p = pipe
    report = evaluate_worlds(p, [1_000_000], seconds=0.5, size=64, kinds=("walk",), steps=1, ablation=False)
    assert report.methods() == ["model", "repeat_first"]
    assert set(report.scenes[0].seconds_taken) == {"render", "model"}
    assert "no_camera" not in report.to_markdown() and report.settings["ablation"] is False


def test_merge_of_split_runs_equals_one_run(pipe, tmp_path, capsys):
    """Scenes evaluated by two processes (even seed offsets, so path kinds alternate as in one run) and
    merged give the tables of one run over all of them; bad merges are refused with the reason."""
    _, p = pipe
    kw = dict(seconds=1.0, size=64, kinds=("walk", "revisit"), steps=2, guidance=2.0, mode="streaming")
    whole = evaluate_worlds(p, [1_000_000, 1_000_001, 1_000_002, 1_000_003], **kw)
    parts = [
        evaluate_worlds(p, [1_000_002, 1_000_003], **kw),
        evaluate_worlds(p, [1_000_000, 1_000_001], **kw),
    ]
    paths = []
    for i, part in enumerate(parts):
        part.save(tmp_path / f"part{i}.json")
        paths.append(str(tmp_path / f"part{i}.json"))
    assert main(["eval", "merge", *paths, "--out", str(tmp_path / "all.json")]) == 0
    merged = json.loads((tmp_path / "all.json").read_text())
    want = json.loads(json.dumps(whole.to_json(), allow_nan=False))
    assert merged["settings"]["scene_seeds"] == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    assert merged["drift"] == want["drift"] == {}  # 1 s clips: no drift
    assert merged["horizons"].keys() == want["horizons"].keys()
    for m, s in want["revisit"].items():
        assert merged["revisit"][m]["count"] == s["count"]
        if s["psnr"] is None:  # exact (+inf, written as null): repeat_first and the ground-truth ceiling
            assert merged["revisit"][m]["psnr"] is None
        else:
            assert merged["revisit"][m]["psnr"] == pytest.approx(s["psnr"], rel=1e-6)
    for m, row in want["horizons"].items():
        for h, s in row.items():
            assert merged["horizons"][m][h]["psnr"] == pytest.approx(s["psnr"], rel=1e-6)
            assert merged["horizons"][m][h]["count"] == s["count"]
    assert "| model |" in capsys.readouterr().out
    # the same scenes twice, or runs with other settings, are not one evaluation
    assert main(["eval", "merge", paths[0], paths[0], "--out", str(tmp_path / "x.json")]) == 2
    assert "more than one report" in capsys.readouterr().err
    other = evaluate_worlds(p, [1_000_004], **{**kw, "steps": 3})
    other.save(tmp_path / "other.json")
    merge = ["eval", "merge", paths[0], str(tmp_path / "other.json"), "--out", str(tmp_path / "y.json")]
    assert main(merge) == 2
    assert "different settings (steps)" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()
    # context noise is a setting; reports from before it existed had clean context (0)
    assert whole.settings["context_sigma"] == 0.0
    second = json.loads((tmp_path / "part1.json").read_text())
    for name, value in (("noised", 0.05), ("legacy", None)):
        settings = {k: v for k, v in second["settings"].items() if k != "context_sigma"}
        if value is not None:
            settings["context_sigma"] = value
        (tmp_path / f"{name}.json").write_text(json.dumps({**second, "settings": settings}))
    merge = ["eval", "merge", paths[0], str(tmp_path / "noised.json"), "--out", str(tmp_path / "z.json")]
    assert main(merge) == 2
    assert "different settings (context_sigma)" in capsys.readouterr().err
    merge = ["eval", "merge", paths[0], str(tmp_path / "legacy.json"), "--out", str(tmp_path / "z.json")]
    assert main(merge) == 0
    assert json.loads((tmp_path / "z.json").read_text())["settings"]["context_sigma"] == 0.0
