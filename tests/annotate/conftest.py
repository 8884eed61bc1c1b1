import numpy as np
import pytest

pytest.importorskip("pycolmap", reason="sanawm annotate needs pycolmap: pip install 'sanawm[annotate]'")
pytest.importorskip("cv2", reason="sanawm annotate needs OpenCV: pip install 'sanawm[annotate]'")
pytest.importorskip(
    "scenedetect", reason="sanawm annotate needs PySceneDetect: pip install 'sanawm[annotate]'"
)


def textured_pan(n: int, h: int = 96, w: int = 128, step: int = 3, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 windows sliding over one random texture: a clip with steady motion."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    width = w + step * n
    coarse = rng.integers(0, 256, size=(h // 12 + 2, width // 12 + 2, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((width + 24, h + 24), Image.Resampling.BICUBIC))
    return np.stack([texture[:h, i * step : i * step + w] for i in range(n)])
