"""The trained models of a finished experiment in a new tournament: other players, same models.

For each replicate folder (e.g. runs/demo_bh3/diverse, .../diverse-seed1): its settings.json is the
experiment's config; `--set KEY=VALUE` (JSON values) changes it for the new tournament; the model
is the folder's train/ checkpoint; the games go to OUT/<folder name>/tournament and the ratings and
fidelity lines (every "X minus Y", 95% CI) are printed, then the mean over the folders of each.
Used to rate the experts' mixture per game (`game-mixture`) beside the mixture per move:

  python benchmarks/retournament.py runs/demo_bh3/diverse runs/demo_bh3/diverse-seed1 \\
    runs/demo_bh3/diverse-seed2 --out runs/gm --set 'reference_players=["vote","mixture","game-mixture"]' \\
    --set 'temperatures=[0.001,1.0]' --set 'model_votes=[]' --set quiet_random_player=false

and, with `--set support_player=true` beside the same, the model at tau 1 without the moves no
expert plays (`model-support@1`: docs/FINDINGS.md, "Where model@1 loses").
"""

import argparse
import json
import os

from machine import report_load  # benchmarks/machine.py
from ml_collections import ConfigDict

from transcendence_jax.experiment import rate, tournament
from transcendence_jax.training.checkpoint import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="replicate folders of a demo run (settings.json, train/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], help="KEY=JSON, e.g. games_per_pair=40")
    args = parser.parse_args()
    report_load()
    lines: dict[str, list[float]] = {}
    for folder in args.folders:
        with open(os.path.join(folder, "settings.json")) as f:
            settings = json.load(f)
        kind = os.path.basename(os.path.normpath(folder)).split("-seed")[0]
        settings["populations"] = {kind: settings.pop("overlap")}
        for item in args.set:
            key, value = item.split("=", 1)
            settings[key] = json.loads(value)
        cfg = ConfigDict(settings)
        model, _, step = load_model(os.path.join(folder, "train"))
        out = os.path.join(args.out, os.path.basename(os.path.normpath(folder)), "tournament")
        os.makedirs(out, exist_ok=True)
        rated = rate(cfg, tournament(cfg, kind, model, out))
        elo = {name: round(r, 1) for name, r in rated["ratings"].elo.items()}
        print(f"{folder} (seed {cfg.seed}, step {step}): {json.dumps(elo)}")
        for label, (diff, lo, hi) in rated["fidelity"].items():
            print(f"  {label}: {diff:+.0f} [{lo:+.0f}, {hi:+.0f}]")
            lines.setdefault(label, []).append(diff)
    print(f"mean over {len(args.folders)} folders: "
          + "; ".join(f"{label} {sum(v) / len(v):+.0f}" for label, v in lines.items()))


if __name__ == "__main__":
    main()
