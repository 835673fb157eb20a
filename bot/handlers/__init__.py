"""Routers, one per concern; each is built by a function so every Dispatcher gets fresh ones."""
