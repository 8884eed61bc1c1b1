"""The metric depth estimator interface: a tiny random transformers model from a local folder, and the
estimator scale mode of `annotate_frames` (structure from motion replaced by known geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from sanawm.annotate import SfmResult, TransformersDepthEstimator, annotate_frames
from sanawm.annotate import pipeline as pipeline_module
from tests.annotate.conftest import textured_pan


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory):
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny-depth")
    backbone = Dinov2Config(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=56,
        patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8, head_hidden_size=8, depth_estimation_type="metric", max_depth=20, patch_size=14,
    )  # fmt: skip
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=False, do_pad=False
    ).save_pretrained(folder)
    return folder


def test_local_model_predicts_depth_at_frame_size(tiny_depth_model, tmp_path):
    est = TransformersDepthEstimator(tiny_depth_model, batch_size=2)
    depth = est.predict(textured_pan(3, h=48, w=64))
    assert depth.shape == (3, 48, 64) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth > 0).all()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        TransformersDepthEstimator(tmp_path)


def test_estimator_scale_mode(tiny_depth_model, monkeypatch):
    frames = textured_pan(6, h=48, w=64)
    est = TransformersDepthEstimator(tiny_depth_model)
    model_depth = est.predict(frames)
    n = len(frames)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 2, 3] = np.arange(n) * 0.1  # SfM units
    rng = np.random.default_rng(0)
    obs = [np.stack([rng.uniform(0, 63, 50), rng.uniform(0, 47, 50), np.full(50, 2.0)], 1) for _ in range(n)]
    fake = SfmResult(
        registered=np.ones(n, bool), c2w=c2w, intrinsics=np.tile([50.0, 50, 31.5, 23.5], (n, 1)),
        reprojection_error=np.full(n, 0.3), num_points=np.full(n, 50), observations=obs, image_size=(48, 64),
        work_size=(48, 64), camera={"model": "PINHOLE"}, focal_prior=None, num_models=1, num_points3d=50,
        loop_pairs=0,
    )  # fmt: skip
    monkeypatch.setattr(pipeline_module, "run_sfm", lambda *a, **k: fake)
    ann = annotate_frames(frames, fps=10.0, depth_estimator=est)
    expected = float(np.median(model_depth)) / 2.0  # metres per SfM unit (points at SfM depth 2)
    steps = np.diff(ann.trajectory.c2w[:, 2, 3])
    np.testing.assert_allclose(steps, 0.1 * expected, rtol=0.02)
    assert ann.scale_mode == "estimator" and "metric depth model" in ann.scale.units
    assert {c.name for c in ann.checks} >= {"scale_cv", "field_of_view", "aspect", "registered"}
