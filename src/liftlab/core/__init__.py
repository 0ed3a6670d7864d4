"""Bottom layer: errors, exact sums, optional extras, safe file writes."""
