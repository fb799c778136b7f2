"""The "stockfish" base policy of the synthetic experts (`policies` dispatches here).

A move drawn uniformly among Stockfish's lines within STOCKFISH_MARGIN of its best, searched
to a fixed node count on one thread from a cleared hash, so a position always gets the same
candidates on every machine; an expert blind on a set of squares does the same among the
candidates that are not captures onto those squares. A search a move: for many-core hosts.
"""

from __future__ import annotations

import functools

import chess

STOCKFISH_NODES = 400  # "stockfish": the search per move, in nodes (the same strength on every machine)
_engine = None  # one Stockfish process per Python process, started on first use


def _uci(*commands: str, until: str) -> list[str]:
    """Send UCI commands to this process's Stockfish; the lines it answers up to `until`."""
    global _engine
    if _engine is None or _engine.proc.poll() is not None:
        from transcendence_jax.play.engines import UCIProcess, find_stockfish

        _engine = UCIProcess(find_stockfish(), timeout=60)
        for name, value in (("Threads", 1), ("Hash", 16), ("MultiPV", 8)):
            _engine.setoption(name, value)
    return _engine.ask(*commands, until=until, timeout=60)


STOCKFISH_MARGIN = 25  # centipawns: the moves this close to the best are equally good (ties, drawn at random)


@functools.lru_cache(maxsize=4096)
def ranked(fen: str) -> tuple[tuple[chess.Move, int], ...]:
    """Stockfish's 8 best moves in the position with their scores (centipawns for the side to
    move; mates as +-100000 less the distance), best score first: a nodes-limited search on one
    thread from a cleared hash, so the same position always gives the same list whatever was
    searched before; experts and analyses of one position share it through the cache."""
    lines = _uci("ucinewgame", f"position fen {fen}", f"go nodes {STOCKFISH_NODES}", until="bestmove")
    found: dict[int, tuple[str, int]] = {}
    for line in lines:  # the last report of each multipv line wins
        words = line.split()
        if (words[:1] != ["info"] or "multipv" not in words or "pv" not in words or "score" not in words
                or "lowerbound" in words or "upperbound" in words):
            continue
        kind, value = words[words.index("score") + 1], int(words[words.index("score") + 2])
        score = value if kind == "cp" else (100000 - abs(value)) * (1 if value > 0 else -1)
        found[int(words[words.index("multipv") + 1])] = (words[words.index("pv") + 1], score)
    # A search stopped by its node count may leave some lines a depth behind: rank by score.
    return tuple(sorted(((chess.Move.from_uci(u), score) for u, score in found.values()), key=lambda x: -x[1]))


def choices(board: chess.Board, blind: int) -> tuple[list[chess.Move], list[bool]]:
    """The moves within STOCKFISH_MARGIN of the best one an expert blind on `blind` sees (it
    does not see captures onto those squares); good: within the margin of Stockfish's best."""
    lines = ranked(board.fen())
    if not lines:
        return [], []
    top = lines[0][1]
    unseen = lambda m: blind >> m.to_square & 1 and board.is_capture(m)
    seen = [(m, score) for m, score in lines if not unseen(m)]
    if seen:
        moves = [m for m, score in seen if score >= seen[0][1] - STOCKFISH_MARGIN]
    else:  # every candidate is a capture it cannot see: any other legal move
        moves = [m for m in board.legal_moves if not unseen(m)] or list(board.legal_moves)
    good = {m for m, score in lines if score >= top - STOCKFISH_MARGIN}
    return moves, [m in good for m in moves]
