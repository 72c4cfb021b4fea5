"""The Falcon ASGI app: the Simple Repository API, uploads, browser login and administration."""
