"""Integrations of the Meter client with other tools (each imports its tool: install it yourself)."""
