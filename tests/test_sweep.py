"""Sweeps: a grid of real experiment configs run as points (real data, training, tournaments,
Stockfish), killed and resumed, one point alone, reports of partial sweeps, bad configs."""

import json
import math
import os
import pathlib
import shlex
import subprocess
import sys
import time

import pytest

from transcendence_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def sweep_cli(*args):
    return [sys.executable, "-m", "transcendence_jax", "sweep", *map(str, args)]


def error_line(capsys, argv) -> str:
    """Run the CLI in this process: exit code 2 and exactly one line on stderr, returned."""
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), (code, err)
    return err


def write_sweep(path, grid: str, *, seeds: int = 1, experiment: str = "populations") -> str:
    """A sweep config file of the reduced experiment with this grid (Python source)."""
    path.write_text(
        "from ml_collections import ConfigDict\n"
        "from transcendence_jax.configs.sweeps import experiment\n\n\n"
        "def get_config(size):\n"
        "    c = ConfigDict()\n"
        f"    c.experiment = {experiment!r}\n"
        "    c.base = experiment('reduced')\n"
        "    c.base.populations = ConfigDict({'crowd': 0.0})\n"
        "    c.base.temperatures = [0.001, 1.0]\n"
        f"    c.grid = {grid}\n"
        f"    c.seeds = {seeds}\n"
        "    return c\n")
    return str(path)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_presets_expand_at_every_size():
    """Every packaged sweep at every size: its points, each a valid experiment config (the model
    builds), folders distinct; the diversity grid is overlap x K at one blind fraction."""
    from transcendence_jax.configs.sweeps import NAMES
    from transcendence_jax.sweep.grid import SIZES, load_sweep, points
    from transcendence_jax.sweep.populations import parameter_count

    for name in NAMES:
        for size in SIZES:
            sweep = load_sweep(name, size)
            pts = points(sweep)
            assert len({p.folder for p in pts}) == len(pts) and [p.index for p in pts] == list(range(len(pts)))
            assert all(p.cfg.seeds == 1 and p.cfg.seed == sweep.base.seed + p.labels["seed"] for p in pts)
            params = sorted({parameter_count(p.cfg.training.model) for p in pts})
            if name == "scale" and size == "laptop":
                assert 0.25e6 < params[0] < 0.35e6 and 8e6 < params[-1] < 12e6, params
    div = points(load_sweep("diversity", "laptop"))
    assert {(p.labels["experts"], p.labels["overlap"]) for p in div} == {
        (k, o) for k in (3, 5, 9) for o in (0.0, 0.25, 0.5, 0.75, 1.0)}
    assert {p.cfg.blind_fraction for p in div} == {0.375} and {p.cfg.experts for p in div} == {3, 5, 9}
    assert {p.cfg.populations.crowd for p in div} == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_bad_sweeps_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    bad = {
        "[('exprts', [3, 5])]": "unknown config key 'exprts'",
        "[]": "empty grid",
        "[('experts', [])]": "empty grid",
        "[('experts,games', [3, 5])]": "each value must be a tuple of 2",
        "[('experts', ['many'])]": "expected a int",
    }
    for grid, message in bad.items():
        err = error_line(capsys, ["sweep", write_sweep(tmp_path / "bad.py", grid), "--out", out])
        assert message in err, (grid, err)
    assert "experiment 'nope' unknown" in error_line(
        capsys, ["sweep", write_sweep(tmp_path / "bad.py", "[('experts', [3])]", experiment="nope"), "--out", out])
    assert "not found" in error_line(capsys, ["sweep", "no-such-sweep", "--out", out])
    assert "seeds=0" in error_line(capsys, ["sweep", "diversity", "--size", "reduced", "--out", out,
                                            "--config.seeds=0"])
    assert "has points 0..1" in error_line(capsys, ["sweep", "diversity", "--size", "reduced", "--out", out,
                                                    "--point", "7"])
    assert "--shard '3/2'" in error_line(capsys, ["sweep", "diversity", "--size", "reduced", "--out", out,
                                                  "--shard", "3/2"])
    assert not os.path.exists(out)  # nothing was run or written


@pytest.mark.slow
def test_killed_sweep_resumes_and_partial_report(tmp_path):
    """The reduced diversity sweep (2 points, one at a time) killed with SIGKILL while its second
    point trains: its child goes with it; --report on the partial sweep reports point 0 and names
    point 1 unfinished; a rerun runs point 1 only (point 0's files untouched) and reports both."""
    out = tmp_path / "div"
    proc = subprocess.Popen(sweep_cli("diversity", "--size", "reduced", "--out", out, "--workers", 1),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = out / "000-experts3_overlap0.0_seed0"
    second = out / "001-experts3_overlap1.0_seed0"
    deadline = time.time() + 900
    # Killed in point 1's training: past its data stage, whose pool of game workers (grandchildren,
    # not ours to stop) would otherwise finish their chunk before noticing.
    while not (first / "point.json").exists() or not (second / "crowd" / "train").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.5)
    kids = children(proc.pid)
    assert kids
    proc.kill()
    printed = proc.communicate()[0]
    assert "-- point 0 (experts=3 overlap=0.0 seed=0) done in" in printed
    assert "1 done, 1 running, 0 left" in printed
    for _ in range(100):  # the point's process dies with its parent (PR_SET_PDEATHSIG)
        if not any(alive(k) for k in kids):
            break
        time.sleep(0.1)
    assert not any(alive(k) for k in kids)
    assert not (second / "point.json").exists()
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}

    report = subprocess.run(sweep_cli("diversity", "--size", "reduced", "--out", out, "--report"),
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "1 of 2 points done, 1 unfinished" in report.stdout
    assert f"point 1 (experts=3 overlap=1.0 seed=0) started: {second}" in report.stdout
    partial = json.loads((out / "results.json").read_text())
    assert [p["status"] for p in partial["points"]] == ["done", "started"]
    assert len(partial["groups"]) == 1 and partial["groups"][0]["labels"]["overlap"] == 0.0

    again = subprocess.run(sweep_cli("diversity", "--size", "reduced", "--out", out, "--workers", 2),
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 points, 1 of 2 done, 1 to run, 1 at a time" in again.stdout
    assert "point 0 (" not in again.stdout.split("2 of 2 points done")[0]  # never started again
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before
    results = json.loads((out / "results.json").read_text())
    assert [p["status"] for p in results["points"]] == ["done", "done"]
    groups = {g["labels"]["overlap"]: g for g in results["groups"]}
    assert set(groups) == {0.0, 1.0}
    for overlap, folder in ((0.0, first), (1.0, second)):
        (row,) = json.loads((folder / "point.json").read_text())["rows"]
        for name in ("vote_minus_best_expert", "model_minus_best_expert", "model_minus_vote"):
            # One seed: its own value, and a CI drawn from its own bootstrap over the games.
            m, own = groups[overlap]["measures"][name], row["measures"][name]
            assert m["value"] == own["value"] and m["per_seed"] == [own["value"]]
            assert min(own["samples"]) <= m["lo"] <= m["hi"] <= max(own["samples"]) and len(own["samples"]) == 500
    rows = json.loads((first / "point.json").read_text())["rows"]
    assert rows[0]["labels"] == {"population": "crowd", "overlap": 0.0, "experts": 3, "params": tiny_params()}
    assert (out / "figure.png").stat().st_size > 1000 and "| overlap |" in (out / "summary.md").read_text()
    (crossing,) = results["crossings"]
    assert crossing["measure"] == "model_minus_best_expert" and crossing["line"] == 3
    # A changed sweep on this folder is refused before anything runs, naming what changed.
    changed = subprocess.run(sweep_cli("diversity", "--size", "reduced", "--out", out, "--config.base.games=400"),
                             capture_output=True, text=True)
    assert changed.returncode == 2 and "games: 300 -> 400" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_point_runs_exactly_that_point_and_failures_are_named(tmp_path):
    """--point 1 runs point 1 alone (here one that fails: an unknown base policy): one line, exit
    2, failed.txt; --point 0 then runs point 0 alone; a whole run redoes nothing finished and
    names the failed point in one line; the report names it with its error."""
    config = write_sweep(tmp_path / "two.py", "[('base', ['mvv-lva', 'no-such-policy'])]")
    out = tmp_path / "two"
    r = subprocess.run(sweep_cli(config, "--size", "reduced", "--out", out, "--point", 1), capture_output=True,
                       text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: unknown base policy")
    (failed,) = out.glob("001-*/failed.txt")
    assert "no-such-policy" in failed.read_text()
    assert not list(out.glob("000-*")) and not (out / "sweep.json").exists()  # point 0 untouched; no shared file

    r = subprocess.run(sweep_cli(config, "--size", "reduced", "--out", out, "--point", 0), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    (done,) = out.glob("000-*/point.json")
    assert not list(out.glob("001-*/point.json"))
    stamp = done.stat().st_mtime_ns

    r = subprocess.run(sweep_cli(config, "--size", "reduced", "--out", out, "--workers", 2), capture_output=True,
                       text=True)
    assert r.returncode == 2 and done.stat().st_mtime_ns == stamp
    assert "1 of 2 done, 1 to run" in r.stdout and "FAILED (exit code 2)" in r.stdout
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "1 point(s) failed: 001-baseno-such-policy_seed0" in err[0] and "kept" in err[0]
    results = json.loads((out / "results.json").read_text())
    assert [p["status"] for p in results["points"]] == ["done", "failed"]
    assert "no-such-policy" in results["points"][1]["error"] and "point 1 (base=no-such-policy seed=0) failed" \
        in results["table"]


def test_zero_crossing_and_its_bootstrap():
    """The crossing of a falling margin, interpolated, with a CI from the seeds' and games' draws;
    one that never falls is reported past the grid's end."""
    import numpy as np

    from transcendence_jax.sweep.grid import Point
    from transcendence_jax.sweep.report import crossings, group, zero_crossing

    assert zero_crossing([0, 0.5, 1], [100, 50, -50]) == pytest.approx(0.75)
    assert zero_crossing([0, 1], [-1, 5]) == -math.inf and zero_crossing([0, 1], [1, 5]) == math.inf
    rng = np.random.default_rng(0)
    rows = []
    for k, margins in {3: [120, 40, -40, -120], 5: [200, 180, 160, 150]}.items():
        for overlap, m in zip([0.0, 1 / 3, 2 / 3, 1.0], margins):
            for seed in range(2):
                samples = (m + seed * 4 + rng.normal(0, 10, 400)).tolist()
                rows.append((Point(0, {"experts": k, "overlap": overlap, "seed": seed}, None, ""),
                             dict(labels={}, measures={"margin": dict(value=m + seed * 4, samples=samples)})))
    groups = group(rows, seed=0)
    assert len(groups) == 8 and all(g["seeds"] == [0, 1] for g in groups)
    rc = dict(x="overlap", lines="experts", crossing="margin", measures=["margin"])
    found = {c["line"]: c for c in crossings(groups, rc, seed=0)}
    assert found[3]["crossing"] == pytest.approx(1 / 3 + 1 / 3 * 42 / 80, abs=1e-3)  # seed means 122, 42, -38, -118
    assert found[3]["lo"] < found[3]["crossing"] < found[3]["hi"] and found[3]["hi"] - found[3]["lo"] < 0.2
    assert found[5]["crossing"] == "> 1" and found[5]["lo"] == "> 1"


def test_tpu_script_runs_each_hosts_share_then_the_report():
    env = {**os.environ, "PROJECT": "proj", "ZONE": "us-central2-b", "TPU_NAME": "pod", "BUCKET": "gs://bkt",
           "HOSTS": "2"}
    printed = subprocess.run(["bash", str(REPO / "tpu_scripts" / "sweep.sh"), "--dry-run", "diversity", "laptop",
                              "div", "--config.seeds=2"], env=env, capture_output=True, text=True, check=True).stdout
    cmds = [shlex.split(line[2:]) for line in printed.splitlines() if line.startswith("+ ")]
    assert len(cmds) == 3
    for w, cmd in enumerate(cmds[:2]):
        remote = cmd[-1]
        assert cmd[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and f"--worker={w}" in cmd
        assert ("transcendence sweep diversity --size laptop --out ~/sweeps/div --config.seeds=2 "
                f"--shard {w}/2 --workers 1") in remote
        assert "rsync -r gs://bkt/sweeps/div ~/sweeps/div" in remote  # resumes from what the bucket holds
        assert remote.endswith("gsutil -m -q rsync -r ~/sweeps/div gs://bkt/sweeps/div; exit $code")
    assert "--worker=0" in cmds[2] and "--out ~/sweeps/div --config.seeds=2 --report" in cmds[2][-1]
    usage = subprocess.run(["bash", str(REPO / "tpu_scripts" / "sweep.sh"), "--dry-run", "diversity"], env=env,
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    assert "--dry-run" in subprocess.run(["bash", str(REPO / "tpu_scripts" / "sweep.sh"), "--help"],
                                         capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_shard_runs_its_share_and_list_shows_states(tmp_path, capsys):
    """--shard 1/2 runs points 1 and 3 only (here each fails at once: unknown base policies);
    --list shows every point's state."""
    config = write_sweep(tmp_path / "four.py", "[('base', ['nope0', 'nope1', 'nope2', 'nope3'])]")
    out = tmp_path / "four"
    r = subprocess.run(sweep_cli(config, "--size", "reduced", "--out", out, "--shard", "1/2", "--workers", 1),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "2 point(s) failed: 001-basenope1_seed0, 003-basenope3_seed0" in r.stderr
    assert sorted(p.parent.name[:3] for p in out.glob("*/failed.txt")) == ["001", "003"]
    assert "`--report` aggregates them all" in r.stdout and not (out / "results.json").exists()  # a shard's part
    assert not list(out.glob("000-*")) and not list(out.glob("002-*"))
    assert cli.main(["sweep", config, "--size", "reduced", "--out", str(out), "--list"]) == 0
    states = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert states == ["missing", "failed", "missing", "failed"]


def test_report_labels_several_key_axes_and_gives_each_measure_its_unit(tmp_path, capsys):
    """The specialists preset's crowd axis (expert_kind,experts set together) reads as its keys in
    the legend, the crossings and the table (a column per key), never as a tuple; an Elo measure
    gets "(Elo)" and the zero line, entropy nats and agreement a fraction, without it (points faked:
    point.json files, no training)."""
    import numpy as np

    from transcendence_jax.sweep.grid import load_sweep, points
    from transcendence_jax.sweep.report import figure, report, unit_of

    sweep = load_sweep("specialists", "reduced")
    sweep.grid = [("crowd", "expert_kind,experts", [("specialist", 3), ("blind", 5)]),
                  ("overlap", "populations.crowd", [0.0, 1.0])]
    sweep.report.measures = ["model_minus_best_expert", "entropy", "base_agreement"]
    out = tmp_path / "spec"
    rng = np.random.default_rng(0)
    for p in points(sweep):
        margin = 80 - 160 * p.labels["overlap"]
        row = dict(labels=dict(population="crowd", overlap=p.labels["overlap"], experts=p.cfg.experts, params=1000),
                   measures=dict(model_minus_best_expert=dict(value=margin,
                                                              samples=(margin + rng.normal(0, 10, 200)).tolist()),
                                 entropy=2.4 - 0.2 * p.labels["overlap"], base_agreement=0.41),
                   info={})
        (out / p.folder).mkdir(parents=True)
        (out / p.folder / "point.json").write_text(json.dumps(dict(rows=[row])))
    summary = report(sweep, str(out))
    capsys.readouterr()
    assert (out / "figure.png").stat().st_size > 1000

    table = summary["table"]
    assert "('specialist'" not in table and "('blind'" not in table
    assert ("| expert_kind | experts | overlap | seeds | model_minus_best_expert (Elo) | entropy (nats) "
            "| base_agreement (fraction) |") in table
    assert "| specialist | 3 | 0.0 | 1 | +80 [" in table and "| 2.400 [2.400, 2.400] | 0.410 [0.410, 0.410] |" in table
    texts = sorted(c["text"] for c in summary["crossings"])
    assert texts[0].startswith("expert_kind=blind, experts=5: model_minus_best_expert crosses zero at overlap 0.5")
    assert texts[1].startswith("expert_kind=specialist, experts=3: ")

    fig = figure(summary["groups"], summary["report"], summary["crossings"])
    elo, entropy, agreement = fig.axes[:3]
    assert [ax.get_ylabel() for ax in (elo, entropy, agreement)] == [
        "model_minus_best_expert (Elo)", "entropy (nats)", "base_agreement (fraction)"]
    assert [t.get_text() for t in elo.get_legend().get_texts()] == [
        "expert_kind=blind, experts=5", "expert_kind=specialist, experts=3"]

    def zero_lines(ax):
        return [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and set(ln.get_ydata()) == {0}]

    assert len(zero_lines(elo)) == 1 and not zero_lines(entropy) and not zero_lines(agreement)
    assert entropy.get_ylim()[0] > 1  # not squashed down to a zero line
    assert [unit_of(m) for m in ("elo@1", "minus_best_expert@1", "model_minus_vote", "entropy", "base_agreement",
                                 "steps")] == ["Elo", "Elo", "Elo", "nats", "fraction", ""]
    sweep.report.units = {"entropy": "bits"}  # a sweep config's own units win over the rule
    summary = report(sweep, str(out))
    assert "| entropy (bits) |" in summary["table"] and summary["report"]["units"]["entropy"] == "bits"


def tiny_params() -> int:
    """The parameter count of the tiny config's model (the sweeps' decoder)."""
    from flax import nnx

    from transcendence_jax.config import load_config
    from transcendence_jax.model import Transformer, count_params

    return count_params(Transformer(load_config("tiny").model, rngs=nnx.Rngs(0)))

