"""The demo experiment (`transcendence demo`): diverse vs clones on 2 CPU cores.

Five synthetic experts sharing an MVV-LVA base that does not play the captures it cannot see
(`mvv-lva-quiet`), each blind to captures on its own 24 squares (docs/EXPERTS.md); 10,000 games per
population; the tiny decoder trained 600 steps of 24
games; a round robin of experts, base and model temperatures plus head-to-heads; one Elo
scale. Override any field as `--config.games=30000` or `--config.training.train.steps=1000`.
"""

import os

from ml_collections import ConfigDict

from transcendence_jax.configs import tiny


def get_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.seeds = 1                          # independent replicates (population, games, training, tournament)
    c.experts = 5
    # Populations by the shared fraction of each expert's blind squares, at one per-expert error
    # rate: 0 diverse (each square blind for one or two experts) ... 1 clones (one shared set).
    c.populations = ConfigDict({"diverse": 0.0, "clones": 1.0})
    c.base = "mvv-lva-quiet"             # the experts' shared skill (docs/EXPERTS.md); under "mvv-lva" an expert
                                         # blind to every capture on may play one, and the clones' control fails
    c.blind_fraction = 0.375             # 24 of 64 squares: each square blind for one or two of the five
    c.games = 10000                      # expert games per population
    c.workers = os.cpu_count() or 1
    c.training = tiny.get_config()       # the model and its training
    c.training.train.steps = c.training.train.decay_steps = 600
    c.training.train.batch_size = 24
    c.train_together = "auto"            # models of one shape in one stacked step: auto = on a GPU/TPU
    c.temperatures = [0.001, 0.1, 0.5, 1.0]
    c.reference_players = ["vote", "mixture", "game-mixture"]  # the experts' majority vote, their mixture per
                                         # move and per game (experts/reference.py)
    c.model_votes = [5, 25]              # inference-time vote: the model samples k moves, plays the mode
    c.vote_temperature = 1.0             # ... each sampled at this temperature
    c.ensemble_vote = False              # also a model per expert (its own games only), voting move by move
    c.quiet_random_player = True         # also the model at the lowest tau where a capture is legal and a random
                                         # move elsewhere (as the experts): its gain without its fixed quiet moves
    c.games_per_pair = 40                # round robin, colours alternating
    c.head_to_head = 100                 # model at the lowest temperature vs each expert, extra games
    c.max_plies = 100                    # the experts' own cap; adjudicated by material, as their games
    c.openings = None                    # tournament starts: None (the start position), N random plies, or a
                                         # .pgn / .epd book (each opening twice per pair, colours swapped)
    c.analysis_positions = 200           # held-out positions of the state-level measure
    c.state_values = "stockfish"         # each move's value: Stockfish's expected score ("rollouts": base-policy play)
    c.stockfish_depth = 8
    return c
