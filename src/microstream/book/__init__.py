"""book package."""
