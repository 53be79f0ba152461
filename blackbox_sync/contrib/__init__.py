"""Small adapters for web frameworks; each imports its framework only when used."""
