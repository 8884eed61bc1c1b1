"""Datasets: clip folders (video + cameras + optional depth + meta), manifests, a PyTorch dataset, KITTI."""

from .clip import Clip, ClipMeta, is_complete_clip, read_clip, write_clip
from .dataset import ClipDataset
from .kitti import convert_kitti_sequence
from .manifest import ManifestEntry, read_manifest, write_manifest
from .video import read_video, video_info, write_video

__all__ = [
    "Clip",
    "ClipDataset",
    "ClipMeta",
    "ManifestEntry",
    "convert_kitti_sequence",
    "is_complete_clip",
    "read_clip",
    "read_manifest",
    "read_video",
    "video_info",
    "write_clip",
    "write_manifest",
    "write_video",
]
