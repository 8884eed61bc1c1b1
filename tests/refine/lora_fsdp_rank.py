"""One rank of the two-rank FSDP2 LoRA test (`test_lora.py`): two steps on the tiny refiner, sharded
with `shard_refiner`, then a LoRA checkpoint at argv[1]. Every rank sees the same batch."""

from __future__ import annotations

import sys

from sanawm.training.distributed import init_distributed, shutdown

from .test_lora import train_tiny

if __name__ == "__main__":
    env = init_distributed(device="cpu")
    trainer, losses = train_tiny(env)
    trainer.save(sys.argv[1])
    print("losses", losses, flush=True)
    shutdown(env)
