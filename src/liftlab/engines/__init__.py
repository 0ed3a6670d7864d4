"""Engines execute an AggregationPlan and return the same table of sufficient statistics."""
