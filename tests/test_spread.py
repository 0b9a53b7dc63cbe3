"""Manifests read on every core (`manifest.spread`): the same result as one by one, whatever
a worker does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from iotc_apply.manifest import spread


@pytest.mark.parametrize("sizes", [[5], [1, 1], [10, 1, 1, 1, 1, 10], [0, 0, 0, 7],
                                   [3] * 17, [100, 1, 1, 1], [1, 1, 1, 100]])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_runs_are_contiguous_non_empty_and_cover_every_file(sizes: list[int],
                                                           parts: int) -> None:
    runs = spread.split(sizes, parts)
    assert [i for run in runs for i in run] == list(range(len(sizes)))
    assert all(len(run) for run in runs)
    assert len(runs) <= min(parts, len(sizes))


def test_runs_share_the_bytes_about_equally() -> None:
    runs = spread.split([10] * 100, 4)
    assert [len(r) for r in runs] == [25, 25, 25, 25]
    heavy_first = spread.split([90] + [1] * 10, 2)
    assert heavy_first == [range(0, 1), range(1, 11)]


def test_a_small_tree_a_threaded_process_or_another_system_reads_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    big = 64 * spread.MIN_BYTES
    assert spread.workers(spread.MIN_BYTES, 10) == 1
    assert spread.workers(big, 1) == 1
    monkeypatch.setattr(spread.threading, "active_count", lambda: 1)
    assert spread.workers(big, 100) == min(len(os.sched_getaffinity(0)), spread.MAX_WORKERS)
    monkeypatch.setattr(spread.sys, "platform", "darwin")
    assert spread.workers(big, 100) == 1
    monkeypatch.undo()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert spread.workers(big, 100) == 1  # a thread may hold a lock across the fork
    finally:
        stop.set()
        other.join()


def _squares(run: range) -> list[tuple[int, int, int]]:
    return [(i, i * i, os.getpid()) for i in run]


def test_workers_answer_in_file_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spread, "workers", lambda total, items: 3)
    results = spread.map_runs(_squares, [1] * 9)
    assert [[i for i, _, _ in part] for part in results] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert all(sq == i * i for part in results for i, sq, _ in part)
    pids = {pid for part in results for _, _, pid in part}
    assert len(pids) == 3 and os.getpid() in pids  # two workers and this process


def test_a_worker_that_dies_or_cannot_start_costs_time_not_results(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getpid()

    def dies_in_a_worker(run: range) -> list[tuple[int, int, int]]:
        if os.getpid() != parent and run.start == 3:
            os._exit(9)  # killed, out of memory: no answer on the pipe
        return _squares(run)

    monkeypatch.setattr(spread, "workers", lambda total, items: 3)
    results = spread.map_runs(dies_in_a_worker, [1] * 9)
    assert [[i for i, _, _ in part] for part in results] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert {pid for _, _, pid in results[1]} == {parent}  # read again here

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(spread.os, "fork", no_fork)
    results = spread.map_runs(_squares, [1] * 9)
    assert {pid for part in results for _, _, pid in part} == {parent}
    assert [i for part in results for i, _, _ in part] == list(range(9))


@pytest.mark.parametrize("during_fork", [False, True], ids=["while-reading", "during-fork"])
def test_an_interrupted_read_leaves_no_worker_behind(monkeypatch: pytest.MonkeyPatch,
                                                     during_fork: bool) -> None:
    """Ctrl-C while this process reads its own run, or while a worker is being forked
    (held back until the worker is on the list of those to stop): every worker is killed
    and reaped, none left reading on its own."""
    parent = os.getpid()
    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
            if during_fork:  # Ctrl-C now, to this thread
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        return pid

    def reading(run: range) -> list[int]:
        if os.getpid() != parent:
            threading.Event().wait(60)  # a worker still reading
        if not during_fork:
            raise KeyboardInterrupt
        return list(run)

    monkeypatch.setattr(spread, "workers", lambda total, items: 2)
    monkeypatch.setattr(spread.os, "fork", fork)
    with pytest.raises(KeyboardInterrupt):
        spread.map_runs(reading, [1, 1])
    assert forked
    for pid in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped, not left running


def _tree(root: Path) -> None:
    """Files whose documents refer to each other across any split: a template and the
    devices of another file, a name declared twice in two files, variables, a DeviceSet,
    broken YAML, a schema error, a reference to a template that failed."""
    root.mkdir()
    (root / "00-vars.yaml").write_text(textwrap.dedent("""\
        apiVersion: iotc/v1
        kind: Variables
        metadata: {name: v}
        spec:
          variables:
            site: {type: string, default: plant}
        """))
    (root / "01-templates.yaml").write_text(textwrap.dedent("""\
        apiVersion: iotc/v1
        kind: Template
        metadata: {name: sensor}
        spec:
          name: Sensor
          authType: self-signed
          attributes: [{name: temperature, type: DECIMAL}]
        ---
        apiVersion: iotc/v1
        kind: Template
        metadata: {name: broken}
        spec: {name: Broken, authType: nonsense}
        """))
    device = textwrap.dedent("""\
        ---
        apiVersion: iotc/v1
        kind: Device
        metadata: {{name: {name}}}
        spec: {{template: {template}, displayName: "${{var.site}} {name}"}}
        """)
    for f in range(8):
        docs = [device.format(name=f"d{f}-{i:03}", template="sensor") for i in range(300)]
        if f == 5:
            docs.append(device.format(name="d1-007", template="sensor"))  # declared twice
            docs.append(device.format(name="x-1", template="sensr"))  # did you mean
            docs.append(device.format(name="x-2", template="broken"))  # no second error
        (root / f"devices-{f}.yaml").write_text("".join(docs))
    (root / "05-set.yaml").write_text(textwrap.dedent("""\
        apiVersion: iotc/v1
        kind: DeviceSet
        metadata: {name: many}
        spec: {count: 50, uniqueId: "s-{index:03}", template: sensor}
        """))
    (root / "06-bad.yaml").write_text("apiVersion: iotc/v1\nkind: Device\nmetadata: [\n")
    (root / "07-schema.yaml").write_text(textwrap.dedent("""\
        apiVersion: iotc/v1
        kind: Device
        metadata: {name: nope}
        spec: {template: sensor, colour: blue}
        """))


COMPARE = """
import os, sys
import iotc_apply.manifest.spread as spread
from iotc_apply.manifest import load
forks = []
real_fork = os.fork
def fork():
    pid = real_fork()
    if pid:
        forks.append(pid)
    return pid
os.fork = fork
answered = []
real_collect = spread._collect
def collect(pid, fd):
    done, value = real_collect(pid, fd)
    answered.append(done)
    return done, value
spread._collect = collect
spread.MIN_BYTES = 10 ** 12
one_by_one = load(sys.argv[1:])
spread.MIN_BYTES = 1024
spread.os.sched_getaffinity = lambda pid: {0, 1, 2, 3}  # as on a machine of 4 cores
spread_out = load(sys.argv[1:])
assert forks, "read in one process"
assert all(answered) and len(answered) == len(forks), "a worker's answer was not used"
assert spread_out == one_by_one, "results differ"
print(len(forks), one_by_one.documents, len(one_by_one.desired.resources),
      len(one_by_one.diagnostics))
for d in one_by_one.diagnostics:
    print(d)
"""


def test_a_tree_read_on_every_core_is_the_tree_read_one_file_at_a_time(
        tmp_path: Path) -> None:
    _tree(tmp_path / "m")
    # a process of its own: no thread of the test runner's may be caught by the fork
    out = subprocess.run([sys.executable, "-c", COMPARE, str(tmp_path / "m")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    forks, documents, resources, diagnostics = map(int, out[0].split())
    assert forks == 3  # four runs: three workers and the process itself
    assert documents == 1 + 2 + 8 * 300 + 3 + 1 + 1  # the broken file yields none
    assert resources == 1 + 8 * 300 + 50  # the sensor template, the devices, the set
    text = "\n".join(out[1:])
    assert diagnostics == len(out) - 1 == 5, text
    assert "devices-5.yaml" in text and "is already declared at" in text and \
        "devices-1.yaml:" in text  # the first declaration, in a file another run read
    assert "did you mean 'sensor'" in text
    assert "06-bad.yaml:4:1" in text and "07-schema.yaml:4" in text
    assert "01-templates.yaml:12:32" in text  # the broken template, its devices quiet



def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c", "parent-only"])
def test_ctrl_c_stops_the_command_and_its_workers_with_one_message(tmp_path: Path,
                                                                   group: bool) -> None:
    folder = tmp_path / "m"
    _tree(folder)
    device = "---\napiVersion: iotc/v1\nkind: Device\nmetadata: {name: big-%06d}\n" \
             "spec: {template: sensor, displayName: A device of a large tree}\n"
    for f in range(20):  # ~3 MB: several seconds of reading
        (folder / f"big-{f:02}.yaml").write_text("".join(device % (f * 1000 + i)
                                                          for i in range(1000)))
    proc = subprocess.Popen([sys.executable, "-m", "iotc_apply", "validate", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group, as a terminal's job
    try:
        for _ in range(1000):  # until a worker is forked
            if _children(proc.pid) or proc.poll() is not None:
                break
            threading.Event().wait(0.01)
        workers = _children(proc.pid)
        assert workers, "no worker was forked"
        if group:  # what Ctrl-C does: the whole foreground group
            os.killpg(proc.pid, signal.SIGINT)
        else:  # the command alone: its workers must not read on
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == ["error: interrupted"], err
    for pid in workers:  # killed and reaped by the command itself before it exited
        assert not Path(f"/proc/{pid}").exists(), Path(f"/proc/{pid}/status").read_text()


def test_every_kind_travels_back_from_a_worker() -> None:
    """The examples hold every kind (templates from JSON files, firmware with its files, a
    project with windows, a rollout): each worker's answer is used, none read again."""
    root = Path(__file__).resolve().parent.parent / "examples"
    out = subprocess.run([sys.executable, "-c", COMPARE, str(root / "manifests"),
                          str(root / "rollout")], capture_output=True, text=True, check=True)
    forks, documents, _, diagnostics = map(int, out.stdout.split()[:4])
    assert forks == 3 and documents == 16 and diagnostics == 0, out.stdout
