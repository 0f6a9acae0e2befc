"""Remote sessions: quick-support codes, session requests with org-signed offers, and the relay."""
