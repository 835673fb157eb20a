"""Outbound webhooks, the sending side: the dispatcher (event log -> deliveries) and the
sender (deliveries -> HTTP POST). The rules (events, envelope, signature) are in
core.webhooks."""
