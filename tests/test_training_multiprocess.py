"""Slow training checks: a 2-process CPU run under `accelerate launch`, and overfitting one clip.

On a machine without GPUs, `accelerate launch --multi_gpu --num_processes 2` starts 2 CPU processes (gloo);
`--cpu` would start a single process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from cvd_sim.training.vae_trainer import train_vae
from test_training_engine import SMALL_RUN, write_config
from test_vae_analytic_scene import AnalyticClips

LAUNCHED = """
import sys
sys.path.insert(0, {tests!r})
from test_vae_analytic_scene import AnalyticClips
from cvd_sim.training.vae_trainer import train_vae
train_vae({config!r}, dataset=AnalyticClips(num_clips=4))
"""


@pytest.mark.slow
def test_two_process_cpu_accelerate_launch(tmp_path):
    config = write_config(tmp_path, "ddp", max_steps=3)
    script = tmp_path / "launch_train.py"
    script.write_text(LAUNCHED.format(tests=str(Path(__file__).parent), config=str(config)))
    accelerate = Path(sys.executable).with_name("accelerate")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
        capture_output=True, text=True, timeout=1200, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    state = json.loads((tmp_path / "ddp" / "checkpoints" / "step_00000003" / "manifest.json").read_text())
    assert state["state"]["world_size"] == 2
    assert (tmp_path / "ddp" / "checkpoints" / "step_00000003" / "rng_1.pt").is_file()
    assert (tmp_path / "ddp" / "final" / "vae" / "config.json").is_file()


@pytest.mark.slow
def test_overfitting_one_clip_drops_the_loss_tenfold(tmp_path):
    cfg = yaml.safe_load(yaml.safe_dump(SMALL_RUN))
    cfg["stage"].update(render_views_per_target=None, vae_decode_images=None)
    cfg["loss"] = {"depth_kind": "log_l1"}
    cfg["optim"] = {"lr": 3.0e-3, "warmup_steps": 10, "min_lr_ratio": 0.05, "weight_decay": 0.0}
    cfg["run"].update(out_dir=str(tmp_path / "overfit"), max_steps=400, checkpoint_every=400, image_every=400)
    path = tmp_path / "overfit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    history = train_vae(path, dataset=AnalyticClips(num_clips=1, views=(1,)))
    start = sum(r["loss"] for r in history[:5]) / 5
    end = sum(r["loss"] for r in history[-10:]) / 10
    assert end * 10 <= start, (start, end)
