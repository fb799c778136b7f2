"""Move tokenizer and the paper's character tokenizer: exact round trips on real games."""

import collections

import chess
import chess.pgn
import numpy as np
import pytest

from transcendence_jax.data import tokenizer as tk
from transcendence_jax.data.boards import board_planes, game_boards

REAL_FILES = ("lichess_2021-10_head999.pgn", "lichess_one_player_export_low_rated.pgn")


@pytest.fixture(scope="module")
def real_games(lichess_dir):
    games = []
    for name in REAL_FILES:
        with open(lichess_dir / name) as f:
            while (game := chess.pgn.read_game(f)) is not None:
                games.append((list(game.mainline_moves()), game.headers["Result"]))
    return games


def test_table_facts():
    assert len(tk.MOVES) == 1968 and len(set(tk.MOVES)) == 1968
    assert tk.VOCAB_SIZE == 1973 and tk.VOCAB[: tk.NUM_SPECIAL] == tk.SPECIAL_TOKENS
    assert (tk.PAD, tk.BOS, tk.RESULT_TOKEN["1-0"], tk.RESULT_TOKEN["0-1"],
            tk.RESULT_TOKEN["1/2-1/2"]) == (0, 1, 2, 3, 4)
    promos = [m for m in tk.MOVES if len(m) == 5]
    assert len(promos) == 2 * 22 * 4  # per side: 8 straight + 14 diagonal pawn moves onto the last rank, 4 pieces
    assert collections.Counter(m[4] for m in promos) == {"q": 44, "r": 44, "b": 44, "n": 44}
    for uci in ("e2e4", "g1f3", "e1g1", "e1c1", "e8g8", "a7a8n", "h2h1r", "b7c8b", "a1h8", "h1a8"):
        assert tk.VOCAB[tk.move_to_token(uci)] == uci
    for bad in ("a1b3b", "e2e5q", "a1a1", "<pad>"):  # not a piece move on an empty board
        with pytest.raises(tk.TokenizeError):
            tk.move_to_token(bad)
    with pytest.raises(tk.TokenizeError):
        tk.token_to_move(tk.BOS)


def test_real_games_round_trip(real_games):
    seen = collections.Counter()
    for moves, result in real_games:
        tokens = tk.encode_game(moves, result)
        assert tokens.dtype == np.uint16 and tokens[0] == tk.BOS and len(tokens) == len(moves) + 2
        assert tk.decode_game(tokens) == (moves, result)
        assert tk.decode_game(np.concatenate([tokens[:-1], [tk.PAD] * 3])) == (moves, None)
        board = chess.Board()
        for move in moves:
            seen["ep"] += board.is_en_passant(move)
            seen["O-O"] += board.is_kingside_castling(move)
            seen["O-O-O"] += board.is_queenside_castling(move)
            if move.promotion:
                seen["=" + chess.piece_symbol(move.promotion)] += 1
            board.push(move)
    # The real games cover every special move, under-promotions included.
    assert all(seen[k] > 0 for k in ("ep", "O-O", "O-O-O", "=q", "=r", "=b", "=n")), seen


def test_char_transcript_round_trip(real_games):
    for moves, _ in real_games[:300]:
        text = tk.transcript(moves)
        assert text.startswith(";") and ". " not in text  # no space after move numbers
        assert tk.parse_transcript(text) == moves
        assert tk.decode_chars(tk.encode_chars(text)) == text
    assert tk.transcript([chess.Move.from_uci(u) for u in ("e2e4", "e7e5", "g1f3")]) == ";1.e4 e5 2.Nf3"
    with pytest.raises(tk.TokenizeError):
        tk.encode_chars(";1.e4 e5 {clock}")


def test_boards_and_legal_moves_with_underpromotion():
    board = chess.Board("8/P6k/8/8/8/8/6Kp/8 w - - 0 1")
    moves = [chess.Move.from_uci("a7a8n"), chess.Move.from_uci("h2h1r")]
    planes = game_boards(moves, board)
    assert planes.shape == (3, 64)
    assert planes[1][chess.A8] == chess.KNIGHT and planes[2][chess.H1] == chess.ROOK + 6
    assert planes[0][chess.A7] == chess.PAWN and planes[1][chess.A7] == 0
    assert (game_boards([])[0] == board_planes(chess.Board())).all()
    legal = tk.legal_move_tokens(board)
    assert {tk.VOCAB[t] for t in legal} == {m.uci() for m in board.legal_moves}
    mask = tk.legal_mask(board, 2048)
    assert mask.shape == (2048,) and mask.sum() == len(legal) and mask[tk.move_to_token("a7a8b")]
