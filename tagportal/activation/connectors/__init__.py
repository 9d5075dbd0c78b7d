"""Clients of the channel platforms, one small module each, on a shared base
(:mod:`.base`: errors, token cache, retries, rate limits, HTTP)."""
