"""The support desk's domain: services, permissions, events, settings. Every channel calls it."""
