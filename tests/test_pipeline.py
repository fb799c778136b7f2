"""The grain pipeline on tiny real ArrayRecord datasets written by `write_dataset`."""

import gc

import chess
import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from transcendence_jax.data import boards as boards_lib
from transcendence_jax.data import pipeline, tokenizer
from transcendence_jax.data.build import dataset_files, write_dataset
from transcendence_jax.data.records import GameRecord
from transcendence_jax.errors import UserError

L, B = 24, 4
# Castling on both sides, en passant, capture-promotions to a knight, a queen and a rook.
SPECIAL = (
    "e2e4 g8f6 e4e5 d7d5 e5d6 e7e6 g1f3 f8e7 f1e2 e8g8 e1g1 b8c6 d6c7 a7a6 c7d8n f8d8",
    "d2d4 d7d5 c1f4 c8f5 b1c3 b8c6 d1d2 d8d7 e1c1 e8c8",
    "a2a4 b7b5 a4b5 a7a6 b5a6 c8b7 a6b7 g8f6 b7a8q h7h5 g2g4 h5g4 f1g2 g4g3 e2e3 g3h2 e3e4 h2g1r",
)


def legal_line(line):
    board, moves = chess.Board(), []
    for uci in line.split():
        moves.append(chess.Move.from_uci(uci))
        assert moves[-1] in board.legal_moves, uci
        board.push(moves[-1])
    return moves


def random_game(rng, max_plies):
    board, moves = chess.Board(), []
    for _ in range(int(rng.integers(3, max_plies))):
        legal = list(board.legal_moves)
        if not legal:
            break
        moves.append(legal[rng.integers(len(legal))])
        board.push(moves[-1])
    return moves


def games(n, seed=0, boards=False):
    rng = np.random.default_rng(seed)
    fixed = [legal_line(line) for line in SPECIAL]
    for i in range(n):
        moves = fixed[i] if i < len(fixed) else random_game(rng, 40)
        yield GameRecord(tokens=tokenizer.encode_game(moves), result="1/2-1/2", source=f"game{i}",
                         boards=boards_lib.game_boards(moves) if boards else None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    write_dataset(games(60), str(root / "plain"), num_shards=2, val_fraction=0.0)
    write_dataset(games(60, boards=True), str(root / "boards"), num_shards=2, val_fraction=0.0)
    return {name: dataset_files(str(root / name), "train") for name in ("plain", "boards")}


def loader(files, **kw):
    kw = {"seq_len": L, "batch_size": B, "shard_index": 0, "shard_count": 1, **kw}
    return pipeline.make_loader(files, **kw)


def take(it, n):
    return [next(it) for _ in range(n)]


def assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("packing", ["pad", "pack"])
def test_same_seed_same_batches(data, packing):
    a = take(iter(loader(data["plain"], packing=packing, seed=3)), 3)
    assert_same(a, take(iter(loader(data["plain"], packing=packing, seed=3)), 3))
    c = take(iter(loader(data["plain"], packing=packing, seed=4)), 3)
    assert any((x["inputs"] != y["inputs"]).any() for x, y in zip(a, c))


@pytest.mark.parametrize("packing", ["pad", "pack"])
def test_processes_get_disjoint_rows(data, packing):
    def rows(index):
        ld = loader(data["plain"], packing=packing, num_epochs=1, batch_size=2, shard_index=index, shard_count=2)
        return [tuple(r) for b in ld for r in np.concatenate([b["inputs"], b["targets"][:, -1:]], 1)]

    r0, r1 = rows(0), rows(1)
    assert set(r0).isdisjoint(r1)
    everything = [tuple(r) for b in loader(data["plain"], packing=packing, num_epochs=1, batch_size=1)
                             for r in np.concatenate([b["inputs"], b["targets"][:, -1:]], 1)]
    assert len(r0) + len(r1) >= len(everything) - 4  # each process drops at most a partial batch
    assert set(r0) | set(r1) <= set(everything)
    if packing == "pad":  # one game per row, each game once
        assert len(everything) == len(set(everything)) == 60


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_restore_gives_exactly_the_next_batches(data, workers):
    kw = {"packing": "pack", "boards": True, "worker_count": workers, "seed": 1}
    it = iter(loader(data["plain"], **kw))
    take(it, 2)
    state = it.get_state()
    expected = take(it, 3)
    it2 = iter(loader(data["plain"], **kw))
    it2.set_state(state)
    assert_same(take(it2, 3), expected)
    if workers:  # grain batches within each worker: the same rows, grouped by worker
        it0 = iter(loader(data["plain"], **{**kw, "worker_count": 0}))
        rows = lambda batches: sorted(map(tuple, np.concatenate([b["inputs"] for b in batches])))
        assert rows(take(it0, 4)[2:]) == rows(expected[:2])
    del it, it2  # stop the worker processes now, not at interpreter exit
    gc.collect()


def test_orbax_checkpoint_manager_roundtrip(data, tmp_path):
    it = iter(loader(data["plain"], seed=2))
    take(it, 3)
    params = {"w": np.arange(6.0).reshape(2, 3)}
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(params),
                                             data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    expected = take(it, 2)
    fresh = iter(loader(data["plain"], seed=2))
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        assert mngr.latest_step() == 3
        out = mngr.restore(3, args=ocp.args.Composite(state=ocp.args.StandardRestore(params),
                                                      data=grain.checkpoint.CheckpointRestore(fresh)))
    np.testing.assert_array_equal(out["state"]["w"], params["w"])
    assert_same(take(fresh, 2), expected)


def replay(inputs):
    """The python-chess board at each input token of a row (None on padding)."""
    boards, board = [], None
    for tok in inputs:
        if tok == tokenizer.BOS:
            board = chess.Board()
        elif tok == tokenizer.PAD:
            board = None
        else:
            board.push(tokenizer.token_to_move(tok))
        boards.append(None if board is None else board.copy())
    return boards


@pytest.mark.parametrize("packing", ["pad", "pack"])
def test_boards_and_legal_masks_match_python_chess(data, packing):
    batches = take(iter(loader(data["plain"], packing=packing, boards=True, legal=True, shuffle=False)), 4)
    checked = 0
    for batch in batches:
        for b in range(B):
            for t, board in enumerate(replay(batch["inputs"][b])):
                if board is None:
                    assert (batch["boards"][b, t] == 0).all()
                    continue
                np.testing.assert_array_equal(batch["boards"][b, t], boards_lib.board_planes(board))
                allowed = set(np.flatnonzero(batch["legal"][b, t]).tolist())
                moves = {tok for tok in allowed if tok >= tokenizer.NUM_SPECIAL}
                assert moves == set(tokenizer.legal_move_tokens(board))
                target = batch["targets"][b, t]
                assert target in allowed
                assert allowed - moves <= ({tokenizer.BOS} if packing == "pack" else {target})
                checked += 1
    assert checked > 100


def test_stored_boards_equal_computed_boards(data):
    for packing in ("pad", "pack"):
        stored = take(iter(loader(data["boards"], packing=packing, boards=True)), 3)
        assert_same(stored, take(iter(loader(data["plain"], packing=packing, boards=True)), 3))


def test_fast_boards_cover_castling_en_passant_promotions():
    for line in SPECIAL:
        moves = legal_line(line)
        np.testing.assert_array_equal(boards_lib.game_planes(tokenizer.encode_game(moves).tolist()),
                                      boards_lib.game_boards(moves))


def test_pad_rows_one_game_padding_and_weights(data):
    (batch,) = take(iter(loader(data["plain"], packing="pad", shuffle=False, batch_size=60, num_epochs=1)), 1)
    expected = set()
    for rec in games(60):  # each game cut at L + 1 tokens, then padded
        row = np.zeros(L + 1, np.int32)
        row[: min(len(rec.tokens), L + 1)] = rec.tokens[: L + 1]
        expected.add(tuple(row))
    got = {tuple(np.concatenate([i, t[-1:]])) for i, t in zip(batch["inputs"], batch["targets"])}
    assert got == expected
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
    np.testing.assert_array_equal(batch["weights"], (batch["targets"] != tokenizer.PAD).astype(np.float32))
    assert batch["weights"].dtype == np.float32 and batch["inputs"].dtype == batch["targets"].dtype == np.int32


def test_pack_rows_are_full_and_cut_games_restart_whole(data):
    full = {tuple(rec.tokens.tolist()) for rec in games(60)}
    rows = [np.concatenate([b["inputs"][0], b["targets"][0, -1:]]).tolist()
            for b in loader(data["plain"], packing="pack", shuffle=False, batch_size=1, num_epochs=1)]
    seen = set()
    for k, row in enumerate(rows):
        assert row[0] == tokenizer.BOS
        assert tokenizer.PAD not in row or k == len(rows) - 1  # only the last row is padded
        starts = [i for i, tok in enumerate(row) if tok == tokenizer.BOS] + [len(row)]
        segments = [tuple(row[a:b]) for a, b in zip(starts, starts[1:])]
        for seg in segments[:-1]:
            assert seg in full  # games inside a row are whole
        last = tuple(tok for tok in segments[-1] if tok != tokenizer.PAD)
        seen.update(s for s in segments[:-1]) or seen.add(last)
        if last not in full and len(segments) > 1:  # cut at the row end: restarts whole next row
            assert tuple(rows[k + 1][: len(last)]) == last
        elif last in full:
            seen.add(last)
    assert seen == full or seen | {g for g in full if len(g) > L + 1} >= full


def test_user_errors(data):
    with pytest.raises(UserError, match="packing"):
        loader(data["plain"], packing="zip")
    with pytest.raises(UserError, match="no dataset files"):
        loader([])
    with pytest.raises(UserError, match="batch"):
        loader(data["plain"], batch_size=1000)
    with pytest.raises(UserError, match="vocab_size"):
        loader(data["plain"], legal=True, vocab_size=100)


def test_real_lichess_games_boards_and_legal(lichess_dir, tmp_path):
    import chess.pgn

    recs = []
    with open(lichess_dir / "lichess_2013-01_head100.pgn") as f:
        while (game := chess.pgn.read_game(f)) is not None:
            moves = list(game.mainline_moves())
            if moves:
                recs.append(GameRecord(tokens=tokenizer.encode_game(moves), result="1/2-1/2"))
    write_dataset(recs, str(tmp_path), num_shards=1, val_fraction=0.0)
    ld = loader(dataset_files(str(tmp_path), "train"), seq_len=128, batch_size=8, packing="pack",
                boards=True, legal=True, num_epochs=1)
    positions = 0
    for batch in take(iter(ld), 2):
        for b in range(8):
            for t, board in enumerate(replay(batch["inputs"][b])):
                if board is not None:
                    np.testing.assert_array_equal(batch["boards"][b, t], boards_lib.board_planes(board))
                    legal = set(tokenizer.legal_move_tokens(board)) | {tokenizer.BOS}
                    if batch["weights"][b, t] == 0:  # the dataset's last row ends in padding
                        legal.add(int(batch["targets"][b, t]))
                    assert set(np.flatnonzero(batch["legal"][b, t]).tolist()) == legal
                    positions += 1
    assert positions > 2 * 8 * 128 - 128  # packed rows: only the dataset's last row has padding


def test_stored_legal_moves_give_the_same_masks(tmp_path):
    """Records that carry their legal-move tokens give exactly the masks computed by replay."""
    import chess

    from transcendence_jax.data import tokenizer
    from transcendence_jax.data.build import dataset_files, write_dataset
    from transcendence_jax.data.pipeline import make_loader
    from transcendence_jax.data.records import GameRecord

    rng = np.random.default_rng(3)
    plain, stored = [], []
    for _game in range(12):
        board, moves, legal, counts = chess.Board(), [], [], []
        for _ in range(int(rng.integers(5, 40))):
            toks = tokenizer.legal_move_tokens(board)
            legal += toks.tolist()
            counts.append(len(toks))
            if board.is_game_over():
                break
            move = list(board.legal_moves)[int(rng.integers(board.legal_moves.count()))]
            board.push(move)
            moves.append(move)
        toks = tokenizer.legal_move_tokens(board)
        legal, counts = legal + toks.tolist(), counts + [len(toks)]
        counts = counts[: len(moves) + 1]
        legal = legal[: sum(counts)]
        plain.append(GameRecord(tokens=tokenizer.encode_game(moves), result="1/2-1/2"))
        stored.append(GameRecord(tokens=tokenizer.encode_game(moves), result="1/2-1/2",
                                 legal=np.asarray(legal, np.uint16), legal_counts=np.asarray(counts, np.uint8)))
    batches = []
    for name, recs in (("plain", plain), ("stored", stored)):
        write_dataset(recs, str(tmp_path / name), num_shards=1, val_fraction=0.0)
        loader = make_loader(dataset_files(str(tmp_path / name), "train"), seq_len=24, batch_size=4, legal=True,
                             seed=1, num_epochs=1, shard_index=0, shard_count=1)
        batches.append([b["legal"] for b in loader])
    assert len(batches[0]) == len(batches[1]) == 3
    for a, b in zip(*batches):
        np.testing.assert_array_equal(a, b)


def test_device_pseudo_legal_masks_cover_the_exact_ones(data):
    """train.legal_mask=device: the step's pseudo-legal masks (from the board planes, White at
    even positions of a padded row) hold every legal move python-chess lists, and are tight:
    on average at most a few extra moves (king steps into check, castling through check)."""
    import jax
    import jax.numpy as jnp

    from transcendence_jax.legality import pseudo_legal

    (batch,) = take(iter(loader(data["plain"], packing="pad", boards=True, legal=True, shuffle=False,
                                batch_size=60, num_epochs=1)), 1)
    Bn, T = batch["targets"].shape
    V = 2048
    white = jnp.broadcast_to(jnp.arange(T) % 2 == 0, (Bn, T)).reshape(-1)
    device = np.asarray(jax.jit(pseudo_legal, static_argnums=2)(batch["boards"].reshape(Bn * T, 64), white, V))
    device = device.reshape(Bn, T, V)[..., : tokenizer.VOCAB_SIZE]
    moves = batch["legal"][..., : tokenizer.VOCAB_SIZE].copy()
    moves[..., : tokenizer.NUM_SPECIAL] = False
    live = (batch["weights"] > 0) & moves.any(-1)
    assert live.sum() > 500
    assert not (moves[live] & ~device[live]).any()  # a superset
    extra = (device[live] & ~moves[live]).sum(-1)
    assert extra.mean() < 2.0, extra.mean()
