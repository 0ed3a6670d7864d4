"""The application: services behind the CLI (run), the CLI, the demo data."""
