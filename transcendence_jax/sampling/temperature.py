"""The one temperature check, in a module of its own so the UCI engine can validate options
before it imports jax (it answers the handshake at once)."""


def check_temperature(value, what: str = "temperature") -> float:
    """`value` as a float if it is a temperature: a number >= 0 (0: the arg-max, inf: uniform
    over the legal moves); a NaN or a negative number raises ValueError in one line."""
    if not value >= 0:  # NaN too
        raise ValueError(f"{what} {value!r} is not a number >= 0 (0: the arg-max, inf: uniform over the legal moves)")
    return float(value)
