"""Figures that cannot mislead: games per point, no CI for an unbounded Elo, axes that say their scale and unit."""

import matplotlib.pyplot as plt
import numpy as np

from transcendence_jax.rating import elo_mle
from transcendence_jax.rating_figure import plot_rating_vs_temperature, rating_figure
from transcendence_jax.training.metrics import loss_figure, plot_losses


def test_rating_figure_shows_games_and_refuses_a_ci_to_a_perfect_score(tmp_path, capsys):
    # A real fit where the model at tau 0.001 won every game: its Elo is only the prior's.
    games = [("model@0.001", "sf1", 1.0)] * 10 + [("sf1", "model@0.001", 0.0)] * 10
    games += [("model@1", "sf1", 0.5)] * 10 + [("sf1", "model@1", 1.0)] * 10
    ratings = elo_mle(games, anchor={"sf1": 1552}, bootstrap=50)
    lo, hi = ratings.ci["model@0.001"]
    assert np.isfinite([lo, hi]).all()  # what the fit gives, and why the figure must not draw it
    series = {"Elo": [(0.001, ratings.elo["model@0.001"], lo, hi, 20, 1.0),
                      (1.0, ratings.elo["model@1"], *ratings.ci["model@1"], 20, 0.25)]}
    fig = rating_figure(series)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "sampling temperature (log scale)"
    assert "Elo (20 games a point)" in [t.get_text() for t in ax.get_legend().get_texts()]
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["100% score: no finite CI"]
    (line, _, (bars,)) = ax.containers[0].lines
    assert list(line.get_xdata()) == [1.0] and len(bars.get_segments()) == 1  # error bar for model@1 only
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "Elo at temperature 0.001 scored 100% in 20 games" in err
    assert "no finite CI" in err
    plt.close(fig)

    # Points with different game counts are labelled one by one; a zero score points down.
    fig = rating_figure({"model": [(0.1, 10.0, 0.0, 20.0, 30, 0.5), (1.0, -500.0, -600.0, -400.0, 12, 0.0)]})
    notes = sorted(t.get_text() for t in fig.axes[0].texts)
    assert notes == ["0% score: no finite CI", "n=12", "n=30"]
    assert "below" in capsys.readouterr().err
    plt.close(fig)
    path = plot_rating_vs_temperature({"model": [(0.0, 1.0, 0.0, 2.0)]}, str(tmp_path / "r.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"  # tau 0 on the axis: linear, said so
    fig = rating_figure({"model": [(0.0, 1.0, 0.0, 2.0)]})
    assert fig.axes[0].get_xlabel() == "sampling temperature"
    plt.close(fig)


def test_rating_figure_second_panel_draws_each_group_with_its_population_colour():
    series = {"diverse": [(0.001, 300.0, 280.0, 320.0), (1.0, -50.0, -80.0, -20.0)],
              "clones": [(0.001, -15.0, -40.0, 10.0), (1.0, -45.0, -70.0, -20.0)]}
    states = {"diverse: some expert blind": [(1.0, -1.8, -2.9, -0.7), (0.001, 2.4, -0.1, 4.2)],
              "diverse: none blind": [(0.001, -0.1, -1.8, 1.4), (1.0, 0.0, -0.1, 0.1)],
              "clones: some expert blind": [(0.001, -0.9, -3.4, 1.3), (1.0, 0.1, -0.1, 0.2)]}
    fig = rating_figure(series, lines={"diverse: vote": 315.0, "diverse: mixture": 73.0, "clones: vote": -21.0},
                        states=states, state_lines={"diverse: vote, some expert blind": 4.4})
    elo, panel = fig.axes
    colour = {c.get_label(): c.lines[0].get_color() for c in elo.containers}
    drawn = {c.get_label(): c for c in panel.containers}
    assert set(drawn) == set(states)
    for label, container in drawn.items():
        line = container.lines[0]
        assert line.get_color() == colour[label.split(": ")[0]]  # a population's colour in both panels
        assert sorted(line.get_xdata()) == list(line.get_xdata())  # drawn in temperature order
        assert line.get_linestyle() == ("-" if label.endswith("some expert blind") else "--")
    assert list(drawn["diverse: some expert blind"].lines[0].get_ydata()) == [2.4, -1.8]
    assert panel.get_xscale() == "log" and panel.get_xlabel() == "sampling temperature (log scale)"
    refs = {line.get_label(): line for line in elo.get_lines() if line.get_label() in ("diverse: vote", "clones: vote",
                                                                                     "diverse: mixture")}
    assert refs["diverse: vote"].get_linestyle() == refs["clones: vote"].get_linestyle() != \
        refs["diverse: mixture"].get_linestyle()  # one dash per reference player
    assert "diverse: vote, some expert blind" in [t.get_text() for t in panel.get_legend().get_texts()]
    plt.close(fig)
    assert len(rating_figure(series).axes) == 1  # no states: the one panel


def test_loss_figure_says_what_the_loss_is_over(tmp_path):
    rows = [dict(step=s, loss=3.0 / s) for s in range(1, 11)] + [dict(step=10, val_loss=0.4)]
    fig = loss_figure(rows)
    ax = fig.axes[0]
    assert "nats per predicted token" in ax.get_ylabel() and "padding excluded" in ax.get_ylabel()
    assert ax.get_xlabel() == "training step"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train (each logged step's batch), 10 points",
                                                                   "validation, 1 point"]
    plt.close(fig)
    plot_losses(str(tmp_path / "missing.jsonl"), str(tmp_path / "loss.png"))  # no rows yet: an empty figure
    assert (tmp_path / "loss.png").stat().st_size > 1000
