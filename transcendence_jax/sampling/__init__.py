"""The model as a chess player: `sampler.Sampler` (batched, over a KV cache: games and the
arena), `policy` (one position at a time, no cache: sample_moves, move_probabilities) and
`decode` (the jitted decode step both the sampler's calls run)."""
