"""Rendering: dashboard pages, the daily index, and the daily run that writes them."""
