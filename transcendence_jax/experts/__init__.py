"""The synthetic experts: base policies and their flaw (`policies`, `stockfish_base`), the
population, its games and dataset (`population`)."""
