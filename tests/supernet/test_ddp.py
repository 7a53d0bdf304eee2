"""Data-parallel supernet training with two gloo processes: one step, replicas agree."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch
import yaml

from .test_train import tiny_config

WORKER = textwrap.dedent("""
    import os, sys, torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    from nas.supernet import TrainConfig, train_supernet
    config = TrainConfig.from_file(sys.argv[1])
    result = train_supernet(config, stop_after_steps=int(sys.argv[3]), progress=False, log=lambda s: None)
    rank = dist.get_rank()
    torch.save(result.supernet.state_dict(), os.path.join(sys.argv[2], f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
""")


def test_two_gloo_processes_train_one_step_and_their_replicas_agree(tmp_path):
    config = tiny_config(tmp_path / "out", data={"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 64},
                         phases=[{"name": "all", "steps": 3, "lr": 0.05, "elastic": ["kernel", "depth", "expand"]}])
    config_file = tmp_path / "ddp.yaml"
    config_file.write_text(yaml.safe_dump(config))
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(worker), str(config_file), str(tmp_path), "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # the step changed the weights: compare with the (identical) initialisation of a fresh run
    from nas.supernet import TrainConfig, train_supernet

    single = train_supernet(TrainConfig.from_dict({**config, "output_dir": str(tmp_path / "single")}),
                            stop_after_steps=0, progress=False, log=lambda s: None)
    initial = single.supernet.state_dict()
    moved = [k for k in rank0 if rank0[k].is_floating_point() and not torch.equal(rank0[k], initial[k])]
    assert "head.classifier.weight" in moved and "stem.conv.weight" in moved
    # rank 0 wrote the checkpoint at the step it stopped
    from nas.supernet import load_checkpoint

    assert load_checkpoint(tmp_path / "out" / "checkpoint.pt")["step"] == 1
