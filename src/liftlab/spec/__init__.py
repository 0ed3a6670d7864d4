"""What the user writes: experiment models, YAML loader, filters, column checks,
the aggregation plan (the one description of every metric), hash assignment."""
