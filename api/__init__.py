"""REST + WebSocket channel (Sanic)."""
