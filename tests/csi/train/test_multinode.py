"""Multi-node training through the recipe's options: two torchrun node ranks on this machine
(``--nnodes 2 --node_rank R --master_addr 127.0.0.1``, gloo, one process each, started by the
template's ``train_stage``) train the model one process trains with ``grad_accumulation: 2``
(the same global batch): equal losses and weights within float tolerance. A node killed
mid-run takes the run down; the same commands resume it from the last checkpoint and end on
the uninterrupted run's weights."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from csi.train.curves import HISTORY_NAME
from tests.csi.train.test_train import make_features, tiny_hparams
from tests.helpers import REPO

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path, name: str, **extra) -> "os.PathLike":
    full = tmp_path / "data" / "full.txt"
    if not full.exists():
        make_features(tmp_path / "data")
    hp = tiny_hparams(full, spec_augmentation=None, log_every_steps=1, **extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(hp))
    return path


def node(exp, conf, rank: int, port: int) -> subprocess.Popen:
    """One node of a 2-node run, as a recipe starts it (train_stage with the multi-node options);
    its output goes to ``EXP.node<rank>.log`` beside EXP (appended, so a rerun keeps the first)."""
    script = (f'nnodes=2 node_rank={rank} master_addr=127.0.0.1 master_port={port} nproc_per_node=1\n'
              f'. "{REPO}/utils/lib.sh"\n. "{REPO}/egs/TEMPLATE/csi1/stages.sh"\ntrain_stage "{exp}" "{conf}"\n')
    with open(node_log(exp, rank), "a") as log:
        return subprocess.Popen(["bash", "-c", script], env=ENV, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_node(p: subprocess.Popen) -> None:
    """SIGKILL a node's whole process tree, as when the machine is lost: torchrun starts its
    workers in sessions of their own, so killing its process group would spare them."""
    pids, todo = [], [p.pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            todo += [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
        except FileNotFoundError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def node_log(exp, rank: int):
    return exp.parent / f"{exp.name}.node{rank}.log"


def two_nodes(exp, conf, port: int) -> list[str]:
    """Both nodes to the end; their output of this run."""
    before = [node_log(exp, r).stat().st_size if node_log(exp, r).exists() else 0 for r in (0, 1)]
    nodes = [node(exp, conf, r, port) for r in (0, 1)]
    for p in nodes:
        p.wait(timeout=400)
    outs = [node_log(exp, r).read_text()[before[r]:] for r in (0, 1)]
    for p, out in zip(nodes, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def one_process(exp, conf) -> None:
    (exp / "config").mkdir(parents=True)
    (exp / "config" / "hparams.yaml").write_text(conf.read_text())
    r = subprocess.run([sys.executable, "-m", "tools.train", str(exp)], env=ENV, cwd=REPO, capture_output=True,
                       text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]


def weights(exp) -> dict[str, torch.Tensor]:
    last = sorted(p for p in (exp / "pt_model").glob("g_0*"))[-1]
    return torch.load(last, map_location="cpu", weights_only=True)["generator"]


def losses(exp) -> list[float]:
    return [h["total"] for h in json.loads((exp / HISTORY_NAME).read_text())]


BATCH_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def assert_same_model(a, b) -> None:
    """Equal parameters. Batch-norm running statistics are not compared: DDP broadcasts rank 0's
    at every forward, so they follow rank 0's micro-batches alone, while one process
    accumulating updates them with every micro-batch (neither enters a training loss)."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    compared = [key for key in wa if not key.endswith(BATCH_NORM_STATISTICS)]
    assert len(compared) > len(wa) // 2
    for key in compared:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5, msg=key)


def test_two_nodes_train_the_model_of_one_process_accumulating_two_micro_batches(tmp_path):
    conf = config(tmp_path, "multi", max_epochs=2)
    one_process(tmp_path / "one", config(tmp_path, "one", max_epochs=2, grad_accumulation=2))
    outs = two_nodes(tmp_path / "two", conf, free_port())
    assert "parameters identical on all 2 ranks" in outs[0]
    assert_same_model(tmp_path / "one", tmp_path / "two")
    assert losses(tmp_path / "one") == pytest.approx(losses(tmp_path / "two"), rel=1e-4)
    assert (tmp_path / "two" / ".train.done").is_file() and not (tmp_path / "two" / "pt_model" / "resume.pt").exists()


EPOCHS = 30       # ~0.2 s each: node 1 is killed after the second, long before the end


def test_a_killed_node_takes_the_run_down_and_the_same_commands_resume_it(tmp_path):
    conf = config(tmp_path, "multi", max_epochs=EPOCHS)
    exp = tmp_path / "two"
    port = free_port()
    nodes = [node(exp, conf, r, port) for r in (0, 1)]
    deadline = time.time() + 300
    while not (exp / "pt_model" / "g_00000001").exists():         # two epochs saved
        assert time.time() < deadline and nodes[0].poll() is None, \
            "the run ended before it could be killed:\n" + node_log(exp, 0).read_text()[-3000:]
        time.sleep(0.2)
    kill_node(nodes[1])                                            # node 1 is lost
    nodes[0].wait(timeout=180)
    nodes[1].wait(timeout=30)
    out0 = node_log(exp, 0).read_text()
    assert nodes[0].returncode != 0, "node 0 went on without node 1"
    assert not (exp / ".train.done").exists()
    done_epochs = sorted(p.name for p in (exp / "pt_model").glob("g_0*"))
    assert done_epochs and done_epochs[-1] < f"g_{EPOCHS - 1:08d}", out0[-2000:]

    outs = two_nodes(exp, conf, free_port())                        # the same commands again
    assert "resuming" in outs[0] and "resumed at epoch" in outs[0]
    one_process(tmp_path / "one", config(tmp_path, "one", max_epochs=EPOCHS, grad_accumulation=2))
    assert_same_model(tmp_path / "one", exp)
