"""The table of `multi_gpu_train.sh`: one row per bench_train.py JSON in a folder, in the order run.

python benchmarks/summarise_train.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(folder: Path) -> dict[str, dict]:
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return {p.stem: json.loads(p.read_text()) for p in files}


def rows(runs: dict[str, dict]) -> list[str]:
    out = [
        "| case | model | GPUs | CP | global batch | latent frames | tokens/step | median step (s) "
        "| tokens/s per GPU | scaling eff. | peak GiB (max rank) | losses vs 1 GPU (max rel.) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in runs.items():
        base = runs.get(name.replace("_fsdp", "_1gpu").split("_cp2")[0]) if "fsdp" in name else None
        eff = ""
        if (
            base
            and base is not r
            and base["tokens_per_step"] // base["global_batch"] == (r["tokens_per_step"] // r["global_batch"])
        ):
            eff = f"{r['tokens_per_s_per_gpu'] / base['tokens_per_s_per_gpu']:.0%}"
        peaks = [p for p in r["peak_mem_gib_per_rank"] if p is not None]
        peak = f"{max(peaks):.1f}" if peaks else "—"
        ref = r.get("reference")
        match = f"{ref['max_rel_diff']:.1e} ({'ok' if ref['match'] else 'MISMATCH'})" if ref else ""
        out.append(
            f"| {name} | {r['model_preset']} ({r['parameters'] / 1e6:,.1f} M) | {r['world_size']} "
            f"| {r['context_parallel']} | {r['global_batch']} | {r['latent_frames']} "
            f"| {r['tokens_per_step']:,} "
            f"| {r['median_step_s']:.3f} | {r['tokens_per_s_per_gpu']:,.0f} | {eff} "
            f"| {peak} | {match} |"
        )
    return out


def main(argv=None) -> int:
    folder = Path((argv or sys.argv[1:])[0])
    runs = load(folder)
    if not runs:
        print(f"no bench_train.py JSON in {folder}", file=sys.stderr)
        return 1
    print("\n".join(rows(runs)))
    missing = sorted(p.stem for p in folder.glob("*.log") if p.stem not in runs)
    if missing:
        print(f"\nno result (see the .log files): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
