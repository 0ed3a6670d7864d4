"""Statistics on sufficient statistics: one method family per module."""
