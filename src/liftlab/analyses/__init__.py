"""One module per estimand, from engine to typed result: experiment, monitor,
multichannel, planning, attribution."""
