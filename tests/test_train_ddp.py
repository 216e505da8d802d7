"""Data-parallel training with two gloo processes on the CPU (torchrun)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from gradtts.train.state import load_training_state
from train_fixtures import make_feats, smoke_overrides


@pytest.mark.slow  # two DDP training processes under torch.distributed.run: 21 CPU-s (tests/conftest.py)
def test_two_process_ddp_steps_stay_in_sync(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 6, "b": 6}, seed=2)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gradtts.train", *smoke_overrides(feats, out, "trainer.max_steps=4", "trainer.save_every=2",
                                                    "data.batch_size=3")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers are in the same new session
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]
    done = json.loads((out / "train_done.json").read_text())
    assert done["world"] == 2 and done["step"] == 4
    # Each rank saw different batches and draws (seed + rank); equal weights mean gradients were all-reduced.
    assert len(done["rank_digests"]) == 2 and done["rank_digests"][0] == done["rank_digests"][1]
    state = load_training_state(out / "ckpt/step_0000004.pt")
    assert len(state["rng"]) == 2 and not (state["rng"][0]["torch"] == state["rng"][1]["torch"]).all()
    assert state["sampler"] == {"epoch": 1, "batch": 2}  # 12 items / batch 3 = 4 batches, 2 per rank per epoch
