"""Synthetic experts: the flaw, reproducible parallel generation, the dataset the CLI writes."""

import json

import chess
import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader

from transcendence_jax import cli
from transcendence_jax.data.boards import game_boards
from transcendence_jax.data.build import dataset_files
from transcendence_jax.data.records import decode
from transcendence_jax.data.tokenizer import decode_game
from transcendence_jax.errors import UserError
from transcendence_jax.experts import policies as P
from transcendence_jax.experts import population as E

# White to move: Rxa8 wins Black's undefended queen, which also attacks the rook on a1.
QUEEN_HANGS = "q3k3/8/8/8/8/8/8/R3K3 w - - 0 1"
A8 = 1 << chess.A8


# --- the straightforward reference the fast path must match move for move -------------------


def _reference_scores(board, moves, blind):
    """(true, seen) score of every legal move, one move at a time (the original implementation)."""
    us, them = board.turn, not board.turn
    theirs = ours = 0
    for sq in chess.scan_forward(board.occupied_co[them]):
        theirs |= board.attacks_mask(sq)
    for sq in chess.scan_forward(board.occupied_co[us]):
        ours |= board.attacks_mask(sq)
    piece_at, occ_them, ep, V = board.piece_type_at, board.occupied_co[them], board.ep_square, P.VALUE
    hanging = {}
    for sq in chess.scan_forward(board.occupied_co[us] & theirs & ~board.kings):
        value = V[piece_at(sq)]
        attackers = chess.scan_forward(board.attackers_mask(them, sq))
        if not ours >> sq & 1 or min(V[piece_at(a)] for a in attackers) < value:
            hanging[sq] = value
    quiet = lambda attacked, rescue: 0.0 if attacked else (9.5 + rescue if rescue else 1.0)
    true, seen = [], []
    for m in moves:
        fr, to = m.from_square, m.to_square
        attacked = theirs >> to & 1
        if occ_them >> to & 1:
            victim = V[piece_at(to)]
        elif to == ep and board.pawns >> fr & 1:
            victim = 1
        elif not m.promotion:
            true.append(quiet(attacked, hanging.get(fr, 0)))
            seen.append(quiet(attacked and not blind >> to & 1, 0 if blind >> fr & 1 else hanging.get(fr, 0))
                        if blind else true[-1])
            continue
        else:
            victim = 0
        cost = (V[m.promotion] if m.promotion else V[piece_at(fr)]) if attacked else 0
        gain = victim + (V[m.promotion] - 1 if m.promotion else 0) - cost
        best = max(gain, (0 if attacked else hanging.get(fr, 0)) - 0.5)
        true.append(10.0 + best if best > 0 else (1.0 if gain == 0 else 0.0))
        if not blind:
            seen.append(true[-1])
        elif blind >> to & 1:
            seen.append(-1.0 if victim else 10.0 + V[m.promotion] - 1)
        else:
            best = max(gain, (0 if attacked or blind >> fr & 1 else hanging.get(fr, 0)) - 0.5)
            seen.append(10.0 + best if best > 0 else (1.0 if gain == 0 else 0.0))
    return true, seen


def _reference_options(board, blind):
    """(top moves in legal-move order, whether each is base-best), from list(board.legal_moves)."""
    moves = list(board.legal_moves)
    if not moves:
        return [], []
    true, seen = _reference_scores(board, moves, blind)
    top, best = max(seen), max(true)
    return [m for m, s in zip(moves, seen) if s == top], [t == best for t, s in zip(true, seen) if s == top]


def _reference_decide(board, rng, blind):
    choices, good = _reference_options(board, blind)
    if not choices:
        return None, False
    k = int(rng.integers(len(choices))) if len(choices) > 1 else 0
    return choices[k], not good[k]


# Checks, double check, pins, en passant (legal and pinned), castling, promotions with capture.
EDGE_FENS = [
    "r3k2r/pppq1ppp/2n2n2/1B1pp3/3PP1b1/2N2N2/PPPQ1PPP/R3K2R w KQkq - 4 8",
    "4k3/8/8/8/4r3/8/4N3/4K3 w - - 0 1",
    "4k3/8/8/8/1b6/8/8/r3K3 w - - 0 1",
    "8/8/8/K2pP2r/8/8/8/7k w - d6 0 2",
    "8/8/3k4/2pP4/8/8/8/4K3 w - c6 0 2",
    "4k3/8/8/8/1b6/8/3PPP2/4K3 w - - 0 1",
    "1r2k3/P1P5/8/8/8/8/5p2/4K1N1 w - - 0 1",
    "1r2k3/P1P5/8/8/8/8/5p2/3K2N1 w - - 0 1",
    "1r2k3/P1P5/8/8/8/8/5p2/3K2N1 b - - 0 1",
    "4k3/4q3/8/8/8/8/4B3/4K3 w - - 0 1",
    "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3",
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",
    "r3k2r/8/8/8/2b5/8/8/R3K2R w KQkq - 0 1",  # f1 attacked: only queenside castling
    "1r2k2r/8/8/8/8/8/8/R3K2R w KQk - 0 1",  # b1 attacked: queenside castling still legal
]


def _positions(games=4, seed=0):
    """Boards from real expert games (diverse and clones) plus the edge cases above."""
    boards = [chess.Board(f) for f in EDGE_FENS]
    for g in range(games):
        experts = E.population("clones" if g % 2 else "diverse", 5, g)
        board = chess.Board()
        for move in E.play_game(experts[g % 5], experts[(g + 1) % 5], np.random.default_rng([seed, g])).moves:
            boards.append(board.copy(stack=False))
            board.push(move)
    return boards


def test_fast_path_equals_the_reference():
    masks = [0] + [e.blind for e in E.population("diverse", 5, 0)] + [E.population("clones", 5, 3)[0].blind]
    boards = _positions()
    assert len(boards) > 300 and sum(b.is_check() for b in boards) > 5
    for i, board in enumerate(boards):
        for blind in masks:
            assert P.choices(board, blind, "safe") == _reference_options(board, blind), (board.fen(), blind)
            a, b = np.random.default_rng([i, blind]), np.random.default_rng([i, blind])
            assert P.decide(board, a, blind, "safe") == _reference_decide(board, b, blind)


def test_safe_blind_square_capture_is_not_played_and_is_flagged():
    board = chess.Board(QUEEN_HANGS)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        assert P.decide(board, rng, 0, "safe") == (chess.Move.from_uci("a1a8"), False)
        move, blind = P.decide(board, rng, A8, "safe")
        # It cannot see the queen it could take, but it still sees its rook is attacked: it saves it.
        assert move != chess.Move.from_uci("a1a8") and move.from_square == chess.A1 and blind
        assert not board.is_attacked_by(chess.BLACK, move.to_square)
        # Blind somewhere irrelevant: plays the base move, unflagged.
        assert P.decide(board, rng, 1 << chess.H5, "safe") == (chess.Move.from_uci("a1a8"), False)


def test_safe_blind_expert_misses_the_opponents_capture_too():
    # White's knight on e5 is attacked by the d6 pawn: the base saves it; blind on e5, it may not.
    board = chess.Board("4k3/8/3p4/4N3/8/8/8/4K3 w - - 0 1")
    rng = np.random.default_rng(0)
    assert all(P.decide(board, rng, 0, "safe")[0].from_square == chess.E5 for _ in range(20))
    blind = [P.decide(board, rng, 1 << chess.E5, "safe") for _ in range(50)]
    assert any(m.from_square != chess.E5 and flag for m, flag in blind)


# White to move: three captures: c4xd5 (pawn takes queen: the MVV-LVA move), Rh1xh8 (rook
# takes rook), Nf3xe5 (knight takes pawn).
MVV = "4k2r/8/8/3qp3/2P5/5N2/3P4/4K2R w K - 0 1"


def test_mvv_lva_takes_the_most_valuable_victim_with_the_cheapest_attacker():
    board = chess.Board(MVV)
    moves, good = P.choices(board)
    assert moves == [chess.Move.from_uci("c4d5")] and good == [True]
    rng = np.random.default_rng(0)
    assert all(P.base_policy(board, rng) == chess.Move.from_uci("c4d5") for _ in range(10))
    # Blind on d5: the queen is invisible; next best is the rook on h8, a mistake.
    assert P.choices(board, 1 << chess.D5) == ([chess.Move.from_uci("h1h8")], [False])
    assert P.decide(board, rng, 1 << chess.D5) == (chess.Move.from_uci("h1h8"), True)
    # Blind on every target: any legal move, uniformly, flagged unless it is the base's.
    everything = (1 << chess.D5) | (1 << chess.H8) | (1 << chess.E5)
    moves, good = P.choices(board, everything)
    assert moves == list(board.legal_moves) and sum(good) == 1
    drawn = [P.decide(board, rng, everything) for _ in range(4000)]
    counts = {m: 0 for m in moves}
    for move, flag in drawn:
        counts[move] += 1
        assert flag == (move != chess.Move.from_uci("c4d5"))
    assert min(counts.values()) > 0.5 * 4000 / len(moves)  # uniform: every move often
    assert P.decide(chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1"), rng) == (None, False)  # stalemate


def test_mvv_lva_decide_draws_from_choices():
    # The rejection sampler plays only moves `choices` lists, flagged as `choices` says.
    rng = np.random.default_rng(1)
    for board in _positions(games=2):
        for blind in [0] + [e.blind for e in E.population("diverse", 5, 0)]:
            move, flag = P.decide(board, rng, blind)
            moves, good = P.choices(board, blind)
            if not moves:
                assert move is None
                continue
            assert flag == (not good[moves.index(move)]), board.fen()


def test_quiet_base_does_not_play_the_captures_it_cannot_see():
    """mvv-lva-quiet: blind on every capture's square, an expert plays any legal move but the
    captures, uniformly (`decide` samples exactly that, flagged as `choices` says); seeing one it
    plays MVV-LVA's; with no capture on it is mvv-lva. So the clones' vote never takes a capture
    they are blind to, while the diverse experts' still does."""
    from transcendence_jax.experts.reference import vote_distribution

    board = chess.Board(MVV)
    everything = (1 << chess.D5) | (1 << chess.H8) | (1 << chess.E5)
    assert P.choices(board, 0, "mvv-lva-quiet") == P.choices(board)
    assert P.choices(board, 1 << chess.D5, "mvv-lva-quiet") == P.choices(board, 1 << chess.D5)
    moves, good = P.choices(board, everything, "mvv-lva-quiet")
    quiet = [m for m in board.legal_moves if not board.is_capture(m)]
    assert moves == quiet and len(quiet) < board.legal_moves.count() and not any(good)
    rng = np.random.default_rng(0)
    drawn = [P.decide(board, rng, everything, "mvv-lva-quiet") for _ in range(3000)]
    assert {move for move, _ in drawn} == set(quiet) and all(flag for _, flag in drawn)
    counts = np.array([sum(move == m for move, _ in drawn) for m in quiet])
    p = 1 / len(quiet)
    assert np.all(np.abs(counts / 3000 - p) < 5 * np.sqrt(p * (1 - p) / 3000)), counts
    start = chess.Board()
    assert P.choices(start, everything, "mvv-lva-quiet") == P.choices(start, everything)
    blind = E.Expert(1, everything, base="mvv-lva-quiet")
    seeing = [E.Expert(i, 0, base="mvv-lva-quiet") for i in range(3)]
    assert vote_distribution(seeing + [blind] * 2, board) == {chess.Move.from_uci("c4d5"): 1.0}
    assert set(vote_distribution([blind] * 5, board)) == set(quiet)
    masks = [int(m) for m in np.random.default_rng(1).integers(0, 2**63, 4)]  # 1 square in 2 blind
    for board in _positions(games=2):  # the fast path draws only what `choices` lists
        for blind in masks:
            move, flag = P.decide(board, rng, blind, "mvv-lva-quiet")
            moves, good = P.choices(board, blind, "mvv-lva-quiet")
            assert (move is None) == (not moves) and (move is None or flag == (not good[moves.index(move)]))


def test_ranked_base_is_never_flat():
    """mvv-lva-ranked: where MVV-LVA would play any legal move (no capture on, or every capture on
    a blind square) it plays its three preferred moves at 1/2, 1/3, 1/6, the same three for every
    expert; `decide` samples that. So diverse experts vote for the capture that clones all miss,
    and the clones' vote is their shared preferred move, not a tie broken at random."""
    from transcendence_jax.experts.reference import expert_distribution, vote_distribution

    board = chess.Board(MVV)
    everything = (1 << chess.D5) | (1 << chess.H8) | (1 << chess.E5)
    assert P.choices(board, 0, "mvv-lva-ranked") == P.choices(board)  # a capture seen: MVV-LVA's
    blind = E.Expert(1, everything, base="mvv-lva-ranked")
    flat = expert_distribution(E.Expert(1, everything), board)
    ranked = expert_distribution(blind, board)
    assert len(flat) == board.legal_moves.count() > 3
    assert sorted(ranked.values()) == pytest.approx([1 / 6, 1 / 3, 1 / 2]) and set(ranked) <= set(flat)
    rng = np.random.default_rng(0)
    drawn = [P.decide(board, rng, everything, "mvv-lva-ranked")[0] for _ in range(3000)]
    for move, p in ranked.items():
        assert abs(drawn.count(move) / 3000 - p) < 5 * np.sqrt(p * (1 - p) / 3000), move
    assert set(drawn) == set(ranked)
    seeing = [E.Expert(i, 0, base="mvv-lva-ranked") for i in range(3)]
    top = max(ranked, key=ranked.get)
    assert vote_distribution(seeing + [blind] * 2, board) == {chess.Move.from_uci("c4d5"): 1.0}
    assert vote_distribution([blind] * 5, board) == {top: 1.0}
    start = chess.Board()  # no capture on: every expert the same three moves
    assert expert_distribution(seeing[0], start) == expert_distribution(blind, start)
    assert len(expert_distribution(seeing[0], start)) == 3


def test_softmax_base_is_a_softmax_of_one_fixed_score_per_move():
    """mvv-lva-softmax: where MVV-LVA would play any legal move, each legal move with its fixed
    weight round(8 exp(1.6 score)), the same for every expert: the distribution is the legal-move
    softmax of one logit per move (so its ratios do not depend on which other moves are legal),
    `decide` samples it, and a capture seen is MVV-LVA's."""
    from transcendence_jax.experts.reference import expert_distribution, vote_distribution

    board = chess.Board(MVV)
    everything = (1 << chess.D5) | (1 << chess.H8) | (1 << chess.E5)
    assert P.choices(board, 0, "mvv-lva-softmax") == P.choices(board)  # a capture seen: MVV-LVA's
    blind = E.Expert(1, everything, base="mvv-lva-softmax")
    dist = expert_distribution(blind, board)
    assert set(dist) == set(board.legal_moves)
    logit = {m: np.log(dist[m]) for m in dist}
    for m in dist:
        z = P._PREFERENCE[m.from_square, m.to_square]
        w = max(1, round(8 * np.exp(1.6 * z)))
        some = next(iter(dist))
        zs = P._PREFERENCE[some.from_square, some.to_square]
        assert logit[m] - logit[some] == pytest.approx(np.log(w / max(1, round(8 * np.exp(1.6 * zs)))))
    start = chess.Board()  # another position, other legal moves: the same ratios between two moves
    s_dist = expert_distribution(blind, start)
    common = sorted(set(dist) & set(s_dist), key=str)
    assert len(common) >= 2
    for m in common[1:]:
        assert s_dist[m] / s_dist[common[0]] == pytest.approx(dist[m] / dist[common[0]])
    rng = np.random.default_rng(0)
    drawn = [P.decide(start, rng, everything, "mvv-lva-softmax")[0] for _ in range(3000)]
    for move, p in s_dist.items():
        assert abs(drawn.count(move) / 3000 - p) < 5 * np.sqrt(p * (1 - p) / 3000) + 1e-3, move
    seeing = [E.Expert(i, 0, base="mvv-lva-softmax") for i in range(3)]
    assert vote_distribution(seeing + [blind] * 2, board) == {chess.Move.from_uci("c4d5"): 1.0}
    assert vote_distribution([blind] * 5, board) == {max(dist, key=dist.get): 1.0}


def test_softmax_scale_is_part_of_the_base_name():
    """mvv-lva-softmax-<scale>: the same base at another scale: a move's weight is proportional to
    exp(scale z) (to its quantization); mvv-lva-softmax is scale 1.6; a bad scale is one line."""
    from transcendence_jax.experts.reference import expert_distribution

    start = chess.Board()
    soft = expert_distribution(E.Expert(1, 0, base="mvv-lva-softmax-0.4"), start)
    z = {m: P._PREFERENCE[m.from_square, m.to_square] for m in soft}
    a, b = max(soft, key=z.get), min(soft, key=z.get)
    assert np.log(soft[a] / soft[b]) == pytest.approx(0.4 * (z[a] - z[b]), abs=0.15)
    assert P.choices(start, 0, "mvv-lva-softmax-1.6") == P.choices(start, 0, "mvv-lva-softmax")
    assert E.population("diverse", 5, 0, base="mvv-lva-softmax-0.4")[0].base == "mvv-lva-softmax-0.4"
    for bad in ("mvv-lva-softmax-0", "mvv-lva-softmax-x", "mvv-lva-argmax-2"):
        with pytest.raises(UserError, match="base policy"):
            E.population("diverse", 5, 0, base=bad)


def test_argmax_base_is_deterministic_after_its_opening():
    """mvv-lva-argmax: where MVV-LVA would play any legal move it plays the one legal move of the
    highest shared score (the softmax's mode), so a blind expert is deterministic there and five
    clones' vote is their own move; a capture seen is MVV-LVA's; its first plies are mvv-lva's
    (any legal move), so games of one pair differ."""
    from transcendence_jax.experts.reference import expert_distribution, vote_distribution

    board = chess.Board(MVV.replace(" 0 1", " 0 20"))  # past the opening
    everything = (1 << chess.D5) | (1 << chess.H8) | (1 << chess.E5)
    assert P.choices(board, 0, "mvv-lva-argmax") == P.choices(board)  # a capture seen: MVV-LVA's
    blind = E.Expert(1, everything, base="mvv-lva-argmax")
    softmax = expert_distribution(E.Expert(1, everything, base="mvv-lva-softmax"), board)
    top = max(board.legal_moves, key=lambda m: P._PREFERENCE[m.from_square, m.to_square])
    assert expert_distribution(blind, board) == {top: 1.0} and softmax[top] == max(softmax.values())
    rng = np.random.default_rng(0)
    assert {blind.decide(board, rng)[0] for _ in range(50)} == {top}
    seeing = [E.Expert(i, 0, base="mvv-lva-argmax") for i in range(3)]
    assert vote_distribution(seeing + [blind] * 2, board) == {chess.Move.from_uci("c4d5"): 1.0}
    assert vote_distribution([blind] * 5, board) == {top: 1.0}
    opening = chess.Board(MVV)  # ply 0: mvv-lva's choices, any legal move when blind
    assert P.choices(opening, everything, "mvv-lva-argmax") == P.choices(opening, everything)
    late = chess.Board()
    for move in ("g1f3", "g8f6", "b1c3", "b8c6", "e2e3", "e7e6", "f1e2", "f8e7"):
        late.push_uci(move)
    assert late.ply() == P.ARGMAX_OPENING_PLIES and len(P.choices(late, 0, "mvv-lva-argmax")[0]) == 1
    pair = E.population("diverse", 5, 0, base="mvv-lva-argmax")[:2]
    games = {tuple(E.play_game(*pair, np.random.default_rng([0, g]), max_plies=30).moves) for g in range(6)}
    assert len(games) == 6


def test_unknown_base_is_one_line():
    with pytest.raises(UserError, match="base policy"):
        E.population("diverse", 5, 0, base="stockfish-ish")


def test_population_structure():
    safe = E.population("diverse", 5, 0, base="safe")
    assert all(bin(e.blind).count("1") == 12 for e in safe)
    union = 0
    for e in safe:
        assert not union & e.blind  # 5 x 12 squares: disjoint
        union |= e.blind
    diverse, clones = E.population("diverse", 5, 0), E.population("clones", 5, 0)
    n = round(E.BLIND_FRACTION["mvv-lva"] * 64)
    assert all(bin(e.blind).count("1") == n for e in diverse + clones)
    assert len({e.blind for e in clones}) == 1 and clones[0].blind in {e.blind for e in diverse}
    assert len({e.blind for e in diverse}) == 5
    cover = [sum(e.blind >> s & 1 for e in diverse) for s in range(64)]
    assert set(cover) == {1, 2}  # 5 x 20 squares: each square blind for one or two experts
    assert E.population("diverse", 5, 1) != diverse  # the seed deals other squares
    half = E.population("diverse", 4, 0, overlap=0.5)
    shared = half[0].blind & half[1].blind & half[2].blind & half[3].blind
    assert bin(shared).count("1") == round(n / 2)
    with pytest.raises(UserError, match="population"):
        E.population("twins", 5, 0)


def test_same_seed_same_games_whatever_the_workers():
    experts = E.population("diverse", 3, 0)
    a = list(E.records(experts, 4, seed=7, workers=1, boards=False))
    b = list(E.records(experts, 4, seed=7, workers=2, boards=False))
    c = list(E.records(experts, 4, seed=8, workers=1, boards=False))
    assert [r.tokens.tolist() for r in a] == [r.tokens.tolist() for r in b]
    assert [r.blind.tolist() for r in a] == [r.blind.tolist() for r in b]
    assert [r.tokens.tolist() for r in a] != [r.tokens.tolist() for r in c]
    assert [(r.white_id, r.black_id) for r in a] == [(0, 1), (0, 2), (1, 2), (1, 0)]


def test_diverse_and_clones_have_the_same_error_rate():
    # On one common set of positions: in their own games clones compound their shared errors.
    diverse = E.error_rates(E.population("diverse", 5, 0), games=3, seed=1)
    clones = E.error_rates(E.population("clones", 5, 0), games=3, seed=1)
    assert len(set(clones)) == 1 and 0.05 < np.mean(diverse) < 0.3
    assert abs(np.mean(diverse) - clones[0]) < 0.2 * np.mean(diverse), (diverse, clones)
    assert E.error_rates([E.BASE], games=1) == [0.0]


def test_adjudicate():
    assert E.adjudicate(chess.Board()) == "1/2-1/2"
    assert E.adjudicate(chess.Board("4k3/8/8/8/8/8/8/R3K3 b - - 0 1")) == "1-0"  # a rook up
    assert E.adjudicate(chess.Board("4k3/8/8/8/8/8/PP6/4K3 b - - 0 1")) == "1/2-1/2"  # two pawns: not enough
    assert E.adjudicate(chess.Board("R5k1/5ppp/8/8/8/8/8/6K1 b - - 0 1")) == "1-0"  # mate
    assert E.adjudicate(chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1")) == "1/2-1/2"  # stalemate, a queen up


def test_cli_writes_a_dataset_that_decodes(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = cli.main(["data", "experts", "--out", str(out), "--population", "clones", "--experts", "3",
                   "--games", "6", "--workers", "1", "--seed", "3", "--shards", "2", "--val-fraction", "0.2"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept"] == 6 and stats["sources"] == {"experts-clones": 6} and stats["boards"]
    assert stats["experts"]["kind"] == "clones" and len(stats["experts"]["experts"]) == 3
    assert stats["generation"]["games"] == 6 and 0 <= stats["generation"]["blind_rate"] < 1
    recs = [decode(r) for f in dataset_files(str(out), "train") + dataset_files(str(out), "validation")
            for r in ArrayRecordReader(f).read_all()]
    assert len(recs) == 6
    for rec in recs:
        moves, result = decode_game(rec.tokens)
        board = chess.Board()
        for m in moves:
            assert board.is_legal(m)
            board.push(m)
        assert rec.result == E.adjudicate(board) and result is None
        assert rec.blind.shape == (len(moves),) and set(rec.blind.tolist()) <= {0, 1}
        assert {rec.white_id, rec.black_id} <= {0, 1, 2} and rec.white_id != rec.black_id
        np.testing.assert_array_equal(rec.boards, game_boards(moves))


def test_cli_bad_input_is_one_line(capsys):
    assert cli.main(["data", "experts", "--out", "/tmp/x", "--experts", "1", "--games", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "experts" in err


def test_expert_is_an_arena_policy():
    from transcendence_jax.play.players import PolicyPlayer

    expert = E.population("diverse", 5, 0)[2]
    player = PolicyPlayer(expert.name, expert)
    board, rng = chess.Board(), np.random.default_rng(0)
    for _ in range(30):
        move = player.policy(board, rng)
        assert board.is_legal(move)
        board.push(move)


def test_stockfish_experts_play_its_best_move_they_can_see():
    """base="stockfish" (for GPU/TPU scale): the base plays Stockfish's best move; an expert
    blind on a square skips captures there; the same position gives the same move."""
    board = chess.Board(QUEEN_HANGS)  # Rxa8+ wins the queen
    rng = np.random.default_rng(0)
    take = chess.Move.from_uci("a1a8")
    assert P.decide(board, rng, 0, "stockfish") == (take, False)
    move, flag = P.decide(board, rng, A8, "stockfish")
    assert move != take and flag and board.is_legal(move)
    experts = E.population("diverse", 2, 0, base="stockfish")
    assert all(e.base == "stockfish" for e in experts)
    first = E.play_game(experts[0], experts[1], np.random.default_rng(1), max_plies=16)
    from transcendence_jax.experts import stockfish_base

    stockfish_base.ranked.cache_clear()
    again = E.play_game(experts[0], experts[1], np.random.default_rng(1), max_plies=16)
    assert first.moves == again.moves and len(first.moves) == 16
