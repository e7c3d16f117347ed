"""Inventory loading and validation (ssl-mgr's config format, strict)."""
