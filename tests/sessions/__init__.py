"""Remote sessions: support codes, session requests, the relay (real server on loopback)."""
